"""The ``predictor:`` section of forescale.yaml (owned by predictor/)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import StrictModel

REFIT_HOURS = 6  # a full fit reads 14 days: 6 hours of new data barely move it (benchmarks/policy.py)


class PredictorSettings(StrictModel):
    """Which model forecasts the request rate, how much history it reads, and the SLO it plans for."""

    model: Literal["seasonal_lr", "trend_lr"] = Field(
        "seasonal_lr",
        description="seasonal_lr: daily/weekly seasonal linear regression with SLO-calibrated headroom "
        "(default); trend_lr: the case study's line over the last trend_window, no headroom",
    )
    history: Duration = Field(
        timedelta(days=14), description="history seasonal_lr reads (≥ 8d to learn a weekly cycle)"
    )
    slo_unserved_pct: float = Field(
        1.0,
        gt=0,
        le=50,
        description="SLO: at most this % of requests may find no ready capacity; headroom is chosen to meet it",
    )
    trend_window: Duration = Field(timedelta(minutes=30), description="trend_lr regression window")
    refit_every: Duration = Field(
        timedelta(hours=REFIT_HOURS),
        description="seasonal_lr refits its regression and headroom this often; between refits each tick predicts "
        "from today's features with the kept fit (0: refit every tick)",
    )
    plausible_jump: float = Field(
        20.0,
        ge=2,
        le=1000,
        description="a sample above this many times the recent peak (plausible_window; at least one node's "
        "capacity) is believed only once the next sample confirms it; a rate above this many times what the "
        "pool's max nodes serve is bad data",
    )
    plausible_window: Duration = Field(timedelta(days=7), description="the recent peak's window (plausible_jump)")
