"""A pool's seasonal fit, kept between refits (``predictor.refit_every``).

A full fit regresses every past decision time of the history (thousands of rows), replays the model's own past
forecasts and searches the headroom that meets the SLO on them. From one tick to the next the history moves by
one interval out of fourteen days: the coefficients and the calibrated headroom barely move. Between refits the
seasonal model keeps them (``KeptFit``) and, every tick, computes today's features (level, growth, burst, the
same hour yesterday and last week), predicts with the kept coefficients under the kept bound on the rise, and
applies the kept headroom at today's traffic level and recent peak — the level is always today's.

A kept fit is used only once the history fills the model's window (while it grows — a new pool, the start of a
replay — each tick's fit learns much more than the last), for the same step, horizon and features (a lag that
falls into a gap: a full fit), and only until ``refit_s`` has passed since it was made (by the time of the latest
sample, so a replay and a daemon refit at the same points of the data). One ``FitMemo`` per
pool (the model instance is the pool's): the daemon keeps one model per pool, a backtest one per replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from predictor.headroom import Headroom
from predictor.ols import LinearRegression

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class KeptFit:
    """What a full fit leaves for the ticks until the next one."""

    at: float  # UNIX time of the latest sample the fit saw
    step_s: float
    horizon_steps: int
    names: tuple[str, ...]  # the feature groups, in order (the coefficients' columns)
    eps: float  # the log offset the features were built with
    model: LinearRegression
    rise: float  # the largest log rise from level to coming peak in training: the forecast's bound
    headroom: Headroom  # calibrated, its floor still a ratio of the level (``at_level`` applies it)
    rows: int
    budget_pct: float

    def predicted(self, features: FloatArray, log_level: float) -> float:
        """The peak rate the kept model predicts for one row of today's features."""
        log_peak = min(float(self.model.predict(features)[0]), log_level + self.rise)
        return max(math.exp(log_peak) - self.eps, 0.0)


class FitMemo:
    """The last full fit of one pool's model, for ``refit_s`` seconds of data."""

    def __init__(self, refit_s: float) -> None:
        if refit_s <= 0:
            raise ValueError("refit_s must be > 0")
        self.refit_s = refit_s
        self.kept: KeptFit | None = None

    def get(self, t_last: float, step_s: float, horizon_steps: int) -> KeptFit | None:
        """The kept fit, if it is for this step and horizon and younger than ``refit_s`` at ``t_last``."""
        kept = self.kept
        if kept is None or kept.step_s != step_s or kept.horizon_steps != horizon_steps:
            return None
        return kept if 0 <= t_last - kept.at < self.refit_s else None

    def keep(self, fit: KeptFit) -> None:
        self.kept = fit
