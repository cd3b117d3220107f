"""A request-rate time series: the one shape metrics sources hand to predictors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class RateSeries:
    """Samples of a request rate in req/s at increasing UNIX times (seconds).

    Missing samples are simply absent (never zeros); ``step_s`` is the nominal spacing.
    """

    t: NDArray[np.float64]
    rps: NDArray[np.float64]
    step_s: float

    def __post_init__(self) -> None:
        if self.t.shape != self.rps.shape:
            raise ValueError("timestamps and values differ in length")

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @classmethod
    def from_lists(cls, t: list[float], rps: list[float], step_s: float) -> RateSeries:
        return cls(np.asarray(t, dtype=np.float64), np.asarray(rps, dtype=np.float64), float(step_s))

    def finite(self) -> RateSeries:
        """Drop NaN/inf samples (Prometheus answers 'NaN' for 0/0 rates)."""
        mask = np.isfinite(self.rps)
        if mask.all():
            return self
        return RateSeries(self.t[mask], self.rps[mask], self.step_s)

    def before(self, t_end: float) -> RateSeries:
        """Samples strictly before ``t_end``: what a causal decision at ``t_end`` may see."""
        n = int(np.searchsorted(self.t, t_end, side="left"))
        return RateSeries(self.t[:n], self.rps[:n], self.step_s)

    def window(self, t_start: float, t_end: float) -> RateSeries:
        lo = int(np.searchsorted(self.t, t_start, side="left"))
        hi = int(np.searchsorted(self.t, t_end, side="left"))
        return RateSeries(self.t[lo:hi], self.rps[lo:hi], self.step_s)

    @property
    def last_t(self) -> float:
        return float(self.t[-1]) if len(self) else math.nan

    def stale(self, now_s: float, step_s: float) -> str | None:
        """Why the latest sample is too old at ``now_s`` (more than two steps of the source's or the series'
        own, whichever is longer), or None when it is fresh."""
        age = now_s - self.last_t
        if age > 2 * max(step_s, self.step_s):
            return f"stale: last sample is {age:.0f}s old (more than 2 steps)"
        return None

    @property
    def last_rps(self) -> float:
        return float(self.rps[-1]) if len(self) else math.nan
