"""Which request-rate samples a decision may believe (pure; the tick calls it between the source and the predictor).

A request rate is never negative, and no pool's traffic is ``plausible_jump`` (20) times what its ``max`` nodes
serve: such samples are **bad data**. A sample ``plausible_jump`` times above the recent peak (the last
``plausible_window``, 7 days, and never less than one node's capacity) is an **implausible jump**: believed only
when the next sample confirms it (a real surge lasts; a broken exporter or a counter glitch does not).

* the latest sample bad, or more than ``MAX_BAD_SHARE`` of the samples bad → hold (and say why);
* a few bad samples in the history → ignored (and said);
* the latest sample an unconfirmed jump → hold until the next sample;
* an unconfirmed jump in the history (the sample after it is back to normal) → ignored (and said);
* two or more jumping samples in a row → a confirmed jump: followed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.predictor import PredictorSettings

MAX_BAD_SHARE = 0.1


@dataclass(frozen=True)
class Screened:
    """The samples a decision may use; ``hold`` says why none may (bad data), ``notes`` what was ignored."""

    series: RateSeries
    hold: str | None = None
    notes: tuple[str, ...] = ()


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
            series, hold=f"bad data: {n_bad} of {n} samples are negative or absurd (e.g. {_rps(_example(series, bad))} "
            f"req/s); {what[kind]}"
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
    return _jumps(series, pool, settings, notes)


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


def _jumps(series: RateSeries, pool: PoolConfig, settings: PredictorSettings, notes: list[str]) -> Screened:
    factor = settings.plausible_jump
    window = settings.plausible_window.total_seconds()
    floor = pool.capacity_per_node
    t, v = series.t, series.rps
    # Fast path: while every sample so far was believed, a sample's reference is the peak of ALL the samples
    # in its window; if no sample jumps against that, none jumps in the exact walk below either (induction).
    if not np.any(v[1:] > factor * np.maximum(window_peaks(t, v, window)[1:], floor)):
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
