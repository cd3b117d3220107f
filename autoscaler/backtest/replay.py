"""Replay a trace through the real tick against the simulated cluster, and account for the result.

Semantics are DESIGN.md's "Backtest":
- the tick runs at trace step starts, every ``config.daemon.interval``; at time t it sees only the
  intervals that finished by t (``TraceMetricsSource``);
- the replay starts with the first decision's count ready; a node added at t is ready at t + lead_time
  (queued, as in Nomad while its machine boots; placed once ready); scale-down is immediate, still-warming
  nodes first (newest first) (``SimulatedCluster``);
- cost = provisioned node-hours, warming nodes included, accrued over wall time (gaps too: the nodes
  exist while the trace is silent);
- an interval is under capacity when its demand > ready × capacity_per_node (ready at its start);
  unserved % = requests above ready capacity / all requests; gaps are masked (neither served nor not);
- between ticks the pool's guard (when enabled) runs every ``guard.interval`` at the trace steps, through
  the same ``run_tick`` (guard mode), and its scale-ups are decisions like any other;
- flapping: scale actions per day, and reversals (a change opposite to the previous change, strictly within
  60 minutes of it: ``reversals``), for every policy.

``run_backtest`` scores forescale and the reference policies (predictor/reference.py) on the same steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from autoscaler.backtest.queue import QueueFigures, SimulatedBacklog, queue_figures
from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import ForescaleError
from autoscaler.core.ports import NoOverrides, Notifier, OverrideProvider
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import Config
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.sources.trace import TraceMetricsSource
from autoscaler.targets.simulated import SimulatedCluster
from predictor import reference
from predictor.base import Predictor
from predictor.factory import make_predictor
from predictor.trace import Trace


class BacktestError(ForescaleError):
    """The backtest cannot run as asked (trace too short, bad options); the message says what to fix."""


POOL = "reference"  # the reference policies' pool on their simulated cluster
# The one definition of flapping (``reversals``): a change opposite to the previous change, strictly within
# 60 minutes of it. The independent simulator (benchmarks/independent_sim.py) counts the same way.
REVERSAL_WINDOW_S = 3600.0
WARMUP_S = 3600.0  # by default the replay starts after one hour of history (a quarter of shorter traces)
POLICIES = ("forescale", "oracle", "static_peak", "reactive", "trend_lr")


@dataclass
class ReplayResult:
    """Cost and SLO figures of one policy over one trace, plus every decision it made."""

    node_hours: float = 0.0
    queued_node_hours: float = 0.0  # of node_hours: nodes asked for but still booting (queued in Nomad)
    override_node_hours: float = 0.0  # of node_hours: nodes above the forecast's need, asked by floors and pins
    under_capacity_minutes: float = 0.0
    observed_minutes: float = 0.0
    unserved_requests: float = 0.0
    total_requests: float = 0.0
    scale_actions: int = 0
    reversals: int = 0
    span_s: float = 0.0
    decisions: list[tuple[float, int]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    provisioned: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    ready: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    queue: QueueFigures | None = None  # a queue-fed pool's waits and backlog (backtest/queue.py)

    @property
    def under_capacity_pct(self) -> float:
        return 100.0 * self.under_capacity_minutes / self.observed_minutes if self.observed_minutes else 0.0

    @property
    def unserved_pct(self) -> float:
        return 100.0 * self.unserved_requests / self.total_requests if self.total_requests else 0.0

    @property
    def actions_per_day(self) -> float:
        return self.scale_actions * 86400.0 / self.span_s if self.span_s > 0 else 0.0

    @property
    def reversal_pct(self) -> float:
        """Reversals within an hour as a share of scale actions."""
        return 100.0 * self.reversals / self.scale_actions if self.scale_actions else 0.0

    def summary(self) -> dict[str, float | int | dict[str, float]]:
        """The figures of ``forescale backtest --json``."""
        return {
            "node_hours": round(self.node_hours, 4),
            "under_capacity_minutes": round(self.under_capacity_minutes, 4),
            "under_capacity_pct": round(self.under_capacity_pct, 4),
            "unserved_pct": round(self.unserved_pct, 4),
            "scale_actions": self.scale_actions,
            "scale_actions_per_day": round(self.actions_per_day, 2),
            "reversals_1h": self.reversals,
            "reversals_1h_pct": round(self.reversal_pct, 2),
            **({"queue": self.queue.summary()} if self.queue is not None else {}),
        }


@dataclass(frozen=True)
class Mark:
    """A decision worth marking on a plot: ``kind`` is "guard", "schedule_floor" or "manual_pin"."""

    t: float
    count: int
    kind: str


MARKED = ("schedule_floor", "manual_pin")


def reversals(decisions: Sequence[tuple[float, int]], window_s: float = REVERSAL_WINDOW_S) -> tuple[int, int]:
    """(scale actions, reversals) of a ``(time, desired)`` sequence whose first entry sets the fleet.

    **The reversal definition** (every figure of forescale and of the reference policies uses this function):
    a change in the opposite direction of the previous change, strictly within ``window_s`` (60 minutes) of
    it — 11 → 12 at 10:00 then 12 → 11 at 10:20 is one; 12 → 11 at 11:00 exactly is not; two changes in the
    same direction never are. Decisions that keep the count are not changes.
    """
    actions = flips = 0
    last: tuple[float, int] | None = None  # (time, sign) of the previous change
    for (_, before), (t, after) in itertools.pairwise(decisions):
        if after == before:
            continue
        actions += 1
        sign = 1 if after > before else -1
        if last is not None and sign != last[1] and t - last[0] < window_s - 1e-9:
            flips += 1
        last = (t, sign)
    return actions, flips


def account(
    trace: Trace, start_index: int, capacity_per_node: float, provisioned: np.ndarray, ready: np.ndarray
) -> ReplayResult:
    """Score per-interval provisioned/ready counts (arrays aligned with trace[start_index:])."""
    t = trace.t[start_index:]
    demand = trace.rps[start_index:]
    steps = trace.step_s
    # Node-hours accrue over wall time, including across gaps (the nodes exist while unobserved).
    spans = np.diff(np.append(t, t[-1] + steps))
    res = ReplayResult()
    res.node_hours = float(np.sum(provisioned * spans) / 3600.0)
    res.queued_node_hours = float(np.sum(np.maximum(provisioned - ready, 0.0) * spans) / 3600.0)
    short = np.maximum(demand - ready * capacity_per_node, 0.0)
    res.under_capacity_minutes = float(np.count_nonzero(short > 1e-9) * steps / 60.0)
    res.observed_minutes = float(len(t) * steps / 60.0)
    res.unserved_requests = float(np.sum(short) * steps)
    res.total_requests = float(np.sum(demand) * steps)
    res.span_s = float(t[-1] + steps - t[0])
    res.t = t
    res.provisioned = np.asarray(provisioned, dtype=np.float64)
    res.ready = np.asarray(ready, dtype=np.float64)
    return res


def start_index(trace: Trace, start: float | None = None) -> int:
    """Index of the first replayed step (default: one hour of history first, a quarter of a short trace)."""
    if start is None:
        start = trace.start + min(WARMUP_S, 0.25 * (trace.end - trace.start))
    first = int(np.searchsorted(trace.t, start, side="left"))
    if first >= len(trace.t):
        raise BacktestError(f"trace {trace.name}: the replay would start after its last row; give a later end")
    return first


def replay(
    trace: Trace,
    config: Config,
    pool_name: str,
    *,
    start: float | None = None,
    overrides: OverrideProvider | None = None,
    notifiers: Sequence[Notifier] = (),
    predictor: Predictor | None = None,
    on_tick: Callable[[TickReport], None] | None = None,
) -> ReplayResult:
    """Run the real tick every ``config.daemon.interval`` over ``trace`` (from ``start``) and score it;
    between ticks, the pool's guard every ``guard.interval`` (when enabled)."""
    pool = config.pool(pool_name)
    interval_s = config.daemon.interval.total_seconds()
    guard_s = pool.guard.interval.total_seconds() if pool.guard.enabled else None
    model = predictor or make_predictor(config.predictor, pool)
    first = start_index(trace, start)
    clock = ManualClock(datetime.fromtimestamp(float(trace.t[first]), UTC))
    cluster = SimulatedCluster(clock, {pool.name: pool.min})
    rates = TraceMetricsSource(trace)
    queue = SimulatedBacklog(trace, first, pool.queue, rates) if pool.queue is not None else None
    deps = TickDeps(
        config=config,
        metrics=queue or rates,
        predictor_for=lambda _p: model,
        target=cluster,
        overrides=overrides or NoOverrides(),
        clock=clock,
        notifiers=notifiers,
    )
    n = len(trace.t) - first
    provisioned = np.zeros(n)
    ready = np.zeros(n)
    decisions: list[tuple[float, int]] = []
    marks: list[Mark] = []
    raised = np.zeros(n)  # nodes in force above the metrics' need because a schedule floor or a pin asked
    uplift = [0]
    actions = 0
    next_tick = next_guard = float(trace.t[first])
    # Thousands of small fits: one BLAS thread each is several times faster than a thread pool.
    with threadpool_limits(limits=1):
        for i in range(n):
            now = float(trace.t[first + i])
            if queue is not None:  # the backlog the tick reads: what the last step left
                queue.step(i, ready[i - 1] if i else 0.0, pool.capacity_per_node)
            if now >= next_tick:
                clock.set(datetime.fromtimestamp(now, UTC))
                next_tick = _advance(next_tick, now, interval_s)
                actions += _tick_once(deps, cluster, pool.name, now, decisions, marks, on_tick, uplift=uplift)
            elif guard_s is not None and now >= next_guard and decisions:
                clock.set(datetime.fromtimestamp(now, UTC))
                actions += _tick_once(deps, cluster, pool.name, now, decisions, marks, on_tick, guard=True)
            if guard_s is not None and now >= next_guard:
                next_guard = _advance(next_guard, now, guard_s)  # a tick also checks what the guard would
            provisioned[i] = cluster.desired_count(pool.name)
            ready[i] = cluster.ready_count(pool.name, now)
            raised[i] = min(uplift[0], provisioned[i])
    result = account(trace, first, pool.capacity_per_node, provisioned, ready)
    spans = np.diff(np.append(trace.t[first:], trace.t[-1] + trace.step_s))
    result.override_node_hours = float(np.sum(raised * spans) / 3600.0)
    result.scale_actions = actions
    result.reversals = reversals(decisions)[1]
    result.decisions = decisions
    result.marks = marks
    return result


