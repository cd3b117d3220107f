"""The predictor interface: history in, a forecast of the peak rate over a horizon out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from autoscaler.core.series import RateSeries


@dataclass(frozen=True)
class Forecast:
    """What a predictor expects, and what it saw.

    ``peak_rps`` is the rate to provision for over ``horizon_s`` (already including any headroom the
    model chose); ``observed_rps`` is the latest observed rate, which scale-in never goes below.
    """

    peak_rps: float
    observed_rps: float
    horizon_s: float
    model: str
    details: dict[str, float | str] = field(default_factory=dict)


class Predictor(Protocol):
    """A forecasting model. Stateless between calls: everything it needs is in ``history``."""

    name: str

    def history_seconds(self) -> float:
        """How much history (seconds before now) the model wants from the metrics source."""
        ...

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        """Forecast from samples strictly before ``now`` (UNIX seconds)."""
        ...
