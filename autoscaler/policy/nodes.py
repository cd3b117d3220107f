"""The node step: the pool's machines follow its count (docs/nodes.md).

It runs in the tick's apply step, after decide and the target: ``plan_nodes`` is pure (what the provider and
Nomad say now → the actions and the sentence behind each), ``NodeReconciler`` reads the state through the
ports, executes the plan (unless it is a dry run) and returns a ``NodeReport``.

    wanted machines = the group's desired count + nodes.spare
    scale-out  first reclaim nodes forescale is draining (cancel the drain, eligible again), then raise the
               provider's capacity (clamped to its max: reported, never silent)
    scale-in   pick exact nodes (selection strategy; only ready, eligible nodes of the pool), drain them in
               Nomad with a deadline; a node whose drain is complete and whose allocations have stopped is
               terminated — exactly its machine, lowering the capacity by one — then optionally purged

Nothing about drains is kept in memory: every tick reads Nomad's node drain status back (forescale's drains
carry ``Meta.drained_by = forescale`` in the node's LastDrain), so a restarted forescale resumes them. What is
kept in memory (and rebuilt from the audit log at start) is only what is reported once (problems) and the
boot samples behind ``lead_time: auto``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from autoscaler.core.durations import format_duration_s
from autoscaler.core.errors import ForescaleError
from autoscaler.core.nodes import (
    DRAINED_BY,
    BootSample,
    LeadTime,
    Machine,
    MachineGroup,
    NodeAction,
    NodeReport,
    PoolNode,
    TerminateResult,
)
from autoscaler.core.ports import Clock, NodeDirectory, NodeProvider
from autoscaler.core.report import Event
from autoscaler.core.settings.forescale import PoolConfig

log = logging.getLogger("forescale.nodes")

DEFAULT_DRAIN_DEADLINE = timedelta(minutes=15)  # nomad-autoscaler's node_drain_deadline default
DRAIN_MARGIN = timedelta(minutes=1)
MAX_BOOTS_KEPT = 200
ASK_SLACK = timedelta(minutes=1)  # a machine launched this close to forescale's ask is one it asked for


# --------------------------------------------------------------------------------------------- pure parts


def drain_deadline(pool: PoolConfig) -> timedelta:
    """``nodes.drain_deadline``, else the jobspec's shutdown_delay + kill_timeout + 1m, else 15m."""
    if pool.nodes.drain_deadline is not None:
        return pool.nodes.drain_deadline
    if pool.jobspec is not None:
        return pool.jobspec.shutdown_delay + pool.jobspec.effective_kill_timeout() + DRAIN_MARGIN
    return DEFAULT_DRAIN_DEADLINE


def select_nodes(
    nodes: Sequence[PoolNode], count: int, strategy: str, ignore_system: bool
) -> list[tuple[PoolNode, str]]:
    """The ``count`` nodes to drain, best first, each with why it was picked (pure; ties are deterministic).

    least_busy   fewest live (pending/running) allocations; ties: newest (highest create index)
    newest       highest create index (the node registered last), whatever runs on it
    empty_first  nodes with no live allocation (system jobs ignored) first, newest first; then least_busy
    """
    if count <= 0 or not nodes:
        return []

    def busy(n: PoolNode) -> int:
        return len(n.live_allocations())

    if strategy == "newest":
        ranked = sorted(nodes, key=lambda n: (-n.create_index, n.id))
    elif strategy == "empty_first":
        ranked = sorted(
            nodes, key=lambda n: (len(n.live_allocations(ignore_system=True)) > 0, busy(n), -n.create_index, n.id)
        )
    elif strategy == "least_busy":
        ranked = sorted(nodes, key=lambda n: (busy(n), -n.create_index, n.id))
    else:
        raise ValueError(f"unknown selection strategy {strategy!r}")
    chosen = ranked[:count]
    kept = ranked[count:]
    out = []
    for node in chosen:
        n_allocs = busy(node)
        what = f"{n_allocs} live allocation{'s' if n_allocs != 1 else ''}"
        if strategy == "newest":
            why = f"newest (create index {node.create_index}; {what})"
        elif strategy == "empty_first" and not node.live_allocations(ignore_system=True):
            why = "empty (no live allocation" + (", system jobs ignored)" if n_allocs else ")")
        else:
            why = f"least busy ({what})"
        if kept:
            other = kept[0]
            why += f"; next candidate {other.name} has {busy(other)}"
        out.append((node, why))
    return out


