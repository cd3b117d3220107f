"""Machines and Nomad nodes of a pool, and what the node step did with them (data only, no I/O).

A pool's machines are managed by a ``NodeProvider`` (an AWS Auto Scaling Group, a user command); its Nomad
nodes are read from Nomad (``NodeDirectory``). ``autoscaler.policy.nodes`` plans from these records and
``NodeReport`` tells what it did: the tick attaches it to the pool's ``PoolOutcome``, so plan, Slack, the
audit log and /metrics all print the same thing.

Unreadable means busy: an allocation whose client status is missing or not terminal (``unknown`` included:
its client disconnected and the work may still run) is live, and a node whose allocation list could not be
read as a list of allocations is never drained, terminated or counted as empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from autoscaler.core.durations import format_duration_s

# Nomad's terminal client statuses (``structs.AllocClientStatus*``): everything else holds the node — pending,
# running, and unknown (a disconnected client whose work may still run).
TERMINAL_ALLOC = frozenset({"complete", "failed", "lost"})
DRAINED_BY = "forescale"  # Meta["drained_by"] of every drain forescale starts (read back after a restart)

# What a provider says of a machine, in words the node step understands (each provider maps its own states).
MachinePhase = Literal["booting", "in_service", "standby", "leaving"]


@dataclass(frozen=True)
class Machine:
    """One machine of a provider's group (an EC2 instance, an inventory host)."""

    id: str
    state: str = "running"  # the provider's own word (AWS LifecycleState), for messages
    launched_at: datetime | None = None
    phase: MachinePhase = "in_service"
    healthy: bool = True  # the provider's health (AWS HealthStatus): an unhealthy machine is the provider's to replace
    protected: bool = False  # scale-in protection (AWS ProtectedFromScaleIn): never selected, never reaped
    zone: str | None = None


@dataclass(frozen=True)
class LaunchFailure:
    """A launch the provider tried and could not do (an AWS scaling activity with status Failed)."""

    id: str  # identity, so it is reported once
    message: str  # the provider's words, e.g. "We currently do not have sufficient p4d.24xlarge capacity …"
    at: datetime | None = None
    code: str | None = None  # e.g. InsufficientInstanceCapacity, when the provider names it


@dataclass(frozen=True)
class GroupState:
    """What the provider's group is doing besides holding machines, as the node step must respect it."""

    scale_out_blocked: str | None = None  # why new machines will not launch now (e.g. the Launch process suspended)
    scale_in_blocked: str | None = None  # why no machine may be removed now (Terminate suspended, instance refresh)
    launching: bool = False  # a launch is in progress (an activity not finished yet)
    failures: tuple[LaunchFailure, ...] = ()  # recent failed launches, newest first
    warnings: tuple[tuple[str, str], ...] = ()  # (key, sentence): reported once (e.g. AZ rebalancing is active)
    notes: tuple[str, ...] = ()  # facts shown in plan (suspended processes, warm pool)


@dataclass(frozen=True)
class MachineGroup:
    """The provider's view of a pool's machines: capacity asked for, its bounds, the machines that exist."""

    name: str
    desired: int
    machines: tuple[Machine, ...] = ()
    min: int | None = None
    max: int | None = None
    state: GroupState = field(default_factory=GroupState)

    def machine(self, machine_id: str | None) -> Machine | None:
        return next((m for m in self.machines if m.id == machine_id), None) if machine_id else None

    @property
    def present(self) -> tuple[Machine, ...]:
        """The machines that exist and are not on their way out (what capacity is counted from)."""
        return tuple(m for m in self.machines if m.phase != "leaving")


@dataclass(frozen=True)
class MigrateSpec:
    """How Nomad's drainer moves one task group's allocations (the job's ``migrate`` block, kill settings)."""

    max_parallel: int = 1
    healthy_deadline_s: float = 300.0
    stop_s: float = 5.0  # shutdown_delay + the longest kill_timeout of its tasks


@dataclass(frozen=True)
class NodeAllocation:
    """What the node step needs of one allocation on a node (from ``GET /v1/node/:id/allocations``)."""

    id: str
    job: str
    group: str
    client_status: str
    desired_status: str = "run"
    job_type: str = "service"
    running_since: datetime | None = None
    migrate: MigrateSpec | None = None

    @property
    def live(self) -> bool:
        """Holds the node: any client status that is not terminal (a missing or unknown one included)."""
        return self.client_status not in TERMINAL_ALLOC

    @property
    def wanted(self) -> bool:
        """Live and still wanted by its job (desired status ``run``): an allocation being stopped is not work."""
        return self.live and self.desired_status == "run"


