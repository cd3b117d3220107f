"""In-memory doubles of the node ports (a provider, Nomad's nodes) and builders of node records, for unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import DRAINED_BY, Machine, MachineGroup, NodeAllocation, PoolNode, TerminateResult
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes import NodeReconciler
from tests.helpers import T0

NODES = {"provider": "aws_asg", "aws": {"asg_name": "gpu-ocr"}, "node_pool": "gpu"}


def alloc(status: str = "running", job: str = "ml-ocr", job_type: str = "service", since: Any = None) -> NodeAllocation:
    return NodeAllocation(f"a-{job}-{status}", job, "workers", status, job_type=job_type, running_since=since)


ATTR = "unique.platform.aws.instance-id"


def node(i: int, *allocs: NodeAllocation, **kw: Any) -> PoolNode:
    """Node gpu-i on machine i-i (``machine_id=`` another machine, None for a node without the attribute)."""
    base: dict[str, Any] = {
        "id": f"node-{i}",
        "name": f"gpu-{i}",
        "status": "ready",
        "eligible": True,
        "draining": False,
        "machine_id": f"i-{i}",
        "create_index": 100 + i,
        "node_pool": "gpu",
        "allocations": allocs,
    }
    base.update(kw)
    base["attributes"] = {ATTR: base["machine_id"]} if base["machine_id"] else {}
    return PoolNode(**base)


def ours(n: PoolNode, *, complete: bool, started: Any = T0) -> PoolNode:
    """The node as Nomad shows it while (or after) forescale drained it."""
    return replace(
        n,
        eligible=False,
        draining=not complete,
        last_drain_status="complete" if complete else "draining",
        last_drain_started=started,
        last_drain_meta={"drained_by": DRAINED_BY},
    )


def group(n: int, *, desired: int | None = None, lo: int = 0, hi: int = 10, **kw: Any) -> MachineGroup:
    machines = tuple(Machine(f"i-{i}", "InService", kw.get("launched_at")) for i in range(1, n + 1))
    return MachineGroup("ASG gpu-ocr", n if desired is None else desired, machines, lo, hi)


class Provider:
    kind = "aws_asg"
    where = "ASG gpu-ocr"

    def __init__(self, n: int, hi: int = 10) -> None:
        self.machines = [f"i-{i}" for i in range(1, n + 1)]
        self.desired = n
        self.hi = hi
        self.calls: list[tuple[str, Any]] = []
        self.fail: str | None = None
        self.refuse: set[str] = set()

    def describe(self, pool: PoolConfig) -> MachineGroup:
        if self.fail == "describe":
            raise NodeProviderError("ASG gpu-ocr: autoscaling:DescribeAutoScalingGroups was throttled", retryable=True)
        return MachineGroup(
            self.where, self.desired, tuple(Machine(m, launched_at=T0) for m in self.machines), 0, self.hi
        )

    def machine_id(self, pool: PoolConfig, attributes: Any) -> str | None:
        return attributes.get(ATTR) or None

    def node_key(self, pool: PoolConfig) -> str:
        return ATTR

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        self.calls.append(("cancel", desired))
        if len(self.machines) > desired:
            raise NodeProviderError("more machines exist", code="Appeared")
        self.desired = desired
        return f"desired {group.desired} → {desired}"

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        self.calls.append(("scale_out", desired))
        n = len(self.machines)
        self.machines += [f"i-{i}" for i in range(n + 1, n + 1 + desired - self.desired)]
        self.desired = desired
        return f"desired {group.desired} → {desired}"

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        self.calls.append(("terminate", list(machines)))
        out = []
        for m in machines:
            if m in self.refuse:
                out.append(TerminateResult(m, False, "AccessDenied"))
                continue
            self.machines.remove(m)
            if not replace:
                self.desired -= 1
            out.append(TerminateResult(m, True))
        return out


class Directory:
    """Nomad's nodes in memory: a drain of a node without live allocations completes at once (as in Nomad)."""

    def __init__(self, nodes: list[PoolNode], others: list[PoolNode] | None = None) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.others = list(others or [])
        self.calls: list[tuple[str, str]] = []

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        return list(self.nodes.values())

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        self.calls.append(("others", ""))
        return list(self.others)

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        self.calls.append(("drain", node_id))
        n = self.nodes[node_id]
        empty = not n.live_allocations()
        self.nodes[node_id] = replace(ours(n, complete=empty), last_drain_meta=meta, last_drain_started=T0)

    def cancel_drain(self, node_id: str, meta: dict[str, str]) -> None:
        self.calls.append(("cancel", node_id))
        self.nodes[node_id] = replace(self.nodes[node_id], eligible=True, draining=False, last_drain_status="canceled")

    def purge(self, node_id: str) -> None:
        self.calls.append(("purge", node_id))
        del self.nodes[node_id]


def reconciler(provider: Provider, directory: Directory) -> NodeReconciler:
    return NodeReconciler({"ocr": provider}, directory, ManualClock(T0))  # type: ignore[dict-item]