@dataclass(frozen=True)
class NodeMemoryView:
    """What the plan may know beyond Nomad and the provider: problems already reported, boot tracking."""

    reported: frozenset[str] = frozenset()
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    sampled: frozenset[str] = frozenset()
    last_ask: datetime | None = None


@dataclass(frozen=True)
class NodePlan:
    """Actions in execution order (reclaim, scale_out, drain, terminate, purge) plus info and problems."""

    actions: tuple[NodeAction, ...]
    capacity_before: int
    capacity_after: int
    nodes_ready: int
    draining: int
    boots: tuple[BootSample, ...] = ()


def plan_nodes(
    pool: PoolConfig,
    wanted: int | None,
    group: MachineGroup,
    nodes: Sequence[PoolNode],
    now: datetime,
    *,
    scale_in_allowed: bool = True,
    memory: NodeMemoryView | None = None,
) -> NodePlan:
    """Pure: from what the provider and Nomad say now, what to do. ``wanted`` None: only finish started work."""
    mem = memory or NodeMemoryView()
    settings = pool.nodes
    deadline = drain_deadline(pool)
    actions: list[NodeAction] = []

    def problem(key: str, message: str, **kw: object) -> None:
        first = key not in mem.reported
        actions.append(
            NodeAction("problem", message, "failed" if first else "info", key=key, **kw)  # type: ignore[arg-type]
        )

    machine_ids = {m.id for m in group.machines}
    by_machine: dict[str, PoolNode] = {}
    for node in sorted(nodes, key=lambda n: (n.status == "ready", n.create_index)):
        if node.machine_id in machine_ids:
            by_machine[node.machine_id] = node  # several nodes on one machine: the ready, newest one wins
    for node in nodes:
        if not node.machine_id and node.status != "down":
            problem(
                f"no_attribute:{node.id}",
                f"node {node.name} has no attribute {settings.machine_attribute()}: forescale cannot tell its "
                f"machine, so it never drains or terminates it (check the client's fingerprint or "
                f"nodes.instance_attribute)",
                node=node.name,
                node_id=node.id,
            )

    # forescale's drains in progress or done. A completed drain leaves the node ineligible; one made eligible
    # again (reclaimed, or returned by an operator) is back in service: Nomad keeps its LastDrain as it was.
    retiring = [
        n
        for n in by_machine.values()
        if n.drained_by_us and (n.draining or (n.last_drain_status == "complete" and not n.eligible))
    ]
    retiring_ids = {n.id for n in retiring}
    active = [
        n
        for n in by_machine.values()
        if n.id not in retiring_ids and n.status == "ready" and n.eligible and not n.draining
    ]
    effective = group.desired - len(retiring)
    capacity_after = group.desired
    reclaimed: set[str] = set()

    # -- scale-out: reclaim our own drains first, then ask the provider -----------------------------------
    if wanted is not None and wanted > effective:
        need = wanted - effective
        for node in sorted(retiring, key=lambda n: (not n.draining, -n.create_index))[:need]:
            reclaimed.add(node.id)
            actions.append(
                NodeAction(
                    "reclaim",
                    f"reclaim {node.label}: cancel its drain and make it eligible (cheaper than booting a new machine)",
                    node=node.name,
                    node_id=node.id,
                    machine=node.machine_id,
                )
            )
        need -= len(reclaimed)
        if need > 0:
            target = group.desired + need
            if group.max is not None and target > group.max:
                actions.append(
                    NodeAction(
                        "note",
                        f"{group.name}: capped at its max size {group.max} (wanted {target} machines); raise the "
                        "group's max or lower the pool's max",
                        "info",
                    )
                )
                target = group.max
            if target > group.desired:
                capacity_after = target
                actions.append(
                    NodeAction(
                        "scale_out",
                        f"ask {group.name} for {target - group.desired} machine(s): capacity {group.desired} → "
                        f"{target} for {wanted} wanted ({wanted - settings.spare} + {settings.spare} spare)",
                        capacity=target,
                    )
                )

    # -- scale-in: pick exact nodes and drain them ------------------------------------------------------
    elif wanted is not None and wanted < effective:
        excess = effective - wanted
        floor = group.min or 0
        if effective - excess < floor:
            actions.append(
                NodeAction("note", f"{group.name}: its min size {floor} stops scale-in at {floor} machines", "info")
            )
            excess = max(effective - floor, 0)
        if not scale_in_allowed:
            actions.append(
                NodeAction(
                    "note",
                    f"{excess} machine(s) more than wanted, kept: the count was not decided from fresh metrics "
                    "(never shrink blind)",
                    "info",
                )
            )
        elif excess > 0:
            picked = select_nodes(active, excess, settings.selection, settings.drain_ignore_system_jobs)
            for node, why in picked:
                actions.append(
                    NodeAction(
                        "drain",
                        f"drain {node.label}: {why}; deadline {format_duration_s(deadline.total_seconds())}",
                        node=node.name,
                        node_id=node.id,
                        machine=node.machine_id,
                    )
                )
            if len(picked) < excess:
                actions.append(
                    NodeAction(
                        "note",
                        f"only {len(picked)} of {excess} excess machine(s) can be drained now: the others have no "
                        "ready, eligible node of the pool yet (booting or not registered)",
                        "info",
                    )
                )

    # -- drains in progress: terminate the finished ones, report the stuck ones ----------------------------
    draining = 0
    for node in retiring:
        if node.id in reclaimed:
            continue
        live = node.live_allocations(settings.drain_ignore_system_jobs)
        started = node.last_drain_started
        took = (now - started).total_seconds() if started else None
        if not node.draining and node.last_drain_status == "complete" and not live:
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
        limit = deadline + settings.drain_grace
        if started is not None and now - started > limit:
            states = "/".join(sorted({a.client_status for a in live}))
            problem(
                f"drain_timeout:{node.id}:{int(started.timestamp())}",
                f"drain of {node.label} did not finish within {format_duration_s(limit.total_seconds())} "
                f"(deadline + grace): {len(live)} allocation(s) still {states or 'stopping'}; "
                "its machine is kept (never terminated before its node is drained); check the task's kill_timeout and "
                f"the entrypoint, then `nomad node drain -disable {node.id[:8]}` to return it or terminate it yourself",
                node=node.name,
                node_id=node.id,
                machine=node.machine_id,
                seconds=took,
            )
        else:
            actions.append(
                NodeAction(
                    "waiting",
                    f"{node.label} draining"
                    + (f" for {format_duration_s(took)}" if took is not None else "")
                    + f": {len(live)} live allocation(s) left",
                    "info",
                    node=node.name,
                    node_id=node.id,
                    machine=node.machine_id,
                    seconds=took,
                )
            )

    # -- nodes of the pool outside the group: purge our own leftovers -------------------------------------
    if settings.purge:
        for node in nodes:
            if node.drained_by_us and node.machine_id and node.machine_id not in machine_ids and node.status == "down":
                actions.append(
                    NodeAction("purge", f"purge node {node.name}: its machine is gone", node=node.name, node_id=node.id)
                )

    # -- machines without a node: booting, or never registered --------------------------------------------
    for machine in group.machines:
        if machine.id in by_machine or any(n.machine_id == machine.id for n in nodes):
            continue
        since = machine.launched_at or mem.first_seen.get(machine.id) or now
        age = (now - since).total_seconds()
        if age > settings.boot_timeout.total_seconds():
            problem(
                f"no_node:{machine.id}",
                f"machine {machine.id} has no Nomad node after {format_duration_s(age)} (boot_timeout "
                f"{format_duration_s(settings.boot_timeout.total_seconds())}): check its Nomad client (config, "
                f"node pool/class, the {settings.machine_attribute()} attribute); it is not terminated by forescale",
                machine=machine.id,
                seconds=age,
            )

    boots = tuple(_boots(pool, group.machines, by_machine, mem, now))
    ready = sum(1 for n in by_machine.values() if n.status == "ready" and n.eligible and not n.draining)
    return NodePlan(tuple(actions), group.desired, capacity_after, ready, draining, boots)


