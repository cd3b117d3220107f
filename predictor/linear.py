"""The case study's model: linear regression on the recent rate (level + growth), extrapolated.

It cannot see a daily ramp coming; it is kept as the baseline ``trend_lr`` and as a fallback when
there is too little history for a seasonal model.
"""

from __future__ import annotations

import math

import numpy as np

from autoscaler.core.series import RateSeries
from predictor.base import Forecast
from predictor.ols import LinearRegression


class LinearTrendPredictor:
    """Fit rate = a + b·t on the last ``window_s`` seconds and take the peak over the horizon."""

    name = "trend_lr"

    def __init__(self, window_s: float = 1800.0, min_samples: int = 3) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.window_s = window_s
        self.min_samples = min_samples

    def history_seconds(self) -> float:
        return self.window_s

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        # Samples are stamped at the end of their interval: one stamped exactly at ``now`` is already past.
        recent = history.finite().window(now - self.window_s, now + 1e-6)
        if len(recent) == 0:
            raise ValueError("no samples in the regression window")
        observed = recent.last_rps
        if len(recent) < self.min_samples:
            return Forecast(observed, observed, horizon_s, self.name, {"samples": float(len(recent))})
        x = (recent.t - now).reshape(-1, 1) / 60.0  # minutes relative to now: well conditioned
        model = LinearRegression().fit(x, recent.rps)
        slope_per_min = float(model.coef_[0])
        level = float(model.intercept_)
        at_end = level + slope_per_min * horizon_s / 60.0
        # A line's maximum over [now, now+h] is at one of its ends.
        peak = max(level, at_end, 0.0)
        if not math.isfinite(peak):
            peak = observed
        return Forecast(
            peak_rps=peak,
            observed_rps=observed,
            horizon_s=horizon_s,
            model=self.name,
            details={
                "level_rps": round(level, 3),
                "slope_rps_per_min": round(slope_per_min, 4),
                "samples": float(len(recent)),
                "window_s": float(np.float64(self.window_s)),
            },
        )