def score_queue(trace: Trace, first: int, config: Config, pool_name: str, result: ReplayResult) -> None:
    """A queue-fed pool's waits and backlog for one policy's replay (nothing for other pools)."""
    pool = config.pool(pool_name)
    if pool.queue is None:
        return
    slo = pool.queue.latency_slo.total_seconds()
    demand = trace.rps[first:]
    result.queue = queue_figures(result.t, demand, result.ready, pool.capacity_per_node, trace.step_s, slo)


def _advance(next_tick: float, now: float, interval_s: float) -> float:
    """The tick after ``now`` (after a gap, the next tick is the first step back)."""
    while next_tick <= now:
        next_tick += interval_s
    return next_tick


def _tick_once(
    deps: TickDeps,
    cluster: SimulatedCluster,
    pool_name: str,
    now: float,
    decisions: list[tuple[float, int]],
    marks: list[Mark],
    on_tick: Callable[[TickReport], None] | None,
    guard: bool = False,
    uplift: list[int] | None = None,
) -> int:
    """One real tick (or guard check); the first decision's count is ready at once. Returns 1 if it
    scaled the pool. A quiet guard check reports nothing and records no decision. ``uplift[0]`` becomes the
    nodes the decision holds above the metrics' need because of a schedule floor or a manual pin."""
    report = run_tick(deps, only=[pool_name], guard=guard)
    scaled = 0
    for outcome in report.outcomes:
        d = outcome.decision
        if d is None:
            continue
        if not decisions:
            # The first decision sets the initial fleet: it is not a change (no cooldown, no action).
            cluster.set_ready(pool_name, d.desired)
            deps.history.reset()
        elif outcome.status == "applied":
            scaled = 1
        decisions.append((now, d.desired))
        codes = set(d.reason_codes())
        marks.extend(Mark(now, d.desired, kind) for kind in MARKED if kind in codes)
        if uplift is not None:
            asked = codes & set(MARKED) and d.need is not None
            uplift[0] = max(0, d.desired - max(d.need or 0, deps.config.pool(pool_name).min)) if asked else 0
        if d.guard and outcome.status == "applied":
            marks.append(Mark(now, d.desired, "guard"))
    if on_tick is not None and (not guard or report.outcomes):
        on_tick(report)
    return scaled


