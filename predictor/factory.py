"""Build the configured predictor for a pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoscaler.core.settings.predictor import PredictorSettings
from predictor.base import Predictor
from predictor.linear import LinearTrendPredictor
from predictor.seasonal import SeasonalPredictor

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import PoolConfig


def make_predictor(settings: PredictorSettings, pool: PoolConfig) -> Predictor:
    """One predictor instance per pool (models are stateless; this is cheap)."""
    if settings.model == "trend_lr":
        return LinearTrendPredictor(window_s=settings.trend_window.total_seconds())
    return SeasonalPredictor(history_s=settings.history.total_seconds(), slo_unserved_pct=settings.slo_unserved_pct)
