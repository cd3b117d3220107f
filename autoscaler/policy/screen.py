"""Which request-rate samples a decision may believe (pure; the tick calls it between the source and the predictor).

A request rate is never negative, and no pool's traffic is ``plausible_jump`` (20) times what its ``max`` nodes
serve: such samples are **bad data**. A sample ``plausible_jump`` times above the recent peak (the last
``plausible_window``, 7 days, and never less than one node's capacity) is an **implausible jump**: believed only
when the next sample confirms it (a real surge lasts; a broken exporter or a counter glitch does not).

* the latest sample bad, or more than ``MAX_BAD_SHARE`` of the samples bad → hold (and say why);
* a few bad samples in the history → ignored (and said);
* the latest sample an unconfirmed jump → hold until the next sample;
* an unconfirmed jump in the history (the sample after it is back to normal) → ignored (and said);
* two or more jumping samples in a row → a confirmed jump: followed;
* the latest sample rising from the one before it by more than any rise of the ``plausible_window`` (its
  precedent; rates below one node's capacity count as one node's) *and* above the window's highest rate →
  believed only up to the larger of the two until the next sample confirms it (the next rise is then within
  precedent), and the decision is **degraded**: it may scale up, never in. One glitch (``1e12``, ``1e300``,
  ten times the level) neither takes a pool to its max nor asks for machines, whether the tick or the fast
  guard reads it (one screen for both).

``gaps`` says when the samples a forecast reads are **degraded** for another reason: a gap in the recent
window (a forecast over a hole is not a forecast) or a ``rate()`` still warming up after the series (re)started
(its window, read from the query's range selector, does not yet hold a full range of samples).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.predictor import PredictorSettings

MAX_BAD_SHARE = 0.1
_FEW_SUSPECTS = 64  # samples above factor × their predecessor checked one by one (else: range maxima for all)


@dataclass(frozen=True)
class Screened:
    """The samples a decision may use; ``hold`` says why none may (bad data), ``notes`` what was ignored."""

    series: RateSeries
    hold: str | None = None
    notes: tuple[str, ...] = ()
    degraded: str | None = None  # the samples may raise the count but must not lower it (says why)


def screen(series: RateSeries, pool: PoolConfig, settings: PredictorSettings) -> Screened:
    """Screen finite samples (oldest first) of ``pool``'s request rate; see the module docstring."""
    n = len(series)
    if n == 0:
        return Screened(series)
    factor = settings.plausible_jump
    ceiling = factor * pool.capacity_per_node * pool.max
    negative = series.rps < 0
    absurd = series.rps > ceiling
    bad = negative | absurd
    what = _bad_words(pool, factor, ceiling)
    if bad[-1]:
        kind = "negative" if negative[-1] else "absurd"
        return Screened(series, hold=f"bad data: the latest sample is {_rps(series.last_rps)} req/s; {what[kind]}")
    n_bad = int(bad.sum())
    if n_bad > MAX_BAD_SHARE * n:
        kind = "negative" if negative.sum() >= absurd.sum() else "absurd"
        return Screened(
            series,
            hold=f"bad data: {n_bad} of {n} samples are negative or absurd (e.g. {_rps(_example(series, bad))} "
            f"req/s); {what[kind]}",
        )
    notes: list[str] = []
    if n_bad:
        example = _example(series, bad)
        kind = "negative" if negative.any() else "absurd"
        notes.append(
            f"ignored {n_bad} bad sample{'s' if n_bad > 1 else ''} ({_rps(example)} req/s, "
            f"{'negative' if kind == 'negative' else 'absurd'}) out of {n}"
        )
        series = RateSeries(series.t[~bad], series.rps[~bad], series.step_s)
    screened = _jumps(series, pool, settings, notes)
    return screened if screened.hold is not None else _precedent(screened, pool, settings)


