"""What each machine of a pool's group is, from what the provider and Nomad say now (pure).

Every machine that exists and is not leaving gets exactly one slot:

    serving       one live node of the pool claims it: ready, eligible, not draining
    retiring      one of forescale's drains (in progress, or complete and still ineligible)
    held          its node is drained or ineligible by someone else: left alone, not counted as serving
    booting       no node yet (or one still initializing), within boot_timeout of its launch
    unregistered  no ready node after boot_timeout: dead (reaped when nodes.reap_dead)
    down          its node is down or disconnected (reaped after down_timeout when nothing live is on it)
    foreign       the one live node claiming it is outside the pool's filters: never touched, never counted
    ambiguous     two or more live nodes claim it (cloned VMs, a hostname reused): never touched
    standby       the provider keeps it out of service (AWS Standby): never touched

Only ``serving`` slots are capacity that scale-in may shrink, and of those only ``candidates``: allocations
read and well-formed, the machine in service, healthy and not protected from scale-in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from autoscaler.core.nodes import FleetCounts, Machine, MachineGroup, PoolNode

SlotKind = Literal["serving", "retiring", "held", "booting", "unregistered", "down", "foreign", "ambiguous", "standby"]


@dataclass(frozen=True)
class Slot:
    machine: Machine
    kind: SlotKind
    node: PoolNode | None = None  # the node on it (the pool's, or the foreign/down one)
    since: datetime | None = None  # booting/unregistered: launched or first seen; down: since when
    why: str = ""  # held/foreign/ambiguous: the sentence

    @property
    def candidate(self) -> bool:
        """May be drained for scale-in: serving, allocations readable, in service, healthy, not protected."""
        m = self.machine
        return (
            self.kind == "serving"
            and self.node is not None
            and self.node.readable
            and m.phase == "in_service"
            and m.healthy
            and not m.protected
        )


@dataclass(frozen=True)
class Fleet:
    """The group's machines by slot, plus the pool's nodes that are on no machine of the group."""

    slots: tuple[Slot, ...]
    strays: tuple[PoolNode, ...] = ()  # pool nodes whose machine is not in the group (gone, or another group)
    unnamed: tuple[PoolNode, ...] = ()  # pool nodes without the machine attribute
    by_kind: Mapping[str, tuple[Slot, ...]] = field(default_factory=dict)

    def of(self, *kinds: SlotKind) -> list[Slot]:
        return [s for k in kinds for s in self.by_kind.get(k, ())]

    def count(self, *kinds: SlotKind) -> int:
        return sum(len(self.by_kind.get(k, ())) for k in kinds)

    def counts(self, capacity: int) -> FleetCounts:
        return FleetCounts(
            capacity=capacity,
            machines=len(self.slots),
            serving=self.count("serving"),
            booting=self.count("booting"),
            draining=self.count("retiring"),
            unregistered=self.count("unregistered"),
            down=self.count("down"),
            foreign=self.count("foreign"),
            other=self.count("held", "ambiguous", "standby"),
        )


def retiring(node: PoolNode) -> bool:
    """One of forescale's drains: in progress, or complete with the node still ineligible (not reclaimed)."""
    return node.drained_by_us and (node.draining or (node.last_drain_status == "complete" and not node.eligible))


def classify(
    group: MachineGroup,
    nodes: Sequence[PoolNode],
    now: datetime,
    boot_timeout_s: float,
    first_seen: Mapping[str, datetime] | None = None,
    filters: str = "",
) -> Fleet:
    """Each present machine of the group → its slot (module docstring). ``nodes``: the pool's nodes and any
    outside node that claims a machine of the group (``in_pool`` False), machine ids already mapped."""
    seen = first_seen or {}
    live: dict[str, list[PoolNode]] = {}
    dead: dict[str, list[PoolNode]] = {}
    for node in nodes:
        if node.machine_id:
            (dead if node.status == "down" else live).setdefault(node.machine_id, []).append(node)
    slots = []
    for machine in group.present:
        slots.append(
            _slot(machine, live.get(machine.id, []), dead.get(machine.id, []), now, boot_timeout_s, seen, filters)
        )
    ids = {m.id for m in group.present}
    strays = tuple(n for n in nodes if n.in_pool and n.machine_id and n.machine_id not in ids)
    unnamed = tuple(n for n in nodes if n.in_pool and not n.machine_id and n.status != "down")
    by_kind: dict[str, list[Slot]] = {}
    for slot in slots:
        by_kind.setdefault(slot.kind, []).append(slot)
    return Fleet(tuple(slots), strays, unnamed, {k: tuple(v) for k, v in by_kind.items()})


def _slot(
    machine: Machine,
    claims: list[PoolNode],
    down: list[PoolNode],
    now: datetime,
    boot_timeout_s: float,
    seen: Mapping[str, datetime],
    filters: str,
) -> Slot:
    if len(claims) > 1:
        names = ", ".join(sorted(n.name for n in claims))
        return Slot(
            machine,
            "ambiguous",
            why=f"machine {machine.id} is claimed by {len(claims)} live nodes ({names}): forescale cannot tell which "
            "one runs on it, so it never drains or terminates it (cloned VMs, or a machine attribute that is not "
            "unique: set nodes.instance_attribute)",
        )
    newest_down = max(down, key=lambda n: n.create_index) if down else None
    outside = claims[0] if claims else newest_down
    if outside is not None and not outside.in_pool:  # a dead node of another pool still makes its machine theirs
        return Slot(
            machine,
            "foreign",
            outside,
            why=f"machine {machine.id} is node {outside.name} of node pool '{outside.node_pool}', outside this "
            f"pool's filters ({filters}): never drained, terminated or counted by this pool; give each Nomad node "
            "pool its own group",
        )
    if claims:
        node = claims[0]
        if retiring(node):
            return Slot(machine, "retiring", node)
        if node.status == "ready" and node.eligible and not node.draining:
            return Slot(machine, "serving", node)
        if node.status == "initializing":  # registered, never ready: dead like an unregistered one after the bound
            start = _start(machine, seen, now)
            late = (now - start).total_seconds() > boot_timeout_s
            return Slot(machine, "unregistered" if late else "booting", node, since=start)
        if node.status == "disconnected":
            return Slot(machine, "down", node, since=node.status_since)
        return Slot(
            machine,
            "held",
            node,
            why=f"{node.label} is {'draining' if node.draining else 'ineligible'} by someone else: left alone",
        )
    if newest_down is not None:
        return Slot(machine, "down", newest_down, since=newest_down.status_since)
    if machine.phase == "standby":
        return Slot(machine, "standby", why=f"machine {machine.id} is in standby ({machine.state}): left alone")
    start = _start(machine, seen, now)
    kind: SlotKind = "unregistered" if (now - start).total_seconds() > boot_timeout_s else "booting"
    return Slot(machine, kind, since=start)


def _start(machine: Machine, seen: Mapping[str, datetime], now: datetime) -> datetime:
    return machine.launched_at or seen.get(machine.id) or now