def _boots(
    pool: PoolConfig,
    machines: Sequence[Machine],
    by_machine: Mapping[str, PoolNode],
    mem: NodeMemoryView,
    now: datetime,
) -> list[BootSample]:
    """Machines whose allocation of the pool's job is running now and whose boot was not sampled yet.

    Start: the machine's launch time, else forescale's last ask before it appeared, else when it was first
    seen. Only machines forescale asked for, or first seen young (within boot_timeout of that start), count: a
    machine that booted long before forescale watched it says nothing about boot times.
    """
    out = []
    for machine in machines:
        node = by_machine.get(machine.id)
        if node is None or machine.id in mem.sampled:
            continue
        running = [
            a
            for a in node.allocations
            if a.job == pool.nomad.job and a.group == pool.nomad.group and a.client_status == "running"
        ]
        if not running:
            continue
        seen = mem.first_seen.get(machine.id, now)
        start = machine.launched_at
        if start is None:
            start = mem.last_ask if mem.last_ask is not None and mem.last_ask <= seen else seen
        asked_by_us = mem.last_ask is not None and start >= mem.last_ask - ASK_SLACK
        if seen - start > pool.nodes.boot_timeout and not asked_by_us:
            continue
        known = [a.running_since for a in running if a.running_since is not None]
        if not known and seen >= now:
            continue  # running already when first seen, and Nomad does not say since when: no sample
        at = min(known, default=now)
        out.append(BootSample(pool.name, machine.id, node.name, start, max(at, start)))
    return out