def _precedent(screened: Screened, pool: PoolConfig, settings: PredictorSettings) -> Screened:
    """Cap the latest sample at the largest rise of the window when it rises faster than any (module docstring)."""
    t, v = screened.series.t, screened.series.rps
    if len(v) < 2:
        return screened
    window = settings.plausible_window.total_seconds()
    before = np.maximum(v[:-1], pool.capacity_per_node)  # a rise from below one node's capacity counts from one node
    rises = v[1:] / before
    recent = t[1:-1] >= t[-1] - window  # the rises before the latest one
    precedent = max(float(np.max(rises[:-1][recent])) if np.any(recent) else 1.0, 1.0)
    seen = float(np.max(v[:-1][t[:-1] >= t[-1] - window]))  # a level the pool reached this week is no surprise
    cap = max(precedent * float(before[-1]), seen)
    if rises[-1] <= precedent * (1 + 1e-9) or v[-1] <= cap:
        return screened
    why = (
        f"the latest sample ({_rps(float(v[-1]))} req/s) rose {rises[-1]:.1f}× from the one before, more than any rise "
        f"in the last {_days(window)} ({precedent:.2f}×), above the highest rate of that window: believed up to "
        f"{_rps(cap)} req/s until the next sample confirms it"
    )
    capped = RateSeries(t, np.append(v[:-1], cap), screened.series.step_s)
    return Screened(capped, notes=screened.notes, degraded=why)


