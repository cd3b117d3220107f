"""The node step's I/O: read the provider and Nomad, plan (plan.py), execute unless it is a dry run.

Nothing about drains is kept in memory: every tick reads Nomad's node drain status back (forescale's drains
carry ``Meta.drained_by = forescale`` in the node's LastDrain), so a restarted forescale resumes them. What is
kept in memory (and rebuilt from the audit log at start) is what is reported once (problems), the boot
samples behind ``lead_time: auto``, and the little the plan needs to tell launches and boots apart (when a
machine was first seen, which ones it saw booting, the last ask, the back-off after failed launches).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from autoscaler.core.errors import ForescaleError
from autoscaler.core.nodes import (
    DRAINED_BY,
    Backoff,
    BootSample,
    FleetCounts,
    LeadTime,
    MachineGroup,
    NodeAction,
    NodeReport,
    PoolNode,
    TerminateResult,
)
from autoscaler.core.ports import Clock, NodeDirectory, NodeProvider, TickScoped
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes.boots import PoolLeadTimes
from autoscaler.policy.nodes.plan import NodeMemoryView, NodePlan, plan_nodes, project_capacity

log = logging.getLogger("forescale.nodes")

MAX_BOOTS_KEPT = 200
REAP_DRAIN_S = 1.0  # a dead node has nothing live to move: its drain only keeps it ineligible should it return


@dataclass
class NodeMemory:
    """The little the node step remembers between ticks (rebuilt from the audit log at start)."""

    reported: set[str] = field(default_factory=set)
    boots: list[BootSample] = field(default_factory=list)
    first_seen: dict[str, dict[str, datetime]] = field(default_factory=dict)  # pool → machine → time
    sampled: set[str] = field(default_factory=set)
    last_ask: dict[str, datetime] = field(default_factory=dict)
    booting_seen: dict[str, set[str]] = field(default_factory=dict)  # pool → machines seen without a ready node
    gap_since: dict[str, datetime] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)
    # The pools of a tick run their node steps concurrently (policy/runner.py): what they share is read and
    # changed under this lock.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def view(self, pool: str) -> NodeMemoryView:
        with self.lock:
            return NodeMemoryView(
                frozenset(self.reported),
                dict(self.first_seen.get(pool, {})),
                frozenset(self.sampled),
                self.last_ask.get(pool),
                frozenset(self.booting_seen.get(pool, set())),
                self.gap_since.get(pool),
                self.backoff.get(pool),
            )

    def add_boots(self, boots: Sequence[BootSample]) -> None:
        with self.lock:
            for boot in boots:
                self.sampled.add(boot.machine)
                self.boots.append(boot)
            if len(self.boots) > MAX_BOOTS_KEPT:
                self.boots = self.boots[-MAX_BOOTS_KEPT:]

    def report(self, key: str) -> None:
        """A problem reported once (never again, in this process or after a restart: the audit log has it)."""
        with self.lock:
            self.reported.add(key)

    def remember(self, pool: str, plan: NodePlan, present: set[str]) -> None:
        """After an executed step: machines seen booting, the gap, the back-off (none of it in a dry run)."""
        with self.lock:
            seen = self.booting_seen.setdefault(pool, set())
            seen.update(plan.booting)
            seen.intersection_update(present)
            for name, value in (("gap_since", plan.gap_since), ("backoff", plan.backoff)):
                store: dict[str, object] = getattr(self, name)
                if value is None:
                    store.pop(pool, None)
                else:
                    store[pool] = value


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
        self.lead_times = PoolLeadTimes(lambda: self.memory.boots)  # the pools' one lead time (ports.LeadTimes)

    def lead_time(self, pool: PoolConfig, now: datetime) -> LeadTime:
        return self.lead_times.of(pool, now)

    def for_tick(self) -> NodeReconciler:
        """This reconciler for one tick: the same providers and memory, reading Nomad's nodes through the
        directory's per-tick snapshot (one node list for all pools) when it has one."""
        if not isinstance(self.directory, TickScoped):
            return self
        tick = NodeReconciler(self.providers, self.directory, self.clock, self.memory)
        tick.directory = self.directory.for_tick()  # type: ignore[assignment]
        return tick

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
        """The group, the pool's nodes with their machine ids, and — when some machine has no live node of the
        pool — the outside nodes claiming one of the group's machines (a foreign machine is never dead)."""
        group = provider.describe(pool)
        nodes = [
            replace(n, machine_id=provider.machine_id(pool, n.attributes)) for n in self.directory.pool_nodes(pool)
        ]
        claimed = {n.machine_id for n in nodes if n.machine_id and n.status != "down"}
        if any(m.id not in claimed for m in group.present):
            ids = {m.id for m in group.present}
            for node in self.directory.other_nodes(pool):
                mapped = replace(node, machine_id=provider.machine_id(pool, node.attributes), in_pool=False)
                if mapped.machine_id in ids:
                    nodes.append(mapped)
        return group, nodes

    def _step(
        self, provider: NodeProvider, pool: PoolConfig, wanted: int | None, now: datetime, scale_in: bool, dry_run: bool
    ) -> NodeReport:
        base = NodeReport(provider.kind, provider.where, wanted or 0, dry_run=dry_run)
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
        for machine in group.present:
            seen.setdefault(machine.id, now)
        plan = plan_nodes(
            pool,
            wanted,
            group,
            nodes,
            now,
            scale_in_allowed=scale_in,
            memory=self.memory.view(pool.name),
            node_key=provider.node_key(pool),
        )
        actions = list(plan.actions)
        present = {m.id for m in group.present}
        if not dry_run:
            actions = self._execute(provider, pool, group, actions, now)
            if any(a.kind == "drain" and a.status == "done" for a in actions):
                actions += self._follow_up(provider, pool, now)
            for action in actions:
                if action.reported_once and action.key:
                    self.memory.report(action.key)
            self.memory.add_boots(plan.boots)
            self.memory.remember(pool.name, plan, present)
        for machine_id in [m for m in seen if m not in present]:
            del seen[machine_id]
        capacity_after = project_capacity(group.desired, actions, planned=dry_run)
        counts = after_actions(plan.counts, actions, capacity_after, planned=dry_run)
        return replace(
            base,
            capacity_before=plan.capacity_before,
            capacity_after=capacity_after,
            machines=counts.machines if counts else len(group.present),
            nodes_ready=counts.serving if counts else plan.nodes_ready,
            draining=counts.draining if counts else plan.draining,
            actions=tuple(actions),
            boots=plan.boots,
            lead_time=self.lead_time(pool, now),
            counts=counts,
            notes=plan.notes,
            backoff=plan.backoff,
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
        plan = plan_nodes(
            pool, None, group, nodes, now, memory=self.memory.view(pool.name), node_key=provider.node_key(pool)
        )
        todo = [a for a in plan.actions if a.kind in ("terminate", "purge")]
        return self._execute(provider, pool, group, todo, now)

    def _execute(
        self, provider: NodeProvider, pool: PoolConfig, group: MachineGroup, actions: list[NodeAction], now: datetime
    ) -> list[NodeAction]:
        out: list[NodeAction] = []
        meta = {"drained_by": DRAINED_BY, "forescale_pool": pool.name}
        failed_nodes: set[str] = set()
        batch = [a.machine for a in actions if a.kind == "terminate" and a.machine and a.status == "planned"]
        results: dict[str, TerminateResult] = {}
        for action in actions:
            if action.status != "planned":
                out.append(action)
                continue
            if action.kind == "purge" and action.node_id in failed_nodes:
                out.append(replace(action, status="failed", error="not purged: its machine was not terminated"))
                continue
            try:
                note = self._do(provider, pool, group, action, meta, batch, results)
            except (ForescaleError, _Failed) as exc:
                log.error("pool %s: %s failed: %s", pool.name, action.kind, exc)
                out.append(replace(action, status="failed", error=str(exc)))
                if action.kind in ("terminate", "reap") and action.node_id:
                    failed_nodes.add(action.node_id)
                continue
            if action.kind == "scale_out":
                self.memory.last_ask[pool.name] = now
            out.append(replace(action, status="done", message=f"{action.message} ({note})" if note else action.message))
        return out

    def _do(
        self,
        provider: NodeProvider,
        pool: PoolConfig,
        group: MachineGroup,
        action: NodeAction,
        meta: dict[str, str],
        batch: list[str],
        results: dict[str, TerminateResult],
    ) -> str | None:
        """One action through the ports; raises ForescaleError/_Failed when it did not happen."""
        if action.kind == "reclaim" and action.node_id:
            self.directory.cancel_drain(action.node_id, {**meta, "forescale_reclaimed": "true"})
        elif action.kind == "scale_out" and action.capacity is not None:
            return provider.scale_out(pool, group, action.capacity)
        elif action.kind == "cancel" and action.capacity is not None:
            return provider.cancel_launches(pool, group, action.capacity)
        elif action.kind == "drain" and action.node_id:
            reason = action.message.split(": ", 1)[-1][:200]
            deadline = action.deadline_s if action.deadline_s is not None else 900.0
            self.directory.drain(
                action.node_id, deadline, pool.nodes.drain_ignore_system_jobs, {**meta, "forescale_reason": reason}
            )
        elif action.kind == "reap" and action.machine:
            if action.node_id:  # keep the dead node ineligible should its client come back
                self.directory.drain(action.node_id, REAP_DRAIN_S, False, {**meta, "forescale_reason": "dead machine"})
            answers = provider.terminate(pool, group, [action.machine], replace=action.replace)
            result = next((r for r in answers if r.machine == action.machine), None)
            if result is None or not result.ok:
                raise _Failed(result.error if result and result.error else "not terminated")
        elif action.kind == "terminate" and action.machine:
            if not results:
                results.update({r.machine: r for r in provider.terminate(pool, group, batch)})
            result = results.get(action.machine)
            if result is None or not result.ok:
                raise _Failed(result.error if result else "no answer for this machine")
        elif action.kind == "purge" and action.node_id:
            self.directory.purge(action.node_id)
        return None


def read_fleet(
    provider: NodeProvider, directory: NodeDirectory, pool: PoolConfig
) -> tuple[MachineGroup, list[PoolNode]]:
    """The group, the pool's nodes with their machine ids, and — when some machine has no live node of the pool —
    the outside nodes claiming one of the group's machines (a foreign machine is never dead). Raises
    ForescaleError when the provider or Nomad cannot be read."""
    group = provider.describe(pool)
    nodes = [replace(n, machine_id=provider.machine_id(pool, n.attributes)) for n in directory.pool_nodes(pool)]
    claimed = {n.machine_id for n in nodes if n.machine_id and n.status != "down"}
    if any(m.id not in claimed for m in group.present):
        ids = {m.id for m in group.present}
        for node in directory.other_nodes(pool):
            mapped = replace(node, machine_id=provider.machine_id(pool, node.attributes), in_pool=False)
            if mapped.machine_id in ids:
                nodes.append(mapped)
    return group, nodes


def after_actions(
    counts: FleetCounts | None, actions: Sequence[NodeAction], capacity: int, *, planned: bool
) -> FleetCounts | None:
    """The fleet's counts once the step's actions are done (the gauges must not wait for the next tick)."""
    if counts is None:
        return None
    ok = ("done", "planned") if planned else ("done",)

    def n(kind: str) -> int:
        return sum(1 for a in actions if a.kind == kind and a.status in ok)

    def reaped(kind: str) -> int:
        return sum(1 for a in actions if a.kind == "reap" and a.status in ok and a.key == kind)

    return replace(
        counts,
        capacity=capacity,
        machines=counts.machines - n("terminate") - n("reap"),
        serving=counts.serving - n("drain") + n("reclaim"),
        draining=max(counts.draining + n("drain") - n("terminate") - n("reclaim"), 0),
        unregistered=max(counts.unregistered - reaped("unregistered"), 0),
        down=max(counts.down - reaped("down"), 0),
    )


class _Failed(Exception):
    """One provider result that failed (raised inside ``_execute`` to record it)."""