@dataclass(frozen=True)
class PoolNode:
    """A Nomad client node as the node step sees it (``GET /v1/node/:id`` + its allocations)."""

    id: str
    name: str
    status: str  # initializing | ready | down | disconnected
    eligible: bool
    draining: bool  # DrainStrategy is set
    machine_id: str | None  # the provider's id of the machine (the provider maps it from the attributes)
    create_index: int = 0
    node_pool: str = "default"
    node_class: str = ""
    datacenter: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    drain_deadline: datetime | None = None  # DrainStrategy.ForceDeadline
    last_drain_status: str | None = None  # LastDrain.Status: draining | complete | canceled
    last_drain_started: datetime | None = None
    last_drain_meta: Mapping[str, str] = field(default_factory=dict)
    allocations: tuple[NodeAllocation, ...] = ()
    in_pool: bool = True  # False: a node outside the pool's filters that claims one of the group's machines
    allocations_error: str | None = None  # why the allocation list is unreadable (then the node is busy)
    status_since: datetime | None = None  # StatusUpdatedAt
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """'gpu-7 (i-0abc…)' for messages."""
        return f"{self.name} ({self.machine_id})" if self.machine_id else self.name

    @property
    def drained_by_us(self) -> bool:
        return self.last_drain_meta.get("drained_by") == DRAINED_BY

    @property
    def readable(self) -> bool:
        return self.allocations_error is None

    def live_allocations(self, ignore_system: bool = False) -> list[NodeAllocation]:
        return [a for a in self.allocations if a.live and not (ignore_system and a.job_type == "system")]

    def work(self, ignore_system: bool = False) -> list[NodeAllocation]:
        """Allocations still wanted by their jobs (what makes a node busy for selection)."""
        return [a for a in self.allocations if a.wanted and not (ignore_system and a.job_type == "system")]


@dataclass(frozen=True)
class TerminateResult:
    """One machine the provider was asked to terminate: done, or the error that kept it."""

    machine: str
    ok: bool
    error: str | None = None


ActionKind = Literal[
    "scale_out", "reclaim", "drain", "terminate", "reap", "cancel", "purge", "problem", "warning", "waiting", "note"
]
ActionStatus = Literal["planned", "done", "failed", "new", "info"]


@dataclass(frozen=True)
class NodeAction:
    """One thing the node step did (or would do in a dry run), with the sentence that explains it.

    Kinds: scale_out (raise capacity), reclaim (cancel one of our drains), drain, terminate (a drained machine),
    reap (a dead machine: never registered, or its node down too long), cancel (lower the capacity to the
    machines that exist: launches that never came), purge, problem (a failure, reported once: status failed
    the first time, info after), warning (a risk, reported once: status new the first time, info after;
    never fails the step), waiting, note.

    ``reported_once`` is true for the first report of a problem or warning (what memory keeps by ``key``).
    """

    kind: ActionKind
    message: str
    status: ActionStatus = "planned"
    node: str | None = None  # node name
    node_id: str | None = None
    machine: str | None = None
    error: str | None = None
    key: str | None = None  # identity of a problem that is reported once (e.g. "drain_timeout:<node id>")
    seconds: float | None = None  # how long the drain took (terminate) or the machine has been booting
    capacity: int | None = None  # scale_out/cancel: the provider capacity asked for
    deadline_s: float | None = None  # drain: the deadline given to Nomad
    replace: bool = False  # reap at the group's minimum: the provider replaces the machine

    @property
    def reported_once(self) -> bool:
        return (self.kind == "problem" and self.status == "failed") or (
            self.kind == "warning" and self.status == "new"
        )


@dataclass(frozen=True)
class BootSample:
    """One observed boot: from asking for a machine to its allocation of the pool's job running."""

    pool: str
    machine: str
    node: str
    asked_at: datetime
    running_at: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.running_at - self.asked_at).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        """The one serialised form (audit log, events, reports); ``from_dict`` reads it back."""
        return {
            "machine": self.machine,
            "node": self.node,
            "asked_at": self.asked_at.isoformat(),
            "running_at": self.running_at.isoformat(),
            "seconds": round(self.seconds, 1),
        }

    @classmethod
    def from_dict(cls, pool: str, raw: Mapping[str, Any]) -> BootSample:
        """Raises KeyError/TypeError/ValueError on a malformed record."""
        return cls(
            pool=pool,
            machine=str(raw["machine"]),
            node=str(raw.get("node") or ""),
            asked_at=datetime.fromisoformat(raw["asked_at"]),
            running_at=datetime.fromisoformat(raw["running_at"]),
        )