@dataclass
class Backtest:
    """forescale and the reference policies, scored on the same steps of one trace."""

    trace: Trace
    capacity_per_node: float
    lead_time_s: float
    interval_s: float
    policies: dict[str, ReplayResult]

    def to_json(self) -> dict[str, object]:
        """Exactly the documented ``forescale backtest --json`` shape."""
        return {
            "trace": self.trace.name,
            "step_s": self.trace.step_s,
            "capacity_per_node": self.capacity_per_node,
            "lead_time_s": self.lead_time_s,
            "interval_s": self.interval_s,
            "policies": {name: self.policies[name].summary() for name in POLICIES},
        }


def score_requests(
    trace: Trace, first: int, capacity: float, lead_s: float, requests: list[tuple[float, int]]
) -> ReplayResult:
    """Score a reference policy's ``(time, desired)`` requests on the cluster forescale is replayed against.

    The requests made at a step take effect before that step is counted; the first one is ready at once.
    """
    t = trace.t[first:]
    clock = ManualClock(datetime.fromtimestamp(float(t[0]), UTC))
    cluster = SimulatedCluster(clock)
    provisioned = np.zeros(t.shape[0])
    ready = np.zeros(t.shape[0])
    actions = 0
    k = 0
    for i in range(t.shape[0]):
        now = float(t[i])
        while k < len(requests) and requests[k][0] <= now + 1e-9:
            at, want = requests[k]
            if k == 0:
                cluster.set_ready(POOL, want)
            elif want != len(cluster.nodes(POOL)):
                clock.set(datetime.fromtimestamp(at, UTC))
                cluster.resize(POOL, want, lead_s)
                actions += 1
            k += 1
        provisioned[i] = len(cluster.nodes(POOL))
        ready[i] = cluster.ready_count(POOL, now)
    result = account(trace, first, capacity, provisioned, ready)
    result.scale_actions = actions
    result.reversals = reversals(requests)[1]
    result.decisions = requests
    return result


