"""Nomad's nodes for the node step, through forescale's one NomadClient (no second HTTP client).

Reads (retried on 5xx/timeouts like every read): ``GET /v1/nodes`` (stubs carry NodePool, NodeClass,
Datacenter, Status, Drain, SchedulingEligibility), then for the stubs that pass the pool's filters
``GET /v1/node/:id`` (Attributes for the machine id, Meta, DrainStrategy, LastDrain, CreateIndex) and
``GET /v1/node/:id/allocations``. Writes are single tries (a lost answer is re-read next tick):
``POST /v1/node/:id/drain`` and ``POST /v1/node/:id/purge``.

``other_nodes`` reads the nodes outside the pool's filters (attributes only, cached by node ID and
ModifyIndex): the node step asks for them only when some machine of the group has no node of the pool, to
tell a machine of another node pool (never touched) from one that never registered (reaped after a bound).

Shapes follow Nomad's source (notes: DrainStrategy is flat — ``{Deadline, IgnoreSystemJobs, ForceDeadline,
StartedAt}`` — and LastDrain is ``{StartedAt, UpdatedAt, Status, AccessorID, Meta}``). Unreadable means busy:
an allocation list that is not a list of objects each with a ``ClientStatus`` string marks the node
``allocations_error`` (Nomad's own handler answers ``[]`` for a node without allocations, never ``null``:
``command/agent/node_endpoint.go`` ``nodeAllocations``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from autoscaler.core.errors import NomadError
from autoscaler.core.nodes import MigrateSpec, NodeAllocation, PoolNode
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import NodesSettings
from autoscaler.nomad.client import NomadClient

ZERO_TIME = "0001-01-01T00:00:00Z"
NS = 1e9
DEFAULT_KILL_TIMEOUT_S = 5.0  # structs.DefaultKillTimeout
DEFAULT_HEALTHY_DEADLINE_S = 300.0  # structs.DefaultMigrateStrategy.HealthyDeadline


class NomadNodeDirectory:
    """Implements ``NodeDirectory`` on a NomadClient."""

    def __init__(self, client: NomadClient) -> None:
        self.client = client
        self._others: dict[str, tuple[int, PoolNode]] = {}  # node ID → (ModifyIndex, node) of non-pool nodes

    def _stubs(self) -> list[dict[str, Any]]:
        stubs = self.client.get_json("nodes", {"namespace": None}).body
        if not isinstance(stubs, list):
            raise NomadError(f"GET /v1/nodes answered {type(stubs).__name__}, not a list of nodes; nothing assumed")
        return [s for s in stubs if isinstance(s, dict) and s.get("ID")]

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        out = []
        for stub in self._stubs():
            if not stub_matches(stub, pool.nodes):
                continue
            node_id = quote(str(stub["ID"]), safe="")
            full = self.client.get_json(f"node/{node_id}", {"namespace": None}).body
            if not isinstance(full, dict) or not meta_matches(full, pool.nodes):
                continue
            allocs = self.client.get_json(f"node/{node_id}/allocations", {"namespace": "*"}).body
            out.append(parse_node(full, allocs))
        return out

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        out = []
        seen = set()
        for stub in self._stubs():
            node_id = str(stub["ID"])
            seen.add(node_id)
            index = int(stub.get("ModifyIndex") or 0)
            cached = self._others.get(node_id)
            if cached is not None and cached[0] == index and index:
                node = cached[1]
            else:
                if stub_matches(stub, pool.nodes) and not pool.nodes.meta:
                    continue  # a pool node (read by pool_nodes)
                full = self.client.get_json(f"node/{quote(node_id, safe='')}", {"namespace": None}).body
                if not isinstance(full, dict):
                    continue
                node = parse_node(full, [], in_pool=not _outside(full, pool.nodes))
                self._others[node_id] = (index, node)
            if node.in_pool:
                continue
            out.append(node)
        for gone in set(self._others) - seen:
            del self._others[gone]
        return out

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        body = {
            "DrainSpec": {"Deadline": int(deadline_s * NS), "IgnoreSystemJobs": ignore_system_jobs},
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


def _outside(node: Mapping[str, Any], settings: NodesSettings) -> bool:
    return not meta_matches(node, settings)


def parse_node(node: Mapping[str, Any], allocs: Any, *, in_pool: bool = True) -> PoolNode:
    """``GET /v1/node/:id`` + the body of its allocations → PoolNode (the machine id is the provider's to map)."""
    attrs = node.get("Attributes") or {}
    strategy = node.get("DrainStrategy") or None
    last = node.get("LastDrain") or None
    parsed, error = parse_allocs(allocs)
    since = node.get("StatusUpdatedAt")
    return PoolNode(
        id=str(node["ID"]),
        name=str(node.get("Name") or node["ID"]),
        status=str(node.get("Status") or "unknown"),
        eligible=node.get("SchedulingEligibility") == "eligible",
        draining=strategy is not None,
        machine_id=None,
        create_index=int(node.get("CreateIndex") or 0),
        node_pool=str(node.get("NodePool") or "default"),
        node_class=str(node.get("NodeClass") or ""),
        datacenter=str(node.get("Datacenter") or ""),
        meta=dict(node.get("Meta") or {}),
        drain_deadline=_time(strategy.get("ForceDeadline")) if isinstance(strategy, dict) else None,
        last_drain_status=str(last.get("Status")) if isinstance(last, dict) and last.get("Status") else None,
        last_drain_started=_time(last.get("StartedAt")) if isinstance(last, dict) else None,
        last_drain_meta=dict(last.get("Meta") or {}) if isinstance(last, dict) else {},
        allocations=parsed,
        in_pool=in_pool,
        allocations_error=error,
        status_since=datetime.fromtimestamp(since, UTC) if isinstance(since, int) and since > 0 else None,
        attributes={str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else {},
    )


def parse_allocs(allocs: Any) -> tuple[tuple[NodeAllocation, ...], str | None]:
    """The allocations, or why the answer cannot be trusted (then the node is busy whatever it says)."""
    if not isinstance(allocs, list):
        return (), f"its allocation list is unreadable (Nomad answered {_shape(allocs)}, not a list)"
    out: list[NodeAllocation] = []
    for raw in allocs:
        if not isinstance(raw, dict) or not isinstance(raw.get("ClientStatus"), str) or not raw["ClientStatus"]:
            shown = _shape(raw) if not isinstance(raw, dict) else f"allocation {str(raw.get('ID') or '?')[:8]}"
            return tuple(out), f"its allocation list is unreadable ({shown} has no client status)"
        out.append(parse_alloc(raw))
    return tuple(out), None


def parse_alloc(alloc: Mapping[str, Any]) -> NodeAllocation:
    job = alloc.get("Job") or {}
    started = [_time(t.get("StartedAt")) for t in (alloc.get("TaskStates") or {}).values() if isinstance(t, dict)]
    known = [t for t in started if t is not None]
    running = alloc.get("ClientStatus") == "running"
    running_since = max(known) if known and running else None
    if running_since is None and running and alloc.get("ModifyTime"):
        running_since = datetime.fromtimestamp(int(alloc["ModifyTime"]) / 1e9, UTC)
    group = str(alloc.get("TaskGroup") or "")
    return NodeAllocation(
        id=str(alloc.get("ID") or ""),
        job=str(alloc.get("JobID") or job.get("ID") or ""),
        group=group,
        client_status=str(alloc.get("ClientStatus") or ""),
        desired_status=str(alloc.get("DesiredStatus") or "run"),
        job_type=str(job.get("Type") or alloc.get("JobType") or "service"),
        running_since=running_since,
        migrate=migrate_spec(job, group) if isinstance(job, dict) else None,
    )


def migrate_spec(job: Mapping[str, Any], group: str) -> MigrateSpec | None:
    """The task group's ``migrate`` block and stop time, from the job the allocation carries (None: not known)."""
    tg = next((g for g in job.get("TaskGroups") or [] if isinstance(g, dict) and g.get("Name") == group), None)
    if tg is None:
        return None
    raw = tg.get("Migrate")
    migrate: dict[str, Any] = raw if isinstance(raw, dict) else {}
    tasks = [t for t in tg.get("Tasks") or [] if isinstance(t, dict)]
    kill = max((_seconds(t.get("KillTimeout"), DEFAULT_KILL_TIMEOUT_S) for t in tasks), default=DEFAULT_KILL_TIMEOUT_S)
    delay = max([_seconds(tg.get("ShutdownDelay"), 0.0)] + [_seconds(t.get("ShutdownDelay"), 0.0) for t in tasks])
    parallel = migrate.get("MaxParallel")
    return MigrateSpec(
        max_parallel=parallel if isinstance(parallel, int) and parallel > 0 else 1,
        healthy_deadline_s=_seconds(migrate.get("HealthyDeadline"), DEFAULT_HEALTHY_DEADLINE_S),
        stop_s=delay + kill,
    )


def _seconds(ns: Any, default: float) -> float:
    return ns / NS if isinstance(ns, int | float) and not isinstance(ns, bool) and ns >= 0 else default


def _shape(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object" if value else "{}"
    return type(value).__name__


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
