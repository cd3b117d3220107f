"""Incremental history (sources/incremental.py): the whole window once, then one small read per tick; the answers
are exactly what a whole read gives; after a gap, or when the new part has no sample, the window is read whole."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.core.errors import MetricsUnavailable, NoSamples
from autoscaler.core.series import RateSeries
from autoscaler.sources.incremental import IncrementalSource, SeriesFiles

STEP = 60.0
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=2)
TICK = timedelta(minutes=20)


class GridSource:
    """A source over a rate defined on the absolute step grid (as Prometheus evaluates a range query); ``revise``
    changes a recent sample, ``holes`` are times without a sample; every fetch is recorded."""

    step_s = STEP

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self.revised: dict[float, float] = {}
        self.holes: set[float] = set()
        self.until = math.inf  # no samples after this (the series stopped)

    def value(self, t: float) -> float:
        return self.revised.get(t, 100.0 + 50.0 * math.sin(t / 3600.0))

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        a, b = start.timestamp(), end.timestamp()
        self.calls.append((a, b))
        t = np.arange(math.ceil(a / step_s) * step_s, math.floor(b / step_s) * step_s + 1, step_s)
        t = t[[x not in self.holes and x <= self.until for x in t]]
        if len(t) == 0:
            raise NoSamples("query returned no data")
        return RateSeries(t, np.array([self.value(x) for x in t]), step_s)


def fetch(source: IncrementalSource | GridSource, end: datetime, window: timedelta = WINDOW) -> RateSeries:
    return source.fetch("q", end - window, end, STEP)


def same(a: RateSeries, b: RateSeries) -> bool:
    return np.array_equal(a.t, b.t) and np.array_equal(a.rps, b.rps) and a.step_s == b.step_s


def test_the_whole_window_once_then_only_what_is_new() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3 * TICK.total_seconds())
    first = fetch(source, T0)
    assert same(first, fetch(GridSource(), T0)) and len(inner.calls) == 1
    for k in range(1, 6):
        end = T0 + k * TICK
        got = fetch(source, end)
        assert same(got, fetch(GridSource(), end))  # what a whole read would answer
        a, b = inner.calls[-1]
        assert b == end.timestamp() and b - a == (TICK + timedelta(minutes=15)).total_seconds()  # + the overlap
    assert len(inner.calls) == 6  # one read per tick
    kept = source._kept[("q", STEP)]
    assert len(kept.arrays()[0]) == len(first)  # one window kept, not a growing history
    assert kept.t is None and kept.v.nbytes <= 8 * len(first)  # on the grid: the values alone


def test_a_recent_sample_that_changes_is_read_again() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3 * TICK.total_seconds())
    fetch(source, T0)
    late = T0.timestamp() - 600  # a sample 10 minutes before the last read: a late scrape changed it
    inner.revised[late] = 7.0
    got = fetch(source, T0 + TICK)
    assert got.rps[np.searchsorted(got.t, late)] == 7.0
    gone = (T0 + TICK).timestamp() - 300  # and one that disappeared (within 15 minutes of the last read)
    assert gone in got.t
    inner.holes.add(gone)
    assert gone not in fetch(source, T0 + 2 * TICK).t


def test_the_same_window_again_is_answered_from_memory() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3600)
    fetch(source, T0)
    assert same(fetch(source, T0), fetch(GridSource(), T0)) and len(inner.calls) == 1


def test_after_a_gap_the_window_is_read_whole() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3 * TICK.total_seconds())
    fetch(source, T0)
    end = T0 + 4 * TICK  # the daemon stood by for an hour
    assert same(fetch(source, end), fetch(GridSource(), end))
    assert inner.calls[-1] == ((end - WINDOW).timestamp(), end.timestamp())


def test_a_series_that_stopped_gets_the_answer_a_whole_read_gives() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3 * TICK.total_seconds())
    fetch(source, T0)
    inner.until = T0.timestamp() - 1800  # nothing since half an hour before the last tick
    reference = GridSource()
    reference.until = inner.until
    assert same(fetch(source, T0 + TICK), fetch(reference, T0 + TICK))  # old samples: the tick judges them stale
    assert inner.calls[-1] == ((T0 + TICK - WINDOW).timestamp(), (T0 + TICK).timestamp())
    inner.until = -math.inf
    with pytest.raises(MetricsUnavailable):
        fetch(source, T0 + 2 * TICK)


def test_the_guard_s_short_window_keeps_the_long_one() -> None:
    inner = GridSource()
    source = IncrementalSource(inner, max_gap_s=3 * TICK.total_seconds())
    fetch(source, T0)
    guard_end = T0 + timedelta(minutes=5)
    short = fetch(source, guard_end, timedelta(minutes=2))
    assert same(short, fetch(GridSource(), guard_end, timedelta(minutes=2)))
    calls = len(inner.calls)
    assert same(fetch(source, T0 + TICK), fetch(GridSource(), T0 + TICK)) and len(inner.calls) == calls + 1
    assert inner.calls[-1][0] > (T0 + TICK - WINDOW).timestamp()  # incremental: the long window was kept


def test_a_one_shot_tick_reads_what_the_previous_run_kept(tmp_path: Path) -> None:
    inner = GridSource()
    fetch(IncrementalSource(inner, max_gap_s=3600, store=SeriesFiles(tmp_path)), T0)
    again = IncrementalSource(inner, max_gap_s=3600, store=SeriesFiles(tmp_path))  # the next cron run
    assert same(fetch(again, T0 + TICK), fetch(GridSource(), T0 + TICK))
    assert inner.calls[-1][0] > (T0 + TICK - WINDOW).timestamp() and len(inner.calls) == 2
    for path in tmp_path.glob("*.npz"):
        path.write_bytes(b"not a cache")
    broken = IncrementalSource(inner, max_gap_s=3600, store=SeriesFiles(tmp_path))
    assert same(fetch(broken, T0 + 2 * TICK), fetch(GridSource(), T0 + 2 * TICK))
    assert inner.calls[-1] == ((T0 + 2 * TICK - WINDOW).timestamp(), (T0 + 2 * TICK).timestamp())


def test_samples_off_the_step_grid_are_kept_with_their_times() -> None:
    from autoscaler.sources.incremental import Kept

    t = np.array([0.0, 60.0, 125.0, 180.0])
    kept = Kept.of(t, np.array([1.0, 2.0, 3.0, 4.0]), 0.0, 180.0, 180.0, 60.0)
    assert kept.t is not None and np.array_equal(kept.window(60.0, 130.0).t, [60.0, 125.0])
    on_grid = Kept.of(np.array([0.0, 60.0, 180.0]), np.array([1.0, 2.0, 4.0]), 0.0, 180.0, 180.0, 60.0)
    assert on_grid.t is None and np.array_equal(on_grid.window(30.0, 180.0).t, [60.0, 180.0])
    assert np.array_equal(on_grid.window(30.0, 180.0).rps, [2.0, 4.0])