@dataclass(frozen=True)
class LeadTime:
    """The lead time a pool plans with, and where it came from (configured, or learned from boots)."""

    seconds: float
    source: Literal["configured", "learned", "initial"]
    boots: int = 0
    p50_s: float | None = None
    p95_s: float | None = None

    def explain(self) -> str:
        if self.source == "configured":
            base = f"lead time {format_duration_s(self.seconds)} (configured)"
        elif self.source == "learned":
            base = f"lead time {format_duration_s(self.seconds)} (auto: p95 of {self.boots} recent boots)"
        else:
            seen = f"{self.boots} boot(s) seen"
            base = f"lead time {format_duration_s(self.seconds)} (auto: initial value until enough boots; {seen})"
        if self.p50_s is not None and self.p95_s is not None:
            base += f"; boots p50 {format_duration_s(self.p50_s)}, p95 {format_duration_s(self.p95_s)}"
        return base


@dataclass(frozen=True)
class Backoff:
    """Scale-out of a pool is held back until ``until`` (after failed launches or dead machines)."""

    until: datetime
    delay: timedelta
    reason: str
    since: datetime  # the start of the episode (failures that follow within it are not news)

    def to_dict(self) -> dict[str, Any]:
        return {
            "until": self.until.isoformat(),
            "delay_s": self.delay.total_seconds(),
            "reason": self.reason,
            "since": self.since.isoformat(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Backoff:
        """Raises KeyError/TypeError/ValueError on a malformed record."""
        return cls(
            datetime.fromisoformat(raw["until"]),
            timedelta(seconds=float(raw["delay_s"])),
            str(raw["reason"]),
            datetime.fromisoformat(raw["since"]),
        )


@dataclass(frozen=True)
class FleetCounts:
    """The pool's machines by what they are doing, after the step's actions (the gauges print these)."""

    capacity: int  # the provider's desired capacity
    machines: int  # machines that exist (not leaving)
    serving: int  # a ready, eligible node of the pool
    booting: int  # no ready node yet, within boot_timeout
    draining: int  # forescale's drains in progress or waiting for termination
    unregistered: int = 0  # no Nomad node after boot_timeout
    down: int = 0  # the node is down or disconnected
    foreign: int = 0  # claimed by a node outside the pool's filters
    other: int = 0  # held by someone else's drain, ambiguous claims, standby


@dataclass(frozen=True)
class NodeReport:
    """What the node step did for one pool in one tick (attached to its ``PoolOutcome``)."""

    provider: str  # aws_asg | command
    group: str  # e.g. "ASG ml-ocr-gpu (eu-west-1)"
    wanted: int  # machines wanted: the group's desired count + spare
    capacity_before: int | None = None  # provider desired capacity when the step started
    capacity_after: int | None = None
    machines: int = 0
    nodes_ready: int = 0
    draining: int = 0
    actions: tuple[NodeAction, ...] = ()
    boots: tuple[BootSample, ...] = ()
    lead_time: LeadTime | None = None
    error: str | None = None  # the step could not run at all (provider or Nomad unreadable)
    dry_run: bool = False
    counts: FleetCounts | None = None
    notes: tuple[str, ...] = ()  # group state worth seeing in plan (suspended processes, refresh, warm pool)
    backoff: Backoff | None = None  # scale-out held back after failed launches or dead machines

    @property
    def failed(self) -> bool:
        return self.error is not None or any(a.status == "failed" for a in self.actions)

    def failures(self) -> list[str]:
        out = [self.error] if self.error else []
        out += [f"{a.message}: {a.error}" if a.error else a.message for a in self.actions if a.status == "failed"]
        return out

    def of_kind(self, kind: ActionKind) -> list[NodeAction]:
        return [a for a in self.actions if a.kind == kind]

    def summary(self) -> str:
        """One line: 'ASG x: 4 → 6 machines; drained gpu-3 (i-1); terminated i-2' (or the error)."""
        if self.error:
            return f"{self.group}: {self.error}"
        parts = []
        if self.capacity_before is not None and self.capacity_after is not None:
            if self.capacity_after != self.capacity_before:
                parts.append(f"{self.capacity_before} → {self.capacity_after} machines")
            else:
                parts.append(f"{self.capacity_after} machines")
        verbs = {
            "reclaim": "reclaimed",
            "drain": "draining",
            "terminate": "terminated",
            "reap": "reaped",
            "cancel": "cancelled launches",
            "purge": "purged",
        }
        for kind, verb in verbs.items():
            acts = [a for a in self.of_kind(kind) if a.status in ("done", "planned")]  # type: ignore[arg-type]
            if acts:
                prefix = "would be " if self.dry_run else ""
                names = ", ".join(a.node or a.machine or "" for a in acts if a.node or a.machine)
                parts.append(f"{prefix}{verb}" + (f" {names}" if names else ""))
        problems = [a for a in self.actions if a.status == "failed"]
        if problems:
            parts.append(f"{len(problems)} problem(s)")
        return f"{self.group}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["boots"] = [b.to_dict() for b in self.boots]
        out["backoff"] = self.backoff.to_dict() if self.backoff is not None else None
        return out
