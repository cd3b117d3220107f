"""One tick for every pool: each pool's line (policy/tick.py: state → decide → target → machines) run by
policy/runner.py — concurrently on ``deps.workers`` threads, the pools a deadline skipped last time first — then
assembled in config order and reported once (audit log, notifiers). ``run_tick`` is the only copy of this loop:
the daemon, ``forescale tick``, ``plan``, ``demo`` and ``backtest`` all call it (through ``policy.tick``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from autoscaler.core.deadline import Deadline, within
from autoscaler.core.decision import Decision, PastNeed, PoolState
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes import node_events
from autoscaler.policy.runner import publish, run_pools
from autoscaler.policy.tick import (
    TickDeps,
    apply_decision,
    apply_nodes,
    decide_pool,
    failed_outcome,
    guard_pool,
    pool_lead_time,
    read_state,
)

log = logging.getLogger("forescale.tick")


def _late(deadline: Deadline, step: str, skipped: bool = False) -> str:
    then = "it goes first next tick" if skipped else "the next tick decides it"
    return f"{deadline.reason} passed before this pool was {step}: nothing changed; {then}"


class _PoolRun(NamedTuple):
    """What a worker brings back for one pool (the tick assembles them in config order)."""

    outcome: PoolOutcome | None  # None: the guard had nothing to do, or passed over a pool the tick holds
    state: PoolState | None = None
    decision: Decision | None = None
    need: PastNeed | None = None
    skipped: bool = False  # not started: the deadline had passed (runner.run_pools)


def _run_pool(
    deps: TickDeps, pool: PoolConfig, now: datetime, deadline: Deadline, dry_run: bool, guard: bool
) -> _PoolRun:
    """One pool's line — state → decide (or guard) → target → machines — while holding the pool (runner.PoolLocks:
    the guard passes over a pool the tick holds, the tick waits for the guard's)."""
    with deps.locks.hold(pool.name, wait=not guard) as mine:
        if not mine:
            return _PoolRun(None)
        try:
            state, error = read_state(deps, pool)
            if state is None:
                # an unreachable target is the next tick's to report (not the guard's)
                return _PoolRun(None if guard else failed_outcome(deps, pool, now, error))
            decision = guard_pool(deps, pool, now, state) if guard else decide_pool(deps, pool, now, state)
            if decision is None:
                return _PoolRun(None)
            if deadline.expired() and decision.changed and not dry_run:
                return _PoolRun(PoolOutcome(pool.name, "failed", decision, error=_late(deadline, "applied")))
            need = None
            if not dry_run and decision.need is not None and not decision.held:
                value = decision.need if decision.rate_need is None else decision.rate_need  # policy/queue.py
                need = PastNeed(now, pool.name, value)
            outcome = apply_nodes(deps, pool, apply_decision(deps, pool, decision, dry_run), dry_run)
            return _PoolRun(outcome, state, decision, need)
        except Exception as exc:  # a bug or an unexpected library error must not stop the other pools
            log.exception("pool %s: unexpected error", pool.name)
            return _PoolRun(PoolOutcome(pool.name, "failed", None, error=f"internal error: {exc!r}"))


def for_tick(deps: TickDeps, pools: Sequence[str], now: datetime) -> TickDeps:
    """The parts one tick uses: the adapters that share reads between its pools (the target's and the node
    directory's per-tick snapshots, the override store read once) give a view for this tick; the rest is shared."""
    views: dict[str, object] = {}
    scoped_target = getattr(deps.target, "for_tick", None)  # ports.TickScoped (getattr: a Protocol check is slow)
    if scoped_target is not None:
        views["target"] = scoped_target()
    if deps.nodes is not None:
        views["nodes"] = deps.nodes.for_tick()
    scoped = getattr(deps.overrides, "for_tick", None)
    if scoped is not None:
        views["overrides"] = scoped(pools, now)
    changes = {name: view for name, view in views.items() if view is not getattr(deps, name)}
    return replace(deps, **changes) if changes else deps  # type: ignore[arg-type]


