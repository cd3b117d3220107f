"""Incremental history: a metrics source that keeps each query's recent samples and fetches only what is new.

Every tick asks each pool's source for the same window (14 days by default) moved one interval on. Read whole, that
is 14 days of samples per pool per tick (two range queries at a 1-minute step). ``IncrementalSource`` wraps the
configured source and keeps, per query and step, the samples of the longest window asked for (``Kept``):

- **first fetch, or after a gap** (the samples kept end more than ``max_gap_s`` before the new end, or do not reach
  back to the start asked): the whole window, as the source alone would read it;
- **steady state**: one query from a little before the last sample kept (``overlap_s``: a recent sample can still
  change as late scrapes arrive, e.g. a ``rate()`` over their window) to the new end; the kept samples before that
  point and the new ones after it are the answer. One small query per pool per tick;
- **nothing new** (a window that ends where the kept samples end, e.g. the same tick asking again): from memory;
- a fetch of the new part that finds no sample at all (``NoSamples``: the series stopped) reads the whole window
  again, so the answer — old samples, judged stale by the tick, or the source's own error — is what a full read
  would give.

Range queries are evaluated per step on an absolute grid (``start`` rounded up to a multiple of the step), so the
merged series holds exactly the samples a full read would return for data that did not change behind the overlap.
Samples older than the longest window asked are dropped: memory stays at one window per query (8 bytes a sample:
on the step grid only the values are kept). A failing fetch changes nothing kept. Safe across the tick's threads
(one lock per query: the tick and the guard asking for one pool wait for each other, other pools do not).

``SeriesFiles`` keeps the same in files for a one-shot ``forescale tick`` under cron (``metrics.history_cache``):
each run reads what the previous one kept and fetches only what is new. A file that cannot be read is ignored
(the window is read whole).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from autoscaler.core.errors import NoSamples
from autoscaler.core.ports import MetricsSource
from autoscaler.core.series import RateSeries

log = logging.getLogger("forescale.metrics")

DEFAULT_OVERLAP_S = 900.0  # re-read the last 15 minutes: late scrapes change a rate() over a 5-minute window
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Kept:
    """Samples of one query at one step, covering ``[start, end]`` (UNIX seconds): every sample the source had
    there. ``span_s``: the longest window asked for (what is kept back from the end).

    On the step grid (a range query's answer always is) only the values are kept, a NaN where the source had no
    sample (``t0`` + i × ``grid_s``: 8 bytes a sample); off the grid, the times too (``t``)."""

    v: FloatArray
    start: float
    end: float
    span_s: float
    step_s: float  # the series' own step, as the source answered it
    t0: float = 0.0
    grid_s: float = 0.0
    t: FloatArray | None = None

    @classmethod
    def of(cls, t: FloatArray, v: FloatArray, start: float, end: float, span_s: float, step_s: float) -> Kept:
        if len(t) and step_s > 0:
            k = np.rint((t - t[0]) / step_s)
            if np.array_equal(t[0] + k * step_s, t):  # exactly on the grid: keep the values alone
                dense = np.full(int(k[-1]) + 1, np.nan)
                dense[k.astype(np.int64)] = v
                return cls(dense, start, end, span_s, step_s, float(t[0]), step_s)
        return cls(np.ascontiguousarray(v), start, end, span_s, step_s, t=np.ascontiguousarray(t))

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """The samples' times and values."""
        if self.t is not None:
            return self.t, self.v
        seen = np.flatnonzero(np.isfinite(self.v))
        return np.asarray(self.t0 + seen * self.grid_s, dtype=np.float64), self.v[seen]

    def window(self, start: float, end: float) -> RateSeries:
        """The samples within ``[start, end]`` (copies: callers may keep them while this is replaced)."""
        if self.t is None:
            lo = max(0, int(np.ceil((start - self.t0) / self.grid_s - 1e-9)))
            hi = min(len(self.v), int(np.floor((end - self.t0) / self.grid_s + 1e-9)) + 1)
            if hi <= lo:
                empty = np.empty(0)
                return RateSeries(empty, empty, self.step_s)
            seen = lo + np.flatnonzero(np.isfinite(self.v[lo:hi]))
            return RateSeries(np.asarray(self.t0 + seen * self.grid_s, dtype=np.float64), self.v[seen], self.step_s)
        lo = int(np.searchsorted(self.t, start, side="left"))
        hi = int(np.searchsorted(self.t, end, side="right"))
        return RateSeries(self.t[lo:hi].copy(), self.v[lo:hi].copy(), self.step_s)


class SeriesStore(Protocol):
    """Where kept samples survive the process (``SeriesFiles``), keyed by query and step."""

    def load(self, query: str, step_s: float) -> Kept | None: ...

    def save(self, query: str, step_s: float, kept: Kept) -> None: ...


class IncrementalSource:
    """A ``MetricsSource`` over ``inner`` that reads each query's window whole once, then only what is new."""

    def __init__(
        self,
        inner: MetricsSource,
        *,
        max_gap_s: float,
        overlap_s: float = DEFAULT_OVERLAP_S,
        store: SeriesStore | None = None,
    ) -> None:
        self.inner = inner
        self.step_s = inner.step_s
        self.max_gap_s = max_gap_s
        self.overlap_s = overlap_s
        self.store = store
        self._kept: dict[tuple[str, float], Kept] = {}
        self._locks: dict[tuple[str, float], threading.Lock] = {}
        self._lock = threading.Lock()

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        key = (query, float(step_s))
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            kept = self._kept.get(key)
            if kept is None and self.store is not None:
                kept = self.store.load(query, step_s)
            a, b = start.timestamp(), end.timestamp()
            got = self._read(query, kept, a, b, step_s)
            if got is not kept:
                with self._lock:
                    self._kept[key] = got
                if self.store is not None:
                    self.store.save(query, step_s, got)
        answer = got.window(a, b)
        if len(answer) == 0:  # as the source itself answers a window without samples
            raise NoSamples(f"no samples of the query between {_fmt(a)} and {_fmt(b)}")
        return answer

    def _read(self, query: str, kept: Kept | None, a: float, b: float, step_s: float) -> Kept:
        """What is kept after answering ``[a, b]``: ``kept`` itself when it covers it, else extended or read anew."""
        tolerance = max(step_s, 1.0)  # a window's start moves with the clock; the grid is the step
        if kept is not None and kept.start <= a + tolerance:
            if b <= kept.end:
                return kept  # nothing new: from memory
            if b - kept.end <= self.max_gap_s:
                since = max(kept.start, kept.end - self.overlap_s)
                try:
                    new = self.inner.fetch(query, _dt(since), _dt(b), step_s).finite()
                except NoSamples:
                    new = None  # the series stopped: read the window whole (old samples, or the source's error)
                if new is not None:
                    kt, kv = kept.arrays()
                    cut = int(np.searchsorted(kt, since, side="left"))
                    t = np.concatenate((kt[:cut], new.t))
                    v = np.concatenate((kv[:cut], new.rps))
                    return _trim(t, v, kept.start, b, max(kept.span_s, b - a), new.step_s)
        full = self.inner.fetch(query, _dt(a), _dt(b), step_s).finite()
        span = b - a if kept is None else max(kept.span_s, b - a)
        return _trim(full.t, full.rps, a, b, span, full.step_s)


def _trim(t: FloatArray, v: FloatArray, start: float, end: float, span_s: float, step_s: float) -> Kept:
    """Keep what lies within ``span_s`` before ``end`` (and after ``start``)."""
    lo_t = max(start, end - span_s)
    lo = int(np.searchsorted(t, lo_t, side="left"))
    return Kept.of(t[lo:], v[lo:], lo_t, end, span_s, float(step_s))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _fmt(ts: float) -> str:
    return _dt(ts).strftime("%Y-%m-%d %H:%M:%SZ")


class SeriesFiles:
    """Kept samples in files (one per query and step, ``<dir>/<hash>.npz``), for a one-shot ``forescale tick``.
    Written atomically (a temporary file renamed over the old one); a file that cannot be read is ignored."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, query: str, step_s: float) -> Path:
        digest = hashlib.sha256(f"{step_s:g}\0{query}".encode()).hexdigest()[:24]
        return self.directory / f"{digest}.npz"

    def load(self, query: str, step_s: float) -> Kept | None:
        path = self.path(query, step_s)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["query"]) != query or float(data["step_s"]) != float(step_s):
                    return None
                t, v = np.asarray(data["t"], np.float64), np.asarray(data["v"], np.float64)
                head = np.asarray(data["head"], np.float64)  # start, end, span_s, step_s
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the history cache %s (%s): reading the whole window", path, exc)
            return None
        if t.ndim != 1 or t.shape != v.shape or head.shape != (4,) or (t.size and np.any(np.diff(t) <= 0)):
            log.warning("ignoring the history cache %s (not a sorted series): reading the whole window", path)
            return None
        start, end, span_s, step_s = (float(x) for x in head)
        return Kept.of(t, v, start, end, span_s, step_s)

    def save(self, query: str, step_s: float, kept: Kept) -> None:
        path = self.path(query, step_s)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    t, v = kept.arrays()
                    arrays: dict[str, Any] = {
                        "t": t,
                        "v": v,
                        "head": np.array([kept.start, kept.end, kept.span_s, kept.step_s]),
                        "query": np.array(query),
                        "step_s": np.array(float(step_s)),
                    }
                    np.savez(fh, **arrays)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except OSError as exc:  # a cache that cannot be written only costs the next run a whole window
            log.warning("cannot write the history cache %s: %s", path, exc)
