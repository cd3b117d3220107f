"""Replay a trace through the real tick against the simulated cluster, and account for the result.

Semantics are DESIGN.md's "Backtest": the replay starts with the first decision's count ready; a node
added at t is ready at t + lead_time; scale-down is immediate; cost = provisioned node-hours (warming
nodes count); an under-capacity interval is demand > ready × capacity_per_node; gaps are masked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from autoscaler.clock import ManualClock
from autoscaler.config import Config
from autoscaler.interfaces import NoOverrides, Notifier, OverrideProvider, TickReport
from autoscaler.simulated_target import SimulatedCluster
from autoscaler.tick import TickDeps, run_tick
from autoscaler.trace_source import TraceMetricsSource
from predictor.base import Predictor
from predictor.factory import make_predictor
from predictor.trace import Trace


@dataclass
class ReplayResult:
    """Cost and SLO figures of one policy over one trace, plus every decision it made."""

    node_hours: float = 0.0
    under_capacity_minutes: float = 0.0
    observed_minutes: float = 0.0
    unserved_requests: float = 0.0
    total_requests: float = 0.0
    scale_actions: int = 0
    decisions: list[tuple[float, int]] = field(default_factory=list)
    ready: list[tuple[float, int]] = field(default_factory=list)

    @property
    def under_capacity_pct(self) -> float:
        return 100.0 * self.under_capacity_minutes / self.observed_minutes if self.observed_minutes else 0.0

    @property
    def unserved_pct(self) -> float:
        return 100.0 * self.unserved_requests / self.total_requests if self.total_requests else 0.0


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
    short = np.maximum(demand - ready * capacity_per_node, 0.0)
    res.under_capacity_minutes = float(np.count_nonzero(short > 1e-9) * steps / 60.0)
    res.observed_minutes = float(len(t) * steps / 60.0)
    res.unserved_requests = float(np.sum(short) * steps)
    res.total_requests = float(np.sum(demand) * steps)
    return res


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
    """Run the real tick every ``config.daemon.interval`` over ``trace`` (from ``start``) and score it."""
    pool = config.pool(pool_name)
    interval_s = config.daemon.interval.total_seconds()
    model = predictor or make_predictor(config.predictor, pool)
    if start is None:
        start = trace.start + min(model.history_seconds(), 3600.0) + trace.step_s
    first = int(np.searchsorted(trace.t, start, side="left"))
    if first >= len(trace.t):
        raise ValueError("the trace ends before the replay would start")
    clock = ManualClock(datetime.fromtimestamp(float(trace.t[first]), UTC))
    cluster = SimulatedCluster(clock, {pool.name: pool.min})
    deps = TickDeps(
        config=config,
        metrics=TraceMetricsSource(trace),
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
    actions = 0
    next_tick = float(trace.t[first])
    for i in range(n):
        now = float(trace.t[first + i])
        if now >= next_tick:
            clock.set(datetime.fromtimestamp(now, UTC))
            report = run_tick(deps, only=[pool.name])
            outcome = report.outcomes[0]
            if outcome.decision is not None:
                decisions.append((now, outcome.decision.desired))
                if not decisions[1:]:
                    cluster.set_ready(pool.name, outcome.decision.desired)  # first decision: ready at start
                elif outcome.status == "applied":
                    actions += 1
            if on_tick is not None:
                on_tick(report)
            while next_tick <= now:
                next_tick += interval_s
        provisioned[i] = cluster.current_count(pool)
        ready[i] = cluster.ready_count(pool.name, now)
    result = account(trace, first, pool.capacity_per_node, provisioned, ready)
    result.scale_actions = actions
    result.decisions = decisions
    return result
