"""Nomad's nodes for the node step, through forescale's one NomadClient (no second HTTP client).

Reads (retried on 5xx/timeouts like every read): ``GET /v1/nodes`` (stubs carry NodePool, NodeClass,
Datacenter, Status, Drain, SchedulingEligibility), then for the stubs that pass the pool's filters
``GET /v1/node/:id`` (Attributes for the machine id, Meta, DrainStrategy, LastDrain, CreateIndex) and
``GET /v1/node/:id/allocations``. Writes are single tries (a lost answer is re-read next tick):
``POST /v1/node/:id/drain`` and ``POST /v1/node/:id/purge``.

Shapes follow Nomad's source (notes: DrainStrategy is flat — ``{Deadline, IgnoreSystemJobs, ForceDeadline,
StartedAt}`` — and LastDrain is ``{StartedAt, UpdatedAt, Status, AccessorID, Meta}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from autoscaler.core.nodes import NodeAllocation, PoolNode
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import NodesSettings
from autoscaler.nomad.client import NomadClient

ZERO_TIME = "0001-01-01T00:00:00Z"


class NomadNodeDirectory:
    """Implements ``NodeDirectory`` on a NomadClient."""

    def __init__(self, client: NomadClient) -> None:
        self.client = client

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        stubs = self.client.get_json("nodes", {"namespace": None}).body or []
        out = []
        for stub in stubs:
            if not isinstance(stub, dict) or not stub_matches(stub, pool.nodes):
                continue
            node_id = quote(str(stub["ID"]), safe="")
            full = self.client.get_json(f"node/{node_id}", {"namespace": None}).body
            if not isinstance(full, dict) or not meta_matches(full, pool.nodes):
                continue
            allocs = self.client.get_json(f"node/{node_id}/allocations", {"namespace": "*"}).body or []
            out.append(parse_node(full, allocs if isinstance(allocs, list) else [], pool.nodes.machine_attribute()))
        return out

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        body = {
            "DrainSpec": {"Deadline": int(deadline_s * 1e9), "IgnoreSystemJobs": ignore_system_jobs},
            "MarkEligible": False,
            "Meta": meta,
        }
        self.client.post_json(f"node/{quote(node_id, safe='')}/drain", body, {"namespace": None})

    def cancel_drain(self, node_id: str, meta: dict[str, str]) -> None:
        body = {"DrainSpec": None, "MarkEligible": True, "Meta": meta}
        self.client.post_json(f"node/{quote(node_id, safe='')}/drain", body, {"namespace": None})

    def purge(self, node_id: str) -> None:
        self.client.post_json(f"node/{quote(node_id, safe='')}/purge", None, {"namespace": None})


def stub_matches(stub: Mapping[str, Any], settings: NodesSettings) -> bool:
    """The filters a ``/v1/nodes`` stub can answer (node pool, class, datacenter)."""
    if settings.node_pool is not None and stub.get("NodePool") != settings.node_pool:
        return False
    if settings.node_class is not None and (stub.get("NodeClass") or "") != settings.node_class:
        return False
    return settings.datacenter is None or stub.get("Datacenter") == settings.datacenter


def meta_matches(node: Mapping[str, Any], settings: NodesSettings) -> bool:
    meta = node.get("Meta") or {}
    return all(meta.get(k) == v for k, v in settings.meta.items()) and stub_matches(node, settings)


def parse_node(node: Mapping[str, Any], allocs: list[Any], attribute: str) -> PoolNode:
    """``GET /v1/node/:id`` + its allocations → PoolNode."""
    attrs = node.get("Attributes") or {}
    strategy = node.get("DrainStrategy") or None
    last = node.get("LastDrain") or None
    return PoolNode(
        id=str(node["ID"]),
        name=str(node.get("Name") or node["ID"]),
        status=str(node.get("Status") or "unknown"),
        eligible=node.get("SchedulingEligibility") == "eligible",
        draining=strategy is not None,
        machine_id=(str(attrs.get(attribute)) or None) if attrs.get(attribute) else None,
        create_index=int(node.get("CreateIndex") or 0),
        node_pool=str(node.get("NodePool") or "default"),
        node_class=str(node.get("NodeClass") or ""),
        datacenter=str(node.get("Datacenter") or ""),
        meta=dict(node.get("Meta") or {}),
        drain_deadline=_time(strategy.get("ForceDeadline")) if isinstance(strategy, dict) else None,
        last_drain_status=str(last.get("Status")) if isinstance(last, dict) and last.get("Status") else None,
        last_drain_started=_time(last.get("StartedAt")) if isinstance(last, dict) else None,
        last_drain_meta=dict(last.get("Meta") or {}) if isinstance(last, dict) else {},
        allocations=tuple(parse_alloc(a) for a in allocs if isinstance(a, dict)),
    )


def parse_alloc(alloc: Mapping[str, Any]) -> NodeAllocation:
    job = alloc.get("Job") or {}
    started = [_time(t.get("StartedAt")) for t in (alloc.get("TaskStates") or {}).values() if isinstance(t, dict)]
    known = [t for t in started if t is not None]
    running = alloc.get("ClientStatus") == "running"
    running_since = max(known) if known and running else None
    if running_since is None and running and alloc.get("ModifyTime"):
        running_since = datetime.fromtimestamp(int(alloc["ModifyTime"]) / 1e9, UTC)
    return NodeAllocation(
        id=str(alloc.get("ID") or ""),
        job=str(alloc.get("JobID") or job.get("ID") or ""),
        group=str(alloc.get("TaskGroup") or ""),
        client_status=str(alloc.get("ClientStatus") or ""),
        desired_status=str(alloc.get("DesiredStatus") or "run"),
        job_type=str(job.get("Type") or alloc.get("JobType") or "service"),
        running_since=running_since,
    )


def _time(value: Any) -> datetime | None:
    if not value or value == ZERO_TIME or not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Go prints nanoseconds; Python parses at most microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
