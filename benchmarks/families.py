"""Simple causal scaling policies ("families"), each with one knob tuned in hindsight to just meet an SLO.

This is the yardstick of issue 21: forescale's cost is compared with the cheapest of these on the same trace,
under the same cluster model and scored from the same first decision. Every family decides at **every trace
sample** (finer than forescale's 20-minute tick) from the samples finished by then (causal), and its one knob
``k`` is the smallest that leaves at most the SLO's share of requests unserved over the whole replay (chosen
with hindsight: an upper bound on what the family could do causally):

- ``peak W``: k × the highest of the samples of the last W (W = one sample is "k × the last sample");
- ``mean W``: k × the mean of the samples of the last W;
- ``reactive``: nomad-autoscaler's target-value tracking, ceil(rate / (capacity × target)) of the last sample
  with a 5-minute cooldown between changes (both directions); the knob is 1 / target;
- ``trend LR``: a line fitted to the last 30 minutes, its highest point until the next decision's nodes are
  ready (lead time + one sample), × k (the case study's model, decided every sample);
- ``profile + guard``: k × the mean rate of the coming hour of the day over the past 7 days (hour-of-day
  profile), but never below the last sample (a guard at utilisation 1); the guard alone until a day is seen.

The cluster model is DESIGN.md's (``autoscaler.targets.simulated``): the first decision's count is ready at
once, a node asked for at t is ready at t + lead, scale-down is immediate and removes the newest nodes first.
Under that model the nodes ready at sample s are the *fewest* asked for at any decision in [s - lead, s] (the
decision in force at s - lead included): a node is ready only once it has stood a whole lead time, and
newest-first removal keeps the oldest nodes. ``Scorer`` computes exactly that with a range minimum, so a
family's figures equal ``autoscaler.backtest.replay.score_requests`` on its decisions (the unit tests check it,
and ``benchmarks/frontier.py`` re-scores each best family with ``benchmarks/independent_sim.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DAY = 86400.0
HOUR = 3600.0
PEAK_WINDOWS_S = (0.0, 600.0, 900.0, 1800.0, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY)  # 0: one sample
MEAN_WINDOWS_S = (600.0, 1800.0, HOUR, 3 * HOUR, 12 * HOUR, DAY)
TREND_WINDOW_S = 1800.0
REACTIVE_COOLDOWN_S = 300.0
PROFILE_DAYS = 7
K_MAX = 1e4


def _range_min(values: IntArray, lo: IntArray, hi: IntArray) -> IntArray:
    """min(values[lo[i] .. hi[i]]) (inclusive) for every i, with a sparse table (lo ≤ hi)."""
    levels = [values]
    while (1 << len(levels)) <= values.shape[0]:
        prev, half = levels[-1], 1 << (len(levels) - 1)
        levels.append(np.minimum(prev[:-half], prev[half:]))
    span = hi - lo + 1
    k = np.floor(np.log2(span)).astype(np.int64)
    out = np.empty(lo.shape[0], dtype=values.dtype)
    for level in np.unique(k):
        rows = k == level
        table = levels[level]
        out[rows] = np.minimum(table[lo[rows]], table[hi[rows] - (1 << level) + 1])
    return out


@dataclass(frozen=True)
class Score:
    cost: float  # node-hours / the oracle's
    unserved_pct: float
    node_hours: float


class Scorer:
    """Scores a count per decision (one decision per trace sample from ``first``) under the backtest's cluster model.

    ``t`` are the trace's interval starts, ``y`` its rates (req/s); the sample at index i becomes visible at
    t[i] + step (``visible``: the samples a decision at each replayed step may use).
    """

    def __init__(self, t: FloatArray, y: FloatArray, step_s: float, first: int, cap: float, lead_s: float) -> None:
        self.t, self.y, self.step, self.first, self.cap, self.lead = t, y, step_s, first, cap, lead_s
        self.tr, self.yr = t[first:], y[first:]
        self.spans = np.diff(np.append(self.tr, self.tr[-1] + step_s))
        j0 = np.searchsorted(self.tr, self.tr - lead_s + 1e-9, side="right") - 1
        self.lo = np.maximum(j0, 0).astype(np.int64)
        self.hi = np.arange(self.tr.shape[0], dtype=np.int64)
        self.total = float(np.sum(self.yr))
        self.oracle_node_hours = math.nan

    def ready(self, desired: IntArray) -> IntArray:
        return _range_min(desired, self.lo, self.hi)

    def node_hours(self, desired: IntArray) -> float:
        return float(np.sum(desired * self.spans)) / 3600.0

    def unserved_pct(self, desired: IntArray) -> float:
        short = np.maximum(self.yr - self.ready(desired) * self.cap, 0.0)
        return 100.0 * float(np.sum(short)) / self.total if self.total > 0 else 0.0

    def score(self, desired: IntArray) -> Score:
        nh = self.node_hours(desired)
        return Score(nh / self.oracle_node_hours, self.unserved_pct(desired), nh)

    def nodes(self, rps: FloatArray) -> IntArray:
        """nodes_for at utilisation 1 (predictor.capacity), vectorised."""
        n = np.ceil(np.nan_to_num(rps, nan=0.0, posinf=1e15) / self.cap - 1e-9)
        return np.maximum(n, 0).astype(np.int64)

    def trailing(self, window_s: float, how: str) -> FloatArray:
        """The peak or mean of the samples visible at each replayed decision within ``window_s`` (0: the last one)."""
        k = max(1, round(window_s / self.step)) if window_s > 0 else 1
        y = self.y
        padded = np.concatenate((np.full(k - 1, np.nan), y))
        win = sliding_window_view(padded, k)  # row i: samples i-k+1 … i
        with np.errstate(all="ignore"):
            stat = np.nanmax(win, axis=1) if how == "peak" else np.nanmean(win, axis=1)
        visible = np.concatenate(([np.nan], stat[:-1]))  # at decision i: samples before i
        return np.nan_to_num(visible[self.first :])


@dataclass(frozen=True)
class Family:
    name: str
    desired: Callable[[float], IntArray]  # k → the count asked for at every replayed step


def tune(scorer: Scorer, family: Family, slo_pct: float) -> tuple[float, Score] | None:
    """The smallest k (bisection; unserved falls as k grows) whose replay leaves ≤ ``slo_pct`` % unserved."""
    lo, hi = 0.0, 1.0
    while scorer.unserved_pct(family.desired(hi)) > slo_pct:
        lo, hi = hi, hi * 2.0
        if hi > K_MAX:
            return None
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if scorer.unserved_pct(family.desired(mid)) > slo_pct:
            lo = mid
        else:
            hi = mid
    return hi, scorer.score(family.desired(hi))


def _label(window_s: float, step_s: float) -> str:
    if window_s <= 0 or window_s <= step_s:
        return "last sample"
    if window_s >= HOUR:
        return f"{window_s / HOUR:g} h"
    return f"{window_s / 60:g} min"


def trend_base(scorer: Scorer, window_s: float = TREND_WINDOW_S) -> FloatArray:
    """A line through the last ``window_s`` of visible samples, its highest point over lead + one sample."""
    k = max(2, round(window_s / scorer.step))
    y = scorer.y
    n = y.shape[0]
    out = np.full(n, np.nan)
    if n >= k:
        win = sliding_window_view(y, k)
        x = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
        slope = (win @ x) / float(x @ x)  # per step
        now_level = win.mean(axis=1) + slope * ((k - 1) / 2.0 + 1.0)  # the line at the decision (one step on)
        ahead = now_level + slope * ((scorer.lead + scorer.step) / scorer.step)
        out[k:] = np.maximum(np.maximum(now_level, ahead), 0.0)[:-1]  # decision i sees samples up to i-1
    last = np.concatenate(([np.nan], y[:-1]))
    out = np.where(np.isnan(out), last, out)  # too little history: the last sample
    return np.nan_to_num(out[scorer.first :])


def profile_base(scorer: Scorer, days: int = PROFILE_DAYS) -> FloatArray:
    """The mean rate in the hour of the day that starts when nodes asked now are ready, over the past ``days``
    days (NaN until a day of history exists)."""
    t, y = scorer.t, scorer.y
    bucket = np.floor(t / HOUR).astype(np.int64)
    b0 = int(bucket[0])
    sums = np.bincount(bucket - b0, weights=y)
    counts = np.bincount(bucket - b0).astype(np.float64)
    target = np.floor((scorer.tr + scorer.lead) / HOUR).astype(np.int64) - b0
    total = np.zeros(target.shape[0])
    seen = np.zeros(target.shape[0])
    for d in range(1, days + 1):
        b = target - 24 * d
        ok = (b >= 0) & (b < sums.shape[0])
        total[ok] += sums[b[ok]]
        seen[ok] += counts[b[ok]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, total / np.maximum(seen, 1.0), np.nan)


def reactive_desired(scorer: Scorer, k: float, cooldown_s: float = REACTIVE_COOLDOWN_S) -> IntArray:
    """Target tracking on the last sample, no change within ``cooldown_s`` of the previous change."""
    want = scorer.nodes(k * scorer.trailing(0.0, "peak"))
    out = np.empty_like(want)
    current, last_change = int(want[0]), -math.inf
    tr = scorer.tr
    for i in range(want.shape[0]):
        w = int(want[i])
        if i > 0 and w != current and tr[i] - last_change >= cooldown_s - 1e-9:
            current, last_change = w, float(tr[i])
        out[i] = current
    return out


def families(scorer: Scorer) -> list[Family]:
    """Every family (and window) the yardstick tries."""
    out: list[Family] = []
    for w in PEAK_WINDOWS_S:
        base = scorer.trailing(w, "peak")
        out.append(Family(f"k × peak of {_label(w, scorer.step)}", lambda k, b=base: scorer.nodes(k * b)))
    for w in MEAN_WINDOWS_S:
        base = scorer.trailing(w, "mean")
        out.append(Family(f"k × mean of {_label(w, scorer.step)}", lambda k, b=base: scorer.nodes(k * b)))
    out.append(Family("reactive (1 / target)", lambda k: reactive_desired(scorer, k)))
    trend = trend_base(scorer)
    out.append(Family("k × trend LR (30 min)", lambda k: scorer.nodes(k * trend)))
    profile = profile_base(scorer)
    if np.any(np.isfinite(profile)):
        last = scorer.trailing(0.0, "peak")
        out.append(
            Family(
                "k × hour-of-day profile + guard",
                lambda k: scorer.nodes(np.fmax(k * profile, last)),
            )
        )
    return out


@dataclass(frozen=True)
class Tuned:
    family: str
    k: float
    score: Score


def best_families(scorer: Scorer, slo_pct: float) -> list[Tuned]:
    """Every family tuned to ``slo_pct``, cheapest first (families that cannot meet it are left out)."""
    out = []
    for fam in families(scorer):
        got = tune(scorer, fam, slo_pct)
        if got is not None:
            out.append(Tuned(fam.name, got[0], got[1]))
    return sorted(out, key=lambda r: r.score.node_hours)


def desired_of(scorer: Scorer, name: str, k: float) -> IntArray:
    """The counts a named family asks for with knob ``k`` (to write its decisions out)."""
    for fam in families(scorer):
        if fam.name == name:
            return fam.desired(k)
    raise KeyError(name)