def run_tick(
    deps: TickDeps,
    *,
    dry_run: bool = False,
    only: Sequence[str] | None = None,
    deadline: Deadline | None = None,
    guard: bool = False,
) -> TickReport:
    """Run one cycle for every pool (or ``only`` these) and report it to the audit log and notifiers.

    Pools run concurrently on ``deps.workers`` threads (policy/runner.py), the pools a deadline left undecided
    last time first. The tick runs under ``deadline`` (default: ``deps.deadline_s`` from now): every external call
    gets at most the time left, and a pool not started (or not yet applied) when it has passed is reported failed
    — the report's ``skipped`` names those not started — and left exactly as it is, never shrunk for lack of time.
    ``guard=True`` runs the fast guard instead, for pools whose guard is enabled (module docstring).
    """
    started = time.perf_counter()
    now = deps.clock.now()  # one instant for the whole tick: query windows, staleness, decisions, report
    deadline = deadline or Deadline(deps.deadline_s, deps.monotonic)
    chosen = [p for p in deps.config.pools if not only or p.name in only]
    if guard:
        chosen = [p for p in chosen if p.guard.enabled and p.mode != "off"]
    live = {p.name: p for p in chosen if p.mode != "off"}
    order = list(live) if guard else deps.fair.order(list(live))
    with within(deadline):
        run = for_tick(deps, order, now)
        results = run_pools(
            [live[name] for name in order],
            lambda pool: _run_pool(run, pool, now, deadline, dry_run, guard),
            lambda pool: _PoolRun(
                None if guard else PoolOutcome(pool.name, "failed", None, error=_late(deadline, "decided", True)),
                skipped=True,
            ),
            workers=deps.workers,
            deadline=deadline,
        )
    by_pool = dict(zip(order, results, strict=True))
    skipped = tuple(n for n in order if by_pool[n].skipped)
    if not guard and not dry_run:
        deps.fair.record(skipped, [n for n in order if n not in skipped])
    outcomes: list[PoolOutcome] = []
    pool_events: list[Event] = []
    watch = not dry_run and not guard  # queued-too-long is judged once per tick
    for pool in chosen:  # config order: the report's content does not depend on which thread was quicker
        if pool.mode == "off":
            outcomes.append(PoolOutcome(pool.name, "off", None, note="mode: off (not evaluated)"))
            continue
        got = by_pool[pool.name]
        if got.outcome is not None:
            outcomes.append(got.outcome)
        if got.need is not None:
            deps.history.add_need(got.need)
        if watch and got.state is not None and got.decision is not None:
            lead = pool_lead_time(deps, pool, now)
            for event in (
                deps.placement.observe(pool, got.state, now, lead),
                deps.backlog.observe(pool, got.decision, now),
            ):
                if event is not None:
                    pool_events.append(event)
    if dry_run or guard:  # expired overrides are announced by ticks; a quiet guard tells nobody
        events: tuple[Event, ...] = ()
    elif deps.shadow:  # --dry-run writes nothing anywhere: expired overrides are ignored, not moved to history
        events = (*pool_events, *run.overrides.warnings())
    else:
        events = (*pool_events, *run.overrides.drain_events(now))
    for outcome in outcomes:
        if outcome.nodes is not None:
            events += tuple(node_events(outcome.pool, outcome.nodes, now))
    report = TickReport(
        at=now,
        outcomes=tuple(outcomes),
        events=events,
        dry_run=dry_run,
        duration_s=time.perf_counter() - started,
        guard=guard,
        skipped=skipped,
    )
    if guard and not outcomes:
        return report
    with deps.report_lock:  # a guard check and a tick may finish together: one report at a time
        publish(report, deps.audit if not dry_run else None, deps.notifiers)
    return report
