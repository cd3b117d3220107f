"""The backtest's queue model (DESIGN.md "Queue-fed pools"): demand beyond capacity waits, it does not vanish.

A fluid FIFO queue served at the pool's *ready* capacity: over a trace interval the arrival rate ``d`` and
the service capacity ``c`` (ready nodes × capacity_per_node) are constant, so the backlog follows
``B(t) = max(0, B₀ + (d − c)·t)`` (Lindley's recursion between interval boundaries). A gap in the trace has
no arrivals, and the nodes that exist during it keep draining the backlog.

Waiting time is exact FIFO: a request that arrives at ``s`` is served when the cumulative departures
``D = A − B`` reach the cumulative arrivals ``A(s)``; its wait is that instant minus ``s`` (service time
itself is not a wait). Arrivals are sampled every ``resolution_s`` inside each interval (each sample carries
its share of the interval's requests); the waits at the samples are exact. Requests still queued when the
trace ends are served at the last capacity (an infinite wait when it is zero).

``queue_figures`` scores a whole replay (p95/p99 wait, share of requests waiting beyond the SLO, peak
backlog); ``FifoBacklog`` steps the same recursion interval by interval, for a replay whose tick reads the
backlog as it goes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from autoscaler.core.errors import MetricsUnavailable
from autoscaler.core.ports import MetricsSource
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.queue import QueueSettings
from predictor.trace import Trace

FloatArray = NDArray[np.float64]
RESOLUTION_S = 5.0  # arrival samples inside an interval: every 5 s (a 5-minute interval: 60 samples)


@dataclass(frozen=True)
class QueueFigures:
    """Wait and backlog figures of one policy over one replay (waits in seconds, backlog in requests)."""

    slo_s: float
    p95_wait_s: float
    p99_wait_s: float
    beyond_slo_pct: float  # share of requests that waited longer than slo_s
    peak_backlog: float
    mean_wait_s: float

    def summary(self) -> dict[str, float]:
        """The queue figures of ``forescale backtest --json`` (rounded like the rest)."""
        return {
            "latency_slo_s": round(self.slo_s, 4),
            "p95_wait_s": round(self.p95_wait_s, 4),
            "p99_wait_s": round(self.p99_wait_s, 4),
            "beyond_slo_pct": round(self.beyond_slo_pct, 4),
            "peak_backlog": round(self.peak_backlog, 2),
            "mean_wait_s": round(self.mean_wait_s, 4),
        }


def drained(backlog: float, arrival_rps: float, capacity_rps: float, seconds: float) -> float:
    """The backlog after ``seconds`` of arrivals at ``arrival_rps`` served at ``capacity_rps`` (never below 0)."""
    return max(0.0, backlog + (arrival_rps - capacity_rps) * seconds)


class FifoBacklog:
    """The queue's backlog, stepped one trace interval at a time (the replay's gauge)."""

    def __init__(self) -> None:
        self.backlog = 0.0

    def advance(self, arrival_rps: float, capacity_rps: float, step_s: float, span_s: float) -> float:
        """Arrivals for ``step_s`` (the observed interval), service for ``span_s`` ≥ ``step_s`` (a gap after the
        interval has no arrivals); returns the backlog at the end."""
        self.backlog = drained(self.backlog, arrival_rps, capacity_rps, step_s)
        if span_s > step_s:
            self.backlog = drained(self.backlog, 0.0, capacity_rps, span_s - step_s)
        return self.backlog


def _segments(
    t: FloatArray, demand: FloatArray, capacity: FloatArray, step_s: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(start, length, arrival rate, capacity) of every constant piece: each interval, then its gap if any."""
    spans = np.diff(np.append(t, t[-1] + step_s))
    gap = spans - step_s > 1e-9
    n = len(t)
    start = np.concatenate((t, t[gap] + step_s))
    length = np.concatenate((np.full(n, step_s), spans[gap] - step_s))
    rate = np.concatenate((demand, np.zeros(int(gap.sum()))))
    cap = np.concatenate((capacity, capacity[gap]))
    order = np.argsort(start, kind="stable")
    return start[order], length[order], rate[order], cap[order]


