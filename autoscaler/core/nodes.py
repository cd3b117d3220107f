"""Machines and Nomad nodes of a pool, and what the node step did with them (data only, no I/O).

A pool's machines are managed by a ``NodeProvider`` (an AWS Auto Scaling Group, a user command); its Nomad
nodes are read from Nomad (``NodeDirectory``). ``autoscaler.policy.nodes`` plans from these records and
``NodeReport`` tells what it did: the tick attaches it to the pool's ``PoolOutcome``, so plan, Slack, the
audit log and /metrics all print the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from autoscaler.core.durations import format_duration_s

# Nomad's client statuses of an allocation that still holds (or is about to hold) the node.
LIVE_ALLOC = frozenset({"pending", "running"})
DRAINED_BY = "forescale"  # Meta["drained_by"] of every drain forescale starts (read back after a restart)


@dataclass(frozen=True)
class Machine:
    """One machine of a provider's group (an EC2 instance, an inventory host)."""

    id: str
    state: str = "running"
    launched_at: datetime | None = None


@dataclass(frozen=True)
class MachineGroup:
    """The provider's view of a pool's machines: capacity asked for, its bounds, the machines that exist."""

    name: str
    desired: int
    machines: tuple[Machine, ...] = ()
    min: int | None = None
    max: int | None = None

    def machine(self, machine_id: str | None) -> Machine | None:
        return next((m for m in self.machines if m.id == machine_id), None) if machine_id else None


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

    @property
    def live(self) -> bool:
        return self.client_status in LIVE_ALLOC


@dataclass(frozen=True)
class PoolNode:
    """A Nomad client node as the node step sees it (``GET /v1/node/:id`` + its allocations)."""

    id: str
    name: str
    status: str  # initializing | ready | down | disconnected
    eligible: bool
    draining: bool  # DrainStrategy is set
    machine_id: str | None  # the provider's id of the machine (e.g. unique.platform.aws.instance-id)
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

    @property
    def label(self) -> str:
        """'gpu-7 (i-0abc…)' for messages."""
        return f"{self.name} ({self.machine_id})" if self.machine_id else self.name

    @property
    def drained_by_us(self) -> bool:
        return self.last_drain_meta.get("drained_by") == DRAINED_BY

    def live_allocations(self, ignore_system: bool = False) -> list[NodeAllocation]:
        return [a for a in self.allocations if a.live and not (ignore_system and a.job_type == "system")]


@dataclass(frozen=True)
class TerminateResult:
    """One machine the provider was asked to terminate: done, or the error that kept it."""

    machine: str
    ok: bool
    error: str | None = None


ActionKind = Literal["scale_out", "reclaim", "drain", "terminate", "purge", "problem", "waiting", "note"]
ActionStatus = Literal["planned", "done", "failed", "info"]


@dataclass(frozen=True)
class NodeAction:
    """One thing the node step did (or would do in a dry run), with the sentence that explains it."""

    kind: ActionKind
    message: str
    status: ActionStatus = "planned"
    node: str | None = None  # node name
    node_id: str | None = None
    machine: str | None = None
    error: str | None = None
    key: str | None = None  # identity of a problem that is reported once (e.g. "drain_timeout:<node id>")
    seconds: float | None = None  # how long the drain took (terminate) or the machine has been booting
    capacity: int | None = None  # scale_out: the provider capacity asked for


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
            "purge": "purged",
        }
        for kind, verb in verbs.items():
            acts = [a for a in self.of_kind(kind) if a.status in ("done", "planned")]  # type: ignore[arg-type]
            if acts:
                prefix = "would be " if self.dry_run else ""
                parts.append(f"{prefix}{verb} " + ", ".join(a.node or a.machine or "?" for a in acts))
        problems = [a for a in self.actions if a.status == "failed"]
        if problems:
            parts.append(f"{len(problems)} problem(s)")
        return f"{self.group}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["boots"] = [
            {
                "machine": b.machine,
                "node": b.node,
                "asked_at": b.asked_at.isoformat(),
                "running_at": b.running_at.isoformat(),
                "seconds": round(b.seconds, 1),
            }
            for b in self.boots
        ]
        return out
