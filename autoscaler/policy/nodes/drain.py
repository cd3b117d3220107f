"""Drains: the deadline each node gets, and what forescale's drains in progress have come to (pure).

The deadline follows Nomad's drainer (``nomad/drainer/``: ``drainingJobWatcher.handleTaskGroup`` migrates at
most ``migrate.max_parallel`` allocations of a task group at a time — across every draining node of the job, not
per node — and starts the next batch only when the replacements of the previous one are healthy, bounded by
``migrate.healthy_deadline``; each stopped allocation takes its ``shutdown_delay`` + ``kill_timeout``). For a
task group with n allocations on the nodes draining together (this node's, the ones drained in the same step
and the ones still draining):

    batches = ceil(n / max_parallel)
    time    = batches × stop + (batches − 1) × healthy_deadline

The node's deadline is the longest of its task groups plus a one-minute margin, and never shorter than the
pool's own default (``nodes.drain_deadline``, else the jobspec's shutdown_delay + kill_timeout + 1m, else 15m).
An explicit ``nodes.drain_deadline`` is used as written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from autoscaler.core.durations import format_duration_s
from autoscaler.core.nodes import MigrateSpec, NodeAction, PoolNode
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes.fleet import Slot

DEFAULT_DRAIN_DEADLINE = timedelta(minutes=15)  # nomad-autoscaler's node_drain_deadline default
DRAIN_MARGIN = timedelta(minutes=1)

Problem = Callable[..., None]


def drain_deadline(pool: PoolConfig) -> timedelta:
    """``nodes.drain_deadline``, else the jobspec's shutdown_delay + kill_timeout + 1m, else 15m."""
    if pool.nodes.drain_deadline is not None:
        return pool.nodes.drain_deadline
    if pool.jobspec is not None:
        return pool.jobspec.shutdown_delay + pool.jobspec.effective_kill_timeout() + DRAIN_MARGIN
    return DEFAULT_DRAIN_DEADLINE


def migrating(nodes: Iterable[PoolNode]) -> dict[tuple[str, str], int]:
    """Allocations to migrate per (job, task group) over nodes that drain together."""
    out: dict[tuple[str, str], int] = {}
    for node in nodes:
        for alloc in node.work(ignore_system=True):
            out[(alloc.job, alloc.group)] = out.get((alloc.job, alloc.group), 0) + 1
    return out


def node_drain_deadline(
    pool: PoolConfig, node: PoolNode, together: Mapping[tuple[str, str], int] | None = None
) -> tuple[timedelta, str]:
    """The deadline for draining ``node`` and the sentence behind it (module docstring). ``together``: the
    allocations per task group on every node draining with it (default: this node's own)."""
    base = drain_deadline(pool)
    if pool.nodes.drain_deadline is not None:
        return base, "configured"
    together = together if together is not None else migrating([node])
    groups: dict[tuple[str, str], tuple[int, MigrateSpec]] = {}
    for alloc in node.work(ignore_system=True):
        if alloc.migrate is not None:
            key = (alloc.job, alloc.group)
            groups[key] = (max(together.get(key, 0), 1), alloc.migrate)
    best, why = timedelta(0), ""
    for (job, group), (n, spec) in sorted(groups.items()):
        batches = math.ceil(n / spec.max_parallel)
        seconds = batches * spec.stop_s + (batches - 1) * spec.healthy_deadline_s
        if seconds > best.total_seconds():
            best = timedelta(seconds=seconds)
            why = (
                f"{n} allocation(s) of {job}/{group} draining, {spec.max_parallel} at a time: {batches} × "
                f"{format_duration_s(spec.stop_s)} stop"
                + (f" + {batches - 1} × {format_duration_s(spec.healthy_deadline_s)} healthy" if batches > 1 else "")
            )
    if best + DRAIN_MARGIN > base:
        return best + DRAIN_MARGIN, why + " + 1m"
    return base, "pool default"


def drain_progress(
    pool: PoolConfig,
    slots: Iterable[Slot],
    now: datetime,
    reclaimed: set[str],
    problem: Problem,
    blocked: str | None,
) -> tuple[list[NodeAction], int]:
    """Forescale's drains: terminate the machines whose drain is complete and whose allocations have all
    stopped (read, well-formed, none live: ``unknown`` is live); report the ones past deadline + grace.
    Returns the actions and how many drains are still in progress."""
    settings = pool.nodes
    actions: list[NodeAction] = []
    draining = 0
    slots = list(slots)
    together = migrating(s.node for s in slots if s.node is not None and s.node.draining)
    for slot in slots:
        node = slot.node
        if node is None or node.id in reclaimed:
            continue
        live = node.live_allocations(settings.drain_ignore_system_jobs)
        started = node.last_drain_started
        took = (now - started).total_seconds() if started else None
        done = not node.draining and node.last_drain_status == "complete" and not live and node.readable
        if done and blocked is None and not slot.machine.protected:
            actions.append(
                NodeAction(
                    "terminate",
                    f"terminate {node.machine_id} (node {node.name}): drained"
                    + (f" in {format_duration_s(took)}" if took is not None else ""),
                    node=node.name,
                    node_id=node.id,
                    machine=node.machine_id,
                    seconds=took,
                )
            )
            if settings.purge:
                actions.append(
                    NodeAction("purge", f"purge node {node.name} from Nomad", node=node.name, node_id=node.id)
                )
            continue
        draining += 1
        if done:
            why = blocked or f"machine {slot.machine.id} is protected from scale-in"
            actions.append(
                NodeAction(
                    "waiting",
                    f"{node.label} drained; kept: {why}",
                    "info",
                    node=node.name,
                    node_id=node.id,
                    machine=node.machine_id,
                    seconds=took,
                )
            )
            continue
        deadline, _ = node_drain_deadline(pool, node, together)
        until = node.drain_deadline or (started + deadline if started else None)
        limit = until + settings.drain_grace if until is not None else None
        if limit is not None and now > limit and started is not None:
            states = "/".join(sorted({a.client_status for a in live}))
            left = node.allocations_error or f"{len(live)} allocation(s) still {states or 'stopping'}"
            problem(
                f"drain_timeout:{node.id}:{int(started.timestamp())}",
                f"drain of {node.label} did not finish within {format_duration_s((limit - started).total_seconds())} "
                f"(deadline + grace): {left}; its machine is kept (never terminated before its node is drained); "
                "check the task's kill_timeout and the entrypoint, then "
                f"`nomad node drain -disable {node.id[:8]}` to return it or terminate it yourself",
                node=node.name,
                node_id=node.id,
                machine=node.machine_id,
                seconds=took,
            )
            continue
        left = node.allocations_error or f"{len(live)} live allocation(s) left"
        actions.append(
            NodeAction(
                "waiting",
                f"{node.label} draining"
                + (f" for {format_duration_s(took)}" if took is not None else "")
                + f": {left}",
                "info",
                node=node.name,
                node_id=node.id,
                machine=node.machine_id,
                seconds=took,
            )
        )
    return actions, draining