def backlog_at_starts(t: FloatArray, demand: FloatArray, capacity: FloatArray, step_s: float) -> FloatArray:
    """The backlog at the start of every interval (Lindley's recursion, vectorised), and at the end (n + 1)."""
    start, length, rate, cap = _segments(t, demand, capacity, step_s)
    ends = _boundary_backlog(length, rate, cap)
    at = np.searchsorted(start, t)  # index of each interval's own segment
    return np.append(ends[at], ends[-1])


def _boundary_backlog(length: FloatArray, rate: FloatArray, cap: FloatArray) -> FloatArray:
    """Backlog at every segment boundary, starting empty: B_k = S_k − min(0, min_{j≤k} S_j)."""
    s = np.concatenate(([0.0], np.cumsum((rate - cap) * length)))
    backlog = np.maximum(s - np.minimum(np.minimum.accumulate(s), 0.0), 0.0)
    rounding = 1e-9 * max(1.0, float(np.sum(rate * length)))  # the cumulative sums' rounding is not a backlog
    backlog[backlog < rounding] = 0.0
    return backlog


def queue_figures(
    t: FloatArray,
    demand: FloatArray,
    ready: FloatArray,
    capacity_per_node: float,
    step_s: float,
    slo_s: float,
    resolution_s: float = RESOLUTION_S,
) -> QueueFigures:
    """Score waits of a replay: ``demand`` in req/s per interval starting at ``t``, ``ready`` nodes in each."""
    capacity = np.asarray(ready, dtype=np.float64) * capacity_per_node
    start, length, rate, cap = _segments(t, np.asarray(demand, dtype=np.float64), capacity, step_s)
    backlog = _boundary_backlog(length, rate, cap)
    # Cumulative arrivals and departures at every boundary, plus the instants the queue empties inside a piece.
    arrived = np.concatenate(([0.0], np.cumsum(rate * length)))
    bounds_t = np.append(start, start[-1] + length[-1])
    b0, surplus = backlog[:-1], cap - rate
    with np.errstate(divide="ignore", invalid="ignore"):
        empties = np.where((b0 > 0) & (surplus > 0), b0 / surplus, np.inf)
    inside = empties < length
    zero_t = start[inside] + empties[inside]
    zero_d = arrived[:-1][inside] + rate[inside] * empties[inside]  # queue empty: departures = arrivals
    last_cap = float(cap[-1])
    tail_b = float(backlog[-1])
    pts_t = np.concatenate((bounds_t, zero_t))
    pts_d = np.concatenate((arrived - backlog, zero_d))
    if tail_b > 0 and last_cap > 0:  # what is still queued at the end is served at the last capacity
        pts_t = np.append(pts_t, bounds_t[-1] + tail_b / last_cap)
        pts_d = np.append(pts_d, arrived[-1])
    order = np.argsort(pts_t, kind="stable")
    pts_t, pts_d = pts_t[order], np.maximum.accumulate(pts_d[order])

    # Arrival samples: the middle of each resolution slot of each interval with arrivals.
    k = max(1, math.ceil(step_s / resolution_s - 1e-9))
    busy = rate > 0
    s = (start[busy][:, None] + (np.arange(k) + 0.5)[None, :] * (length[busy][:, None] / k)).ravel()
    a = (arrived[:-1][busy][:, None] + rate[busy][:, None] * (s.reshape(-1, k) - start[busy][:, None])).ravel()
    weight = np.repeat(rate[busy] * length[busy] / k, k)
    served_at = _first_reaching(pts_t, pts_d, a)
    wait = np.maximum(served_at - s, 0.0)
    wait[wait < 1e-6] = 0.0
    total = float(weight.sum())
    if total <= 0:
        return QueueFigures(slo_s, 0.0, 0.0, 0.0, float(backlog.max(initial=0.0)), 0.0)
    return QueueFigures(
        slo_s=slo_s,
        p95_wait_s=_weighted_quantile(wait, weight, 0.95),
        p99_wait_s=_weighted_quantile(wait, weight, 0.99),
        beyond_slo_pct=100.0 * float(weight[wait > slo_s].sum()) / total,
        peak_backlog=float(backlog.max(initial=0.0)),
        mean_wait_s=float(np.sum(np.where(np.isfinite(wait), wait, 0.0) * weight) / total)
        if np.all(np.isfinite(wait))
        else math.inf,
    )