def lead_time(pool: PoolConfig, boots: Sequence[BootSample], now: datetime) -> LeadTime:
    """The lead time a pool plans with: configured, or (``lead_time: auto``) the p95 of recent boots."""
    window = [b.seconds for b in boots if b.pool == pool.name and b.running_at >= now - pool.nodes.boot_window]
    p50 = float(np.percentile(window, 50)) if window else None
    p95 = float(np.percentile(window, 95)) if window else None
    configured = pool.lead_time.total_seconds()
    if not pool.lead_time_auto:
        return LeadTime(configured, "configured", len(window), p50, p95)
    if len(window) < pool.nodes.min_boots or p95 is None:
        return LeadTime(configured, "initial", len(window), p50, p95)
    return LeadTime(p95, "learned", len(window), p50, p95)


def node_events(pool: str, report: NodeReport, at: datetime) -> list[Event]:
    """What the node step did, as events for Slack, the console and the audit log (nothing for dry runs)."""
    if report.dry_run or report.error:
        return []
    out = []
    by_kind: dict[str, list[NodeAction]] = {}
    for action in report.actions:
        if action.status == "done":
            by_kind.setdefault(action.kind, []).append(action)
    for kind, acts in by_kind.items():
        details: dict[str, object] = {"group": report.group}
        details["actions"] = [
            {"node": a.node, "node_id": a.node_id, "machine": a.machine, "seconds": a.seconds} for a in acts
        ]
        out.append(Event(f"nodes.{kind}", pool, "; ".join(a.message for a in acts), at, details))
    for action in report.actions:
        if action.kind == "problem" and action.status == "failed":
            out.append(Event("nodes.problem", pool, action.message, at, {"key": action.key, "machine": action.machine}))
        elif action.status == "failed":
            continue  # API failures are the pool's failure (alerts repeat and recover), not one-time events
    if report.boots:
        message = "; ".join(
            f"{b.node} ({b.machine}) booted in {format_duration_s(b.seconds)} (asked {b.asked_at:%H:%M:%S}, "
            f"allocation running {b.running_at:%H:%M:%S} UTC)"
            for b in report.boots
        )
        details = {
            "boots": [
                {
                    "machine": b.machine,
                    "node": b.node,
                    "asked_at": b.asked_at.isoformat(),
                    "running_at": b.running_at.isoformat(),
                    "seconds": round(b.seconds, 1),
                }
                for b in report.boots
            ]
        }
        out.append(Event("nodes.boot", pool, message, at, details))
    return out


