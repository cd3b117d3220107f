"""The node step's plan: from what the provider and Nomad say now, what to do (pure; docs/nodes.md).

    wanted    the group's desired count + nodes.spare
    classify  every machine → one slot (fleet.py): serving, booting, retiring, dead, foreign, …
    report    problems reported once: nodes without the machine attribute, ambiguous claims, foreign machines,
              unreadable allocation lists, the group's warnings (e.g. AZ rebalancing active)
    reap      dead machines — no ready node after boot_timeout, or a node down past down_timeout with nothing
              live on it — are terminated with decrement (drained first where Nomad knows them)
    launches  a failed launch or a gap past launch_timeout: reported once, capacity lowered to the machines
              that exist, scale-out backed off (launches.py)
    scale-out supply = serving + booting; below wanted: reclaim our own drains, then raise the capacity to
              present machines + what is missing (never lower, clamped to the group's max)
    scale-in  serving above wanted: drain that many candidates (selection strategy); never computed from the
              provider's desired, never a node that is not uniquely, readably, in-service the pool's
    progress  terminate exactly the machines whose drains are complete and empty; report stuck drains
    boots     samples for lead_time: auto (boots.py)

``wanted`` None: the count was not applied; only finish work already started (drains, dead machines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from autoscaler.core.durations import format_duration_s
from autoscaler.core.nodes import BootSample, FleetCounts, MachineGroup, NodeAction, PoolNode
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes.boots import boots as sample_boots
from autoscaler.policy.nodes.drain import drain_progress, migrating, node_drain_deadline
from autoscaler.policy.nodes.fleet import Fleet, Slot, classify
from autoscaler.policy.nodes.launches import Backoff, check_launches
from autoscaler.policy.nodes.select import select_nodes


@dataclass(frozen=True)
class NodeMemoryView:
    """What the plan may know beyond Nomad and the provider (kept by the reconciler, rebuilt at start)."""

    reported: frozenset[str] = frozenset()
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    sampled: frozenset[str] = frozenset()
    last_ask: datetime | None = None
    booting_seen: frozenset[str] = frozenset()  # machines seen with no ready node of the pool
    gap_since: datetime | None = None
    backoff: Backoff | None = None


@dataclass(frozen=True)
class NodePlan:
    """Actions in execution order (reap, cancel, reclaim, scale_out, drain, terminate, purge) plus info."""

    actions: tuple[NodeAction, ...]
    capacity_before: int
    capacity_after: int
    nodes_ready: int
    draining: int
    boots: tuple[BootSample, ...] = ()
    counts: FleetCounts | None = None
    notes: tuple[str, ...] = ()
    backoff: Backoff | None = None
    gap_since: datetime | None = None
    booting: frozenset[str] = frozenset()  # machines booting now (for booting_seen)


class _Steps:
    """The plan under construction: one method per step, sharing the actions list and the problem helper."""

    def __init__(self, pool: PoolConfig, group: MachineGroup, mem: NodeMemoryView, node_key: str) -> None:
        self.pool, self.group, self.mem, self.node_key = pool, group, mem, node_key
        self.settings = pool.nodes
        self.actions: list[NodeAction] = []
        self.notes: list[str] = list(group.state.notes)
        self.removed = 0  # machines this plan removes with a decrement (reaped)

    def add(self, kind: str, message: str, status: str = "planned", **kw: object) -> None:
        self.actions.append(NodeAction(kind, message, status, **kw))  # type: ignore[arg-type]

    def problem(self, key: str, message: str, **kw: object) -> None:
        """Reported once (failed the first time, info after), keyed so a restart does not repeat it."""
        self.add("problem", message, "failed" if key not in self.mem.reported else "info", key=key, **kw)

    def warn(self, key: str, message: str, **kw: object) -> None:
        """A risk, reported once (never a failure of the step): shown every time in plan."""
        self.add("warning", message, "new" if key not in self.mem.reported else "info", key=key, **kw)

    def note(self, message: str) -> None:
        self.add("note", message, "info")

    # -- report what cannot be trusted ------------------------------------------------------------------
    def report(self, fleet: Fleet) -> None:
        for node in fleet.unnamed:
            self.problem(
                f"no_attribute:{node.id}",
                f"node {node.name} has no attribute {self.node_key}: forescale cannot tell its machine, so it never "
                "drains or terminates it (check the client's fingerprint or nodes.instance_attribute)",
                node=node.name,
                node_id=node.id,
            )
        for slot in fleet.of("ambiguous"):
            self.problem(f"ambiguous:{slot.machine.id}", slot.why, machine=slot.machine.id)
        for slot in fleet.of("foreign"):
            self.warn(f"foreign:{slot.machine.id}", slot.why, machine=slot.machine.id)
        for slot in fleet.of("serving", "retiring", "down"):
            held = slot.node
            if held is not None and not held.readable:
                node = held
                self.problem(
                    f"unreadable:{node.id}",
                    f"{node.label}: {node.allocations_error}; counted as busy (never drained or terminated) until "
                    "Nomad answers a list",
                    node=node.name,
                    node_id=node.id,
                    machine=slot.machine.id,
                )
        for key, message in self.group.state.warnings:
            self.warn(key, message)
        state = self.group.state
        if state.scale_out_blocked:
            self.notes.append(f"scale-out paused: {state.scale_out_blocked}")
        if state.scale_in_blocked:
            self.notes.append(f"removals paused: {state.scale_in_blocked}")
        unhealthy = [s.machine.id for s in fleet.slots if not s.machine.healthy]
        if unhealthy:
            self.notes.append(
                f"{len(unhealthy)} machine(s) unhealthy at the provider ({', '.join(unhealthy[:5])}): it replaces "
                "them itself; never selected for scale-in"
            )
        protected = [s.machine.id for s in fleet.slots if s.machine.protected]
        if protected:
            self.notes.append(f"{len(protected)} machine(s) protected from scale-in: never selected")

    # -- dead machines ------------------------------------------------------------------------------------
    def reap(self, fleet: Fleet, now: datetime) -> None:
        settings, blocked = self.settings, self.group.state.scale_in_blocked
        bound = format_duration_s(settings.boot_timeout.total_seconds())
        floor = self.group.min or 0
        # A node of the pool that names no machine of the group (attribute missing, or naming something else)
        # means the node ↔ machine mapping cannot be trusted: a machine "without a node" may be that node's.
        unmatched = [n for n in (*fleet.unnamed, *fleet.strays) if n.status != "down"]
        for slot in fleet.of("unregistered", "down"):
            machine, node = slot.machine, slot.node
            since = slot.since or self.mem.first_seen.get(machine.id) or now
            age = (now - since).total_seconds()
            if slot.kind == "unregistered":
                key = f"no_node:{machine.id}"
                what = (
                    f"machine {machine.id} has no ready Nomad node after {format_duration_s(age)} "
                    f"(boot_timeout {bound})"
                )
                hint = f"check its Nomad client (config, node pool/class, the {self.node_key} attribute)"
                if unmatched:
                    names = ", ".join(sorted(n.name for n in unmatched)[:3])
                    self.problem(
                        key,
                        f"{what}: kept — {len(unmatched)} live node(s) of the pool ({names}) name no machine of "
                        f"{self.group.name} by {self.node_key}: the node ↔ machine mapping may be wrong, so no machine "
                        "without a node is reaped until every node of the pool names one (check "
                        "nodes.instance_attribute and the clients' fingerprint)",
                        machine=machine.id,
                        seconds=age,
                    )
                    continue
            else:
                if age <= settings.down_timeout.total_seconds():
                    continue
                assert node is not None
                key = f"node_down:{node.id}"
                what = f"{node.label} has been {node.status} for {format_duration_s(age)}"
                live = node.live_allocations()
                if live or not node.readable:
                    left = (
                        node.allocations_error or f"{len(live)} allocation(s) may still run ({live[0].client_status})"
                    )
                    self.problem(key, f"{what}: {left}; kept until Nomad marks them lost", machine=machine.id)
                    continue
                hint = "its client stopped heartbeating"
            if not settings.reap_dead or machine.protected or blocked is not None:
                why = (
                    "nodes.reap_dead is off"
                    if not settings.reap_dead
                    else "it is protected from scale-in"
                    if machine.protected
                    else str(blocked)
                )
                self.problem(key, f"{what}: kept ({why}); {hint}", machine=machine.id, seconds=age)
                continue
            replace = self.group.desired - self.removed - 1 < floor
            self.removed += 0 if replace else 1
            self.problem(key, f"{what}: reaped; {hint}", machine=machine.id, seconds=age)
            self.add(
                "reap",
                f"terminate dead machine {machine.id}: {what}"
                + (f" (replaced: the group is at its min size {floor})" if replace else ""),
                node=node.name if node else None,
                node_id=node.id if node else None,
                machine=machine.id,
                seconds=age,
                replace=replace,
                key=slot.kind,
            )

    # -- scale-out ----------------------------------------------------------------------------------------
    def scale_out(self, fleet: Fleet, wanted: int, backoff: Backoff | None, now: datetime) -> set[str]:
        supply = fleet.count("serving", "booting")
        need = wanted - supply
        reclaimed: set[str] = set()
        retiring = [s.node for s in fleet.of("retiring") if s.node is not None]
        for node in sorted(retiring, key=lambda n: (not n.draining, -n.create_index))[:need]:
            reclaimed.add(node.id)
            self.add(
                "reclaim",
                f"reclaim {node.label}: cancel its drain and make it eligible (cheaper than booting a new machine)",
                node=node.name,
                node_id=node.id,
                machine=node.machine_id,
            )
        need -= len(reclaimed)
        if need <= 0:
            return reclaimed
        group = self.group
        base = group.desired - self.removed  # reaped machines leave with a decrement first
        target = len(group.present) - self.removed + need
        if target <= base:
            self.note(
                f"{group.name}: {group.desired - len(group.present)} launch(es) in flight cover the {need} machine(s) "
                "still missing"
            )
            return reclaimed
        if group.max is not None and target > group.max:
            self.note(
                f"{group.name}: capped at its max size {group.max} (wanted {target} machines); raise the group's max "
                "or lower the pool's max"
            )
            target = group.max
        if target <= base:
            return reclaimed
        if group.state.scale_out_blocked:
            blocked = group.state.scale_out_blocked
            self.note(f"{group.name}: {target - base} machine(s) wanted, not asked: {blocked}")
            return reclaimed
        if backoff is not None and now < backoff.until:
            self.note(
                f"{group.name}: {target - base} machine(s) wanted, not asked: scale-out backs off until "
                f"{backoff.until:%H:%M} UTC after {backoff.reason}"
            )
            return reclaimed
        spare = self.settings.spare
        self.add(
            "scale_out",
            f"ask {group.name} for {target - base} machine(s): capacity {base} → {target} for "
            f"{wanted} wanted ({wanted - spare} + {spare} spare)",
            capacity=target,
        )
        return reclaimed

    # -- scale-in -----------------------------------------------------------------------------------------
    def scale_in(self, fleet: Fleet, wanted: int, allowed: bool) -> None:
        serving = fleet.of("serving")
        excess = len(serving) - wanted
        if excess <= 0:
            return
        group, settings = self.group, self.settings
        if not allowed:
            self.note(
                f"{excess} machine(s) more than wanted, kept: the count was not decided from fresh metrics (never "
                "shrink blind)"
            )
            return
        if group.state.scale_in_blocked:
            self.note(f"{excess} machine(s) more than wanted, kept: {group.state.scale_in_blocked}")
            return
        floor = group.min or 0
        room = group.desired - self.removed - fleet.count("retiring") - floor
        if room < excess:
            self.note(f"{group.name}: its min size {floor} stops scale-in at {floor} machines")
            excess = max(room, 0)
        job = (self.pool.nomad.job, self.pool.nomad.group)
        candidates = [s for s in serving if s.candidate and not _runs(s, job)]
        nodes = [s.node for s in candidates if s.node is not None]
        picked = select_nodes(nodes, excess, settings.selection, settings.drain_ignore_system_jobs)
        draining = [s.node for s in fleet.of("retiring") if s.node is not None and s.node.draining]
        together = migrating([*draining, *(node for node, _ in picked)])  # Nomad's drainer batches job-wide
        for node, why in picked:
            deadline, basis = node_drain_deadline(self.pool, node, together)
            self.add(
                "drain",
                f"drain {node.label}: {why}; deadline {format_duration_s(deadline.total_seconds())} ({basis})",
                node=node.name,
                node_id=node.id,
                machine=node.machine_id,
                deadline_s=deadline.total_seconds(),
            )
        if len(picked) < excess:
            kept = _not_candidates(serving, job)
            self.note(
                f"only {len(picked)} of {excess} excess machine(s) can be drained now" + (f": {kept}" if kept else "")
            )


def _runs(slot: Slot, job: tuple[str, str]) -> bool:
    """The node runs an allocation of the pool's own job that is still wanted: the count step keeps it, so the
    node step never moves it (Nomad already stopped the allocations the lower count does not need)."""
    return slot.node is not None and any((a.job, a.group) == job for a in slot.node.work())


def _not_candidates(serving: Sequence[Slot], job: tuple[str, str]) -> str:
    why = []
    for slot in serving:
        if slot.candidate and not _runs(slot, job):
            continue
        m = slot.machine
        if m.protected:
            reason = "protected"
        elif not m.healthy:
            reason = "unhealthy"
        elif m.phase != "in_service":
            reason = m.state
        elif slot.node is None or not slot.node.readable:
            reason = "allocations unreadable"
        else:
            reason = f"runs {job[0]}/{job[1]}"
        why.append(f"{m.id} {reason}")
    return ", ".join(why[:5])


def plan_nodes(
    pool: PoolConfig,
    wanted: int | None,
    group: MachineGroup,
    nodes: Sequence[PoolNode],
    now: datetime,
    *,
    scale_in_allowed: bool = True,
    memory: NodeMemoryView | None = None,
    node_key: str = "unique.platform.aws.instance-id",
) -> NodePlan:
    """Pure: from what the provider and Nomad say now, what to do (module docstring). ``node_key``: the
    attribute that names a node's machine (the provider's), for messages."""
    mem = memory or NodeMemoryView()
    steps = _Steps(pool, group, mem, node_key)
    fleet = classify(
        group, nodes, now, pool.nodes.boot_timeout.total_seconds(), mem.first_seen, pool.nodes.filters_text()
    )
    steps.report(fleet)
    steps.reap(fleet, now)
    launch = check_launches(
        pool,
        group,
        fleet.count("unregistered"),
        now,
        removed=steps.removed,
        last_ask=mem.last_ask,
        gap_since=mem.gap_since,
        backoff=mem.backoff,
        problem=steps.problem,
        blocked=group.state.scale_in_blocked,
    )
    steps.actions += launch.actions
    reclaimed: set[str] = set()
    if wanted is not None:
        if wanted > fleet.count("serving", "booting"):
            reclaimed = steps.scale_out(fleet, wanted, launch.backoff, now)
        else:
            steps.scale_in(fleet, wanted, scale_in_allowed)
    progress, draining = drain_progress(
        pool, fleet.of("retiring"), now, reclaimed, steps.problem, group.state.scale_in_blocked
    )
    steps.actions += progress
    if pool.nodes.purge:
        for node in fleet.strays:
            if node.drained_by_us and node.status == "down":
                steps.add("purge", f"purge node {node.name}: its machine is gone", node=node.name, node_id=node.id)
    for slot in fleet.of("booting"):
        if slot.since is not None and slot.node is None:
            steps.add(
                "waiting",
                f"machine {slot.machine.id} booting for {format_duration_s((now - slot.since).total_seconds())}",
                "info",
                machine=slot.machine.id,
                seconds=(now - slot.since).total_seconds(),
            )
    samples = sample_boots(
        pool,
        fleet.slots,
        now,
        booting_seen=mem.booting_seen,
        sampled=mem.sampled,
        first_seen=mem.first_seen,
        last_ask=mem.last_ask,
    )
    actions = _ordered(steps.actions)
    booting = frozenset(s.machine.id for s in fleet.of("booting", "unregistered"))
    return NodePlan(
        tuple(actions),
        group.desired,
        project_capacity(group.desired, actions, planned=True),
        fleet.count("serving"),
        draining,
        tuple(samples),
        fleet.counts(group.desired),
        tuple(steps.notes),
        launch.backoff,
        launch.gap_since,
        booting,
    )


def project_capacity(desired: int, actions: Sequence[NodeAction], *, planned: bool) -> int:
    """The provider's capacity after the actions that were done (and, with ``planned``, those planned)."""
    ok = ("done", "planned") if planned else ("done",)
    capacity = desired
    for action in actions:
        if action.status not in ok:
            continue
        if action.kind in ("scale_out", "cancel") and action.capacity is not None:
            capacity = action.capacity
        elif action.kind == "terminate" or (action.kind == "reap" and not action.replace):
            capacity -= 1
    return capacity


ORDER = {"reap": 0, "cancel": 1, "reclaim": 2, "scale_out": 3, "drain": 4, "terminate": 5, "purge": 6}


def _ordered(actions: list[NodeAction]) -> list[NodeAction]:
    """Writes in a safe order (dead machines and cancelled launches before new asks), info kept in place."""
    return sorted(actions, key=lambda a: ORDER.get(a.kind, 7))
