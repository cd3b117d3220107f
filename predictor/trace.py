"""Traces: ``timestamp,requests`` CSV files (requests per interval), as in ``../shared/data/traces``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

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


# Bounds on what a trace file may be, so a wrong path (/dev/zero, a binary, a log) fails in a line instead of
# reading forever: a row is "timestamp,requests" (tens of bytes), and a month at one-second steps is ~2.6 M rows.
MAX_LINE_CHARS = 4096
MAX_ROWS = 10_000_000


def _lines(fh: TextIO, path: Path) -> Iterator[str]:
    """The file's lines, each read with a bound: a line longer than ``MAX_LINE_CHARS`` or a NUL ends it."""
    lineno = 0
    while True:
        lineno += 1
        line = fh.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if "\0" in line:
            raise TraceError(f"{path}: line {lineno}: binary data (a NUL byte), not a timestamp,requests CSV")
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise TraceError(
                f"{path}: line {lineno} is longer than {MAX_LINE_CHARS} characters: not a timestamp,requests CSV"
            )
        if lineno > MAX_ROWS:
            raise TraceError(f"{path}: more than {MAX_ROWS} rows; replay a shorter span")
        yield line


def load_trace(path: str | Path) -> Trace:
    """Read a ``timestamp,requests`` CSV; a wrong file (binary, endless, huge) is a one-line TraceError."""
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror})") from None
    with fh:
        try:
            return _parse(csv.reader(_lines(fh, path)), path)
        except UnicodeDecodeError:
            raise TraceError(f"{path}: not UTF-8 text; expected a timestamp,requests CSV") from None
        except csv.Error as exc:
            raise TraceError(f"{path}: not a timestamp,requests CSV ({exc})") from None
        except OSError as exc:
            raise TraceError(f"{path}: cannot read trace ({exc.strerror})") from None


def _parse(reader: Iterator[list[str]], path: Path) -> Trace:
    """Rows → Trace; every problem is a TraceError naming the file and line."""
    times: list[float] = []
    counts: list[float] = []
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
        if not math.isfinite(value) or value < 0:
            raise TraceError(f"{path}: line {lineno}: request count {row[1].strip()[:20]!r} is not a count >= 0")
        times.append(ts.timestamp())
        counts.append(value)
    if len(times) < 2:
        raise TraceError(f"{path}: needs at least two rows")
    t = np.asarray(times)
    if np.any(np.diff(t) <= 0):
        raise TraceError(f"{path}: timestamps must strictly increase")
    step = float(np.min(np.diff(t)))
    return Trace(path.stem, t, np.asarray(counts), step)