# --------------------------------------------------------------------------------------------- I/O


@dataclass
class NodeMemory:
    """The little the node step remembers between ticks (rebuilt from the audit log at start)."""

    reported: set[str] = field(default_factory=set)
    boots: list[BootSample] = field(default_factory=list)
    first_seen: dict[str, dict[str, datetime]] = field(default_factory=dict)  # pool → machine → time
    sampled: set[str] = field(default_factory=set)
    last_ask: dict[str, datetime] = field(default_factory=dict)

    def view(self, pool: str) -> NodeMemoryView:
        return NodeMemoryView(
            frozenset(self.reported),
            dict(self.first_seen.get(pool, {})),
            frozenset(self.sampled),
            self.last_ask.get(pool),
        )

    def add_boots(self, boots: Sequence[BootSample]) -> None:
        for boot in boots:
            self.sampled.add(boot.machine)
            self.boots.append(boot)
        if len(self.boots) > MAX_BOOTS_KEPT:
            self.boots = self.boots[-MAX_BOOTS_KEPT:]


class NodeReconciler:
    """Runs the node step of every pool with a provider (``providers`` maps pool name → provider)."""

    def __init__(
        self,
        providers: Mapping[str, NodeProvider],
        directory: NodeDirectory,
        clock: Clock,
        memory: NodeMemory | None = None,
    ) -> None:
        self.providers = dict(providers)
        self.directory = directory
        self.clock = clock
        self.memory = memory or NodeMemory()

    def lead_time(self, pool: PoolConfig, now: datetime) -> LeadTime:
        return lead_time(pool, self.memory.boots, now)

    def step(
        self,
        pool: PoolConfig,
        wanted: int | None,
        now: datetime,
        *,
        scale_in_allowed: bool = True,
        dry_run: bool = False,
    ) -> NodeReport | None:
        """Read, plan, execute (unless ``dry_run``); never raises (failures are in the report)."""
        provider = self.providers.get(pool.name)
        if provider is None:
            return None
        try:
            return self._step(provider, pool, wanted, now, scale_in_allowed, dry_run)
        except Exception as exc:  # a bug must not take the tick down; the count step already happened
            log.exception("pool %s: node step failed unexpectedly", pool.name)
            return NodeReport(provider.kind, pool.name, wanted or 0, error=f"internal error: {exc!r}", dry_run=dry_run)

    def _read(self, provider: NodeProvider, pool: PoolConfig) -> tuple[MachineGroup, list[PoolNode]]:
        group = provider.describe(pool)
        nodes = self.directory.pool_nodes(pool)
        return group, nodes

    def _step(
        self, provider: NodeProvider, pool: PoolConfig, wanted: int | None, now: datetime, scale_in: bool, dry_run: bool
    ) -> NodeReport:
        base = NodeReport(provider.kind, getattr(provider, "where", provider.kind), wanted or 0, dry_run=dry_run)
        try:
            group, nodes = self._read(provider, pool)
        except ForescaleError as exc:
            return replace(
                base,
                error=f"cannot read machines/nodes ({exc}); machines left as they are",
                lead_time=self.lead_time(pool, now),
            )
        base = replace(base, group=group.name)
        seen = self.memory.first_seen.setdefault(pool.name, {})
        for machine in group.machines:
            seen.setdefault(machine.id, now)
        plan = plan_nodes(
            pool, wanted, group, nodes, now, scale_in_allowed=scale_in, memory=self.memory.view(pool.name)
        )
        actions = list(plan.actions)
        if not dry_run:
            actions = self._execute(provider, pool, group, actions, now)
            if any(a.kind == "drain" and a.status == "done" for a in actions):
                actions += self._follow_up(provider, pool, now)
            for action in actions:
                if action.kind == "problem" and action.status == "failed" and action.key:
                    self.memory.reported.add(action.key)
            self.memory.add_boots(plan.boots)
        live = {m.id for m in group.machines}
        for machine_id in [m for m in seen if m not in live]:
            del seen[machine_id]
        capacity_after = plan.capacity_after - sum(1 for a in actions if a.kind == "terminate" and a.status == "done")
        if dry_run:
            capacity_after = plan.capacity_after - sum(1 for a in actions if a.kind == "terminate")
        return replace(
            base,
            capacity_before=plan.capacity_before,
            capacity_after=capacity_after,
            machines=len(group.machines),
            nodes_ready=plan.nodes_ready,
            draining=plan.draining + sum(1 for a in actions if a.kind == "drain"),
            actions=tuple(actions),
            boots=plan.boots,
            lead_time=self.lead_time(pool, now),
        )

    def _follow_up(self, provider: NodeProvider, pool: PoolConfig, now: datetime) -> list[NodeAction]:
        """Right after starting drains: empty nodes finish at once, so terminate them in this tick."""
        try:
            group, nodes = self._read(provider, pool)
        except ForescaleError as exc:
            log.warning(
                "pool %s: re-reading nodes after the drains failed (%s); the next tick finishes", pool.name, exc
            )
            return []
        plan = plan_nodes(pool, None, group, nodes, now, memory=self.memory.view(pool.name))
        todo = [a for a in plan.actions if a.kind in ("terminate", "purge")]
        return self._execute(provider, pool, group, todo, now)

    def _execute(
        self, provider: NodeProvider, pool: PoolConfig, group: MachineGroup, actions: list[NodeAction], now: datetime
    ) -> list[NodeAction]:
        out: list[NodeAction] = []
        meta = {"drained_by": DRAINED_BY, "forescale_pool": pool.name}
        deadline = drain_deadline(pool).total_seconds()
        failed_nodes: set[str] = set()
        terminates = [a for a in actions if a.kind == "terminate" and a.machine]
        results: dict[str, TerminateResult] = {}
        for action in actions:
            if action.status != "planned":
                out.append(action)
                continue
            try:
                if action.kind == "reclaim" and action.node_id:
                    self.directory.cancel_drain(action.node_id, {**meta, "forescale_reclaimed": "true"})
                elif action.kind == "scale_out" and action.capacity is not None:
                    note = provider.scale_out(pool, group, action.capacity)
                    self.memory.last_ask[pool.name] = now
                    action = replace(action, message=f"{action.message} ({note})")
                elif action.kind == "drain" and action.node_id:
                    reason = action.message.split(": ", 1)[-1][:200]
                    self.directory.drain(
                        action.node_id,
                        deadline,
                        pool.nodes.drain_ignore_system_jobs,
                        {**meta, "forescale_reason": reason},
                    )
                elif action.kind == "terminate" and action.machine:
                    if not results:
                        batch = [a.machine for a in terminates if a.machine]
                        results = {r.machine: r for r in provider.terminate(pool, group, batch)}
                    result = results.get(action.machine)
                    if result is None or not result.ok:
                        raise _Failed(result.error if result else "no answer for this machine")
                elif action.kind == "purge" and action.node_id:
                    if action.node_id in failed_nodes:
                        raise _Failed("not purged: its machine was not terminated")
                    self.directory.purge(action.node_id)
            except (ForescaleError, _Failed) as exc:
                log.error("pool %s: %s failed: %s", pool.name, action.kind, exc)
                out.append(replace(action, status="failed", error=str(exc)))
                if action.kind == "terminate" and action.node_id:
                    failed_nodes.add(action.node_id)
                continue
            out.append(replace(action, status="done"))
        return out


class _Failed(Exception):
    """One provider result that failed (raised inside ``_execute`` to record it)."""