def _first_reaching(pts_t: FloatArray, pts_d: FloatArray, target: FloatArray) -> FloatArray:
    """The first instant the piecewise-linear, non-decreasing departures curve reaches each ``target``
    (infinity when it never does)."""
    j = np.searchsorted(pts_d, target - 1e-9 * np.maximum(1.0, np.abs(target)), side="left")
    out = np.full(target.shape, np.inf)
    ok = j < len(pts_d)
    first = ok & (j == 0)
    out[first] = pts_t[0]
    mid = ok & (j > 0)
    jm = j[mid]
    d0, d1 = pts_d[jm - 1], pts_d[jm]
    t0, t1 = pts_t[jm - 1], pts_t[jm]
    frac = np.clip((target[mid] - d0) / np.where(d1 > d0, d1 - d0, 1.0), 0.0, 1.0)
    out[mid] = t0 + frac * (t1 - t0)
    return out


def _weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    """The smallest value at or below which a share ``q`` of the weight lies."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    i = int(np.searchsorted(cum, q * cum[-1] - 1e-9 * cum[-1], side="left"))
    return float(values[order][min(i, len(order) - 1)])


class SimulatedBacklog:
    """A replay's queue as Prometheus would show it: the backlog gauge at every trace step so far, answering the
    pool's ``backlog_query`` (and ``in_flight_query``: always 0, the fluid model holds nothing unacked); every
    other query goes to ``rates`` (the trace's request rate)."""

    def __init__(self, trace: Trace, first: int, queue: QueueSettings, rates: MetricsSource) -> None:
        self.trace = trace
        self.first = first
        self.queries = {queue.backlog_query: True, **({queue.in_flight_query: False} if queue.in_flight_query else {})}
        self.rates = rates
        self.step_s = rates.step_s  # the metrics port: the rate source's own step
        n = len(trace.t) - first
        self.t = np.zeros(n)
        self.value = np.zeros(n)
        self.filled = 0
        self.fifo = FifoBacklog()

    def step(self, i: int, ready: float, capacity_per_node: float) -> None:
        """Record the backlog at the start of replayed step ``i``, after step ``i - 1`` ran with ``ready`` nodes."""
        if i > 0:
            k = self.first + i - 1
            span = float(self.trace.t[k + 1] - self.trace.t[k])
            self.fifo.advance(float(self.trace.rps[k]), ready * capacity_per_node, self.trace.step_s, span)
        self.t[i] = self.trace.t[self.first + i]
        self.value[i] = self.fifo.backlog
        self.filled = i + 1

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        if query not in self.queries:
            return self.rates.fetch(query, start, end, step_s)
        t = self.t[: self.filled]
        lo = int(np.searchsorted(t, start.timestamp(), side="left"))
        hi = int(np.searchsorted(t, end.timestamp() + 1e-6, side="left"))
        if hi <= lo:
            raise MetricsUnavailable(
                f"simulated queue of {self.trace.name}: no sample between {start:%H:%M} and {end:%H:%M}"
            )
        values = self.value[lo:hi] if self.queries[query] else np.zeros(hi - lo)
        return RateSeries(t[lo:hi].copy(), values.copy(), self.trace.step_s)
