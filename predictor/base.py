"""The predictor interface: history in, a forecast of the peak rate over a horizon out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.core.series import RateSeries


@dataclass(frozen=True)
class Forecast:
    """What a predictor expects, and what it saw.

    ``peak_rps`` is the rate to provision for over ``horizon_s`` (already including any headroom the
    model chose); ``observed_rps`` is the latest observed rate, which scale-in never goes below.
    ``guard_multiplier`` and ``bound_rps`` are the headroom the fast guard applies to the rates it sees until
    the next forecast (``rate × multiplier``, never above ``max(rate, bound_rps)``: headroom stops at the
    pool's recent need); the defaults are no headroom.
    """

    peak_rps: float
    observed_rps: float
    horizon_s: float
    model: str
    details: dict[str, float | str] = field(default_factory=dict)
    guard_multiplier: float = 1.0
    bound_rps: float = math.inf

    def guard_rps(self, rate_rps: float) -> float:
        """The rate the guard provisions for when it sees ``rate_rps`` (see the class docstring)."""
        return min(self.guard_multiplier * rate_rps, max(rate_rps, self.bound_rps))


class Predictor(Protocol):
    """A forecasting model. Stateless between calls: everything it needs is in ``history``."""

    name: str

    def history_seconds(self) -> float:
        """How much history (seconds before now) the model wants from the metrics source."""
        ...

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        """Forecast from samples strictly before ``now`` (UNIX seconds)."""
        ...
