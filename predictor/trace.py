"""Traces: ``timestamp,requests`` CSV files (requests per interval), as in ``../shared/data/traces``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from autoscaler.core.series import RateSeries


class TraceError(ValueError):
    """The trace file is missing or malformed (the message names the file and line)."""


@dataclass(frozen=True)
class Trace:
    """Request counts per interval. ``t`` is the interval start (UNIX s); gaps are absent rows."""

    name: str
    t: NDArray[np.float64]
    requests: NDArray[np.float64]
    step_s: float

    @property
    def rps(self) -> NDArray[np.float64]:
        return self.requests / self.step_s

    def as_rate_series(self) -> RateSeries:
        """Rate samples stamped at the *end* of each interval: visible only once the interval is over."""
        return RateSeries(self.t + self.step_s, self.rps, self.step_s)

    @property
    def start(self) -> float:
        return float(self.t[0])

    @property
    def end(self) -> float:
        return float(self.t[-1] + self.step_s)


def load_trace(path: str | Path) -> Trace:
    path = Path(path)
    times: list[float] = []
    counts: list[float] = []
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "requests"]:
            raise TraceError(f"{path}: line 1 must be the header 'timestamp,requests'")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                ts = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
                if ts.tzinfo is None:
                    raise ValueError("timestamp has no timezone")
                value = float(row[1])
            except (ValueError, IndexError) as exc:
                raise TraceError(f"{path}: line {lineno}: {exc}; expected e.g. 1995-07-01T04:00:00Z,42") from None
            if value < 0:
                raise TraceError(f"{path}: line {lineno}: negative request count")
            times.append(ts.timestamp())
            counts.append(value)
    if len(times) < 2:
        raise TraceError(f"{path}: needs at least two rows")
    t = np.asarray(times)
    if np.any(np.diff(t) <= 0):
        raise TraceError(f"{path}: timestamps must strictly increase")
    step = float(np.min(np.diff(t)))
    return Trace(path.stem, t, np.asarray(counts), step)
