"""A MetricsSource that replays a trace: the demo and the backtest see exactly what Prometheus would."""

from __future__ import annotations

from datetime import datetime

from autoscaler.core.errors import NoSamples
from autoscaler.core.series import RateSeries
from predictor.trace import Trace


class TraceMetricsSource:
    """Serves a trace's rates; at time ``end`` only intervals that finished by then are visible. Its step is the
    trace's own interval (a rate sample per row, stamped at the row's end); ``fetch`` ignores the step asked."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.series = trace.as_rate_series()
        self.step_s = trace.step_s

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        window = self.series.window(start.timestamp(), end.timestamp() + 1e-6)
        if len(window) == 0:
            raise NoSamples(f"trace {self.trace.name} has no data between {start:%F %H:%M} and {end:%F %H:%M}")
        return window