_RANGE = re.compile(r"\[\s*((?:\d+(?:ms|s|m|h|d|w|y))+)\s*(?::[^\]]*)?\]")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def rate_window_s(query: str) -> float:
    """The longest range selector of a PromQL query (``rate(x[5m])`` → 300 s): how long a ``rate()`` takes to hold
    a full window of samples after its series (re)starts. 0 when the query has none (a recording rule, a trace)."""
    longest = 0.0
    for match in _RANGE.finditer(query):
        total = sum(float(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", match.group(1)))
        longest = max(longest, total)
    return longest


def gaps(series: RateSeries, now: float, since: float, window_s: float, warmup_s: float) -> str | None:
    """Why the recent samples are degraded (None: they are not): a gap within ``window_s`` before ``now``, or the
    series (re)started less than ``warmup_s`` ago (after a gap, or after ``since``, the start of what was
    asked for). A gap is a spacing of more than one and a half steps between samples."""
    t, step = series.t, max(series.step_s, 1e-9)
    if len(t) == 0:
        return None
    first = int(np.searchsorted(t, now - window_s, side="left"))
    lo = max(first - 1, 0)  # the sample before the window: a gap that ends inside it starts there
    spacing = np.diff(t[lo:])
    holes = np.flatnonzero(spacing > 1.5 * step)
    if holes.size:
        a, b = float(t[lo + holes[-1]]), float(t[lo + holes[-1] + 1])
        why = f"a gap in the metrics from {_hhmm(a)} to {_hhmm(b)} ({_dur(b - a)}) within the last {_dur(window_s)}"
        if now - b < warmup_s:
            why += f"; rate() warming up until {_hhmm(b + warmup_s)}"
        return why
    started = float(t[0])
    if started > since + 1.5 * step and now - started < warmup_s:
        return f"the series started at {_hhmm(started)}: rate() warming up until {_hhmm(started + warmup_s)}"
    return None


def _dur(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    return f"{seconds / 60:.3g}m" if seconds >= 60 else f"{seconds:.0f}s"


def window_peaks(t: np.ndarray, v: np.ndarray, window: float) -> np.ndarray:
    """For each sample i, the highest of the samples before it within ``window`` seconds (0 when there is none).

    Vectorised range maxima over a sparse table (log2(n) levels), so a week of 1-minute samples costs
    milliseconds per tick rather than a Python loop over every sample.
    """
    n = len(t)
    out = np.zeros(n)
    if n < 2:
        return out
    lo = np.searchsorted(t, t - window, side="left")  # first sample inside each window
    hi = np.arange(n)  # the window ends before the sample itself
    levels = [np.asarray(v, dtype=float)]
    while (1 << len(levels)) <= n:
        prev, half = levels[-1], 1 << (len(levels) - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    span = hi - lo
    some = span > 0
    k = np.zeros(n, dtype=int)
    k[some] = np.floor(np.log2(span[some])).astype(int)
    for level in np.unique(k[some]):
        rows = some & (k == level)
        table = levels[level]
        out[rows] = np.maximum(table[lo[rows]], table[hi[rows] - (1 << level)])
    return out


def _any_jump(t: np.ndarray, v: np.ndarray, window: float, factor: float, floor: float) -> bool:
    """Whether any sample is above ``factor`` × the peak of the samples in its window before it (or ``floor``).

    The previous sample is in the window unless a gap is longer than it, so no window's peak is below it: only
    the samples above ``factor`` × their predecessor (or after such a gap) need their window's peak, one slice
    each while they are few, the range maxima of ``window_peaks`` otherwise."""
    if len(t) < 2:
        return False
    suspects = np.flatnonzero((v[1:] > factor * np.maximum(v[:-1], floor)) | (np.diff(t) > window)) + 1
    if len(suspects) > _FEW_SUSPECTS:
        return bool(np.any(v[1:] > factor * np.maximum(window_peaks(t, v, window)[1:], floor)))
    starts = np.searchsorted(t, t[suspects] - window, side="left")
    for i, lo in zip(suspects.tolist(), starts.tolist(), strict=True):
        peak = float(np.max(v[lo:i])) if lo < i else 0.0
        if v[i] > factor * max(peak, floor):
            return True
    return False


def _jumps(series: RateSeries, pool: PoolConfig, settings: PredictorSettings, notes: list[str]) -> Screened:
    factor = settings.plausible_jump
    window = settings.plausible_window.total_seconds()
    floor = pool.capacity_per_node
    t, v = series.t, series.rps
    # Fast path: while every sample so far was believed, a sample's reference is the peak of ALL the samples
    # in its window; if no sample jumps against that, none jumps in the exact walk below either (induction).
    if not _any_jump(t, v, window, factor, floor):
        return Screened(series, notes=tuple(notes))
    keep = np.ones(len(t), dtype=bool)
    peaks: deque[tuple[float, float]] = deque()  # accepted (t, rate), rates decreasing: the window's max first
    pending: list[int] = []
    spikes: list[tuple[int, float]] = []

    def accept(i: int) -> None:
        while peaks and peaks[-1][1] <= v[i]:
            peaks.pop()
        peaks.append((float(t[i]), float(v[i])))

    def recent_peak(i: int) -> float:
        while peaks and peaks[0][0] < t[i] - window:
            peaks.popleft()
        return max(peaks[0][1] if peaks else 0.0, floor)

    for i in range(len(t)):
        if i == 0:
            accept(i)
            continue
        ref = recent_peak(i)
        if v[i] > factor * ref:
            pending.append(i)
            continue
        if len(pending) == 1:  # one jumping sample, then back to normal: not confirmed
            keep[pending[0]] = False
            spikes.append((pending[0], ref))
        else:
            for j in pending:
                accept(j)
        pending = []
        accept(i)
    if len(pending) == 1:
        i = pending[0]
        ref = recent_peak(i)
        return Screened(
            series,
            hold=f"the latest sample ({_rps(float(v[i]))} req/s) is {v[i] / ref:.1f}× the recent peak "
            f"({_rps(ref)} req/s over {_days(window)}), above the plausibility bound of {factor:g}× "
            "(predictor.plausible_jump): not believed until the next sample confirms it",
        )
    if spikes:
        i, ref = spikes[0]
        more = f" and {len(spikes) - 1} more" if len(spikes) > 1 else ""
        notes.append(
            f"ignored an unconfirmed spike of {_rps(float(v[i]))} req/s at {_hhmm(float(t[i]))} "
            f"({v[i] / ref:.1f}× the recent peak; the next sample did not confirm it){more}"
        )
        series = RateSeries(t[keep], v[keep], series.step_s)
    return Screened(series, notes=tuple(notes))


def _bad_words(pool: PoolConfig, factor: float, ceiling: float) -> dict[str, str]:
    return {
        "negative": "a request rate is never negative: check the query (rate() of a counter, not deriv() or delta())",
        "absurd": f"an absurd rate, more than {factor:g}× what the pool's max of {pool.max} nodes serves "
        f"({_rps(ceiling)} req/s; predictor.plausible_jump): check the query and its units (req/s)",
    }


def _example(series: RateSeries, mask: np.ndarray) -> float:
    return float(series.rps[mask][-1])


def _rps(value: float) -> str:
    if not math.isfinite(value) or abs(value) >= 1e9:
        return f"{value:.3g}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g}d" if days >= 1 else f"{seconds / 3600:g}h"


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")