def run_backtest(
    trace: Trace,
    config: Config,
    pool_name: str,
    *,
    start: float | None = None,
    overrides: OverrideProvider | None = None,
    on_tick: Callable[[TickReport], None] | None = None,
) -> Backtest:
    """Replay forescale (the real tick) and score oracle, static_peak, reactive and trend_lr alongside."""
    pool = config.pool(pool_name)
    cap = pool.capacity_per_node
    lead = pool.lead_time.total_seconds()
    interval = config.daemon.interval.total_seconds()
    first = start_index(trace, start)
    t, rps = trace.t[first:], trace.rps[first:]
    results = {"forescale": replay(trace, config, pool_name, start=start, overrides=overrides, on_tick=on_tick)}
    results["oracle"] = score_requests(trace, first, cap, lead, reference.oracle(t, rps, cap, lead))
    results["static_peak"] = score_requests(trace, first, cap, lead, reference.static_peak(t, rps, cap))
    results["reactive"] = score_requests(trace, first, cap, lead, reference.reactive(trace.t, trace.rps, first, cap))
    with threadpool_limits(limits=1):
        trend = reference.trend_lr(trace.as_rate_series(), t, cap, lead, interval)
    results["trend_lr"] = score_requests(trace, first, cap, lead, trend)
    for result in results.values():
        score_queue(trace, first, config, pool_name, result)
    return Backtest(trace, cap, lead, interval, results)
