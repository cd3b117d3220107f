"""Build the configured predictor for a pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoscaler.core.settings.predictor import PredictorSettings
from predictor.base import Predictor
from predictor.linear import LinearTrendPredictor
from predictor.seasonal import PolicyShape, SeasonalPredictor

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import PoolConfig


def make_predictor(settings: PredictorSettings, pool: PoolConfig, lead_s: float | None = None) -> Predictor:
    """One predictor instance per pool. ``lead_s``: the lead time the pool plans with now (``ports.LeadTimes``:
    configured or learned); default the configured one. A seasonal model keeps its fit for
    ``predictor.refit_every`` (predictor/reuse.py): keep the instance for the pool's next forecasts."""
    if settings.model == "trend_lr":
        return LinearTrendPredictor(window_s=settings.trend_window.total_seconds())
    return SeasonalPredictor(
        history_s=settings.history.total_seconds(),
        slo_unserved_pct=settings.slo_unserved_pct,
        policy=policy_shape(pool, lead_s),
        refit_s=settings.refit_every.total_seconds() or None,
    )


def policy_shape(pool: PoolConfig, lead_s: float | None = None) -> PolicyShape:
    """What the pool's policy does without headroom (lead time, guard, scale-in window), for calibration."""
    return PolicyShape(
        lead_s=pool.lead_time.total_seconds() if lead_s is None else lead_s,
        guard_s=pool.guard.interval.total_seconds() if pool.guard.enabled else None,
        window_s=pool.scale_in_window.total_seconds(),
        wait_slo_s=pool.queue.latency_slo.total_seconds() if pool.queue is not None else None,
        wait_beyond_pct=100.0 - pool.queue.wait_percentile if pool.queue is not None else 5.0,
        drain_s=pool.queue.drain_seconds(pool.lead_time) if pool.queue is not None else None,
    )
