"""Nomad's nodes for the node step, through forescale's one NomadClient (no second HTTP client).

Reads (retried on 5xx/timeouts like every read): ``GET /v1/nodes`` (stubs carry NodePool, NodeClass,
Datacenter, Status, Drain, SchedulingEligibility), then for the stubs that pass the pool's filters
``GET /v1/node/:id`` (Attributes for the machine id, Meta, DrainStrategy, LastDrain, CreateIndex) and
``GET /v1/node/:id/allocations``. Writes are single tries (a lost answer is re-read next tick):
``POST /v1/node/:id/drain`` and ``POST /v1/node/:id/purge``.

``other_nodes`` reads the nodes outside the pool's filters (attributes only): the node step asks for them only when
some machine of the group has no node of the pool, to tell a machine of another node pool (never touched) from one
that never registered (reaped after a bound).

One tick, one node list: the tick reads through ``for_tick()`` (``NodeSnapshot``), which every pool shares — the
node list once, each node's allocations once, each node's full record only when its ModifyIndex moved since it was
last read (kept across ticks by the directory). Pools that share a Nomad node pool and are told apart by ``meta``
thus cost one read of each node per tick in all, not one per pool.

Shapes follow Nomad's source (notes: DrainStrategy is flat — ``{Deadline, IgnoreSystemJobs, ForceDeadline,
StartedAt}`` — and LastDrain is ``{StartedAt, UpdatedAt, Status, AccessorID, Meta}``). Unreadable means busy:
an allocation list that is not a list of objects each with a ``ClientStatus`` string marks the node
``allocations_error`` (Nomad's own handler answers ``[]`` for a node without allocations, never ``null``:
``command/agent/node_endpoint.go`` ``nodeAllocations``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
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
    """Implements ``NodeDirectory`` on a NomadClient; ``for_tick()`` gives the per-tick snapshot every pool of a tick
    reads through (``NodeSnapshot``: one node list, one read of each node's allocations). Called directly, each
    read is a snapshot of its own (as fresh as before)."""

    def __init__(self, client: NomadClient) -> None:
        self.client = client
        # Full node records (``GET /v1/node/:id``) by node ID, with the ModifyIndex they were read at: Nomad moves a
        # node's ModifyIndex on every change (status, eligibility, drain, meta, attributes), so a record whose index
        # is still the one in the node list is still the node; it is read again once the index moves.
        self._nodes: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def for_tick(self) -> NodeSnapshot:
        return NodeSnapshot(self)

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        return self.for_tick().pool_nodes(pool)

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        return self.for_tick().other_nodes(pool)

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

    # -- reads shared by the snapshots

    def stubs(self) -> list[dict[str, Any]]:
        """``GET /v1/nodes`` (the records of nodes no longer listed are forgotten)."""
        stubs = self.client.get_json("nodes", {"namespace": None}).body
        if not isinstance(stubs, list):
            raise NomadError(f"GET /v1/nodes answered {type(stubs).__name__}, not a list of nodes; nothing assumed")
        listed = [s for s in stubs if isinstance(s, dict) and s.get("ID")]
        ids = {str(s["ID"]) for s in listed}
        with self._lock:
            for gone in set(self._nodes) - ids:
                del self._nodes[gone]
        return listed

    def node(self, stub: Mapping[str, Any]) -> Any:
        """The full record of a listed node: kept while its ModifyIndex stays the one listed, else read again."""
        node_id = str(stub["ID"])
        index = stub.get("ModifyIndex")
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        with self._lock:
            cached = self._nodes.get(node_id)
        if cached is not None and index and cached[0] == index:
            return cached[1]
        full = self.client.get_json(f"node/{quote(node_id, safe='')}", {"namespace": None}).body
        if isinstance(full, dict) and index:
            read_at = full.get("ModifyIndex")
            with self._lock:
                self._nodes[node_id] = (read_at if isinstance(read_at, int) else index, full)
        return full

    def allocations(self, node_id: str) -> Any:
        """``GET /v1/node/:id/allocations`` as answered (its shape is judged by ``parse_allocs``)."""
        return self.client.get_json(f"node/{quote(node_id, safe='')}/allocations", {"namespace": "*"}).body


class NodeSnapshot:
    """One tick's view of Nomad's nodes (``NodeDirectory``), shared by all its pools and safe across their threads:
    the node list is read once (a failure to read it too: every pool reports it, none retries it), each node's
    full record comes from the directory (read again only when its ModifyIndex moved), each node's allocations are
    read once. A write (drain, cancel, purge) forgets the list and the allocations: what is read after it is
    fresh, as the node step's follow-up after its drains needs."""

    def __init__(self, directory: NomadNodeDirectory) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._stubs: list[dict[str, Any]] | NomadError | None = None
        self._read: dict[tuple[str, str], Any] = {}  # ("node" | "allocations", node ID) → the answer
        self._reading: dict[tuple[str, str], threading.Lock] = {}  # one read of each at a time (pools overlap)
        self._list_lock = threading.Lock()

    def for_tick(self) -> NodeSnapshot:
        return NodeSnapshot(self.directory)

    def _listed(self) -> list[dict[str, Any]]:
        with self._list_lock:
            if self._stubs is None:
                try:
                    self._stubs = self.directory.stubs()
                except NomadError as exc:
                    self._stubs = exc
            got = self._stubs
        if isinstance(got, NomadError):
            raise got
        return got

    def _once(self, key: tuple[str, str], read: Callable[[], Any]) -> Any:
        """``read()`` once per tick for ``key``, however many pools (threads) ask at once."""
        with self._lock:
            if key in self._read:
                return self._read[key]
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._lock:
                if key in self._read:
                    return self._read[key]
            value = read()
            with self._lock:
                self._read[key] = value
            return value

    def _node(self, stub: Mapping[str, Any]) -> Any:
        return self._once(("node", str(stub["ID"])), lambda: self.directory.node(stub))

    def _allocations(self, node_id: str) -> Any:
        return self._once(("allocations", node_id), lambda: self.directory.allocations(node_id))

    def _forget(self) -> None:
        with self._list_lock, self._lock:
            self._stubs = None
            self._read.clear()

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        out = []
        for stub in self._listed():
            if not stub_matches(stub, pool.nodes):
                continue
            full = self._node(stub)
            if not isinstance(full, dict) or not meta_matches(full, pool.nodes):
                continue
            out.append(parse_node(full, self._allocations(str(stub["ID"]))))
        return out

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        out = []
        for stub in self._listed():
            if stub_matches(stub, pool.nodes) and not pool.nodes.meta:
                continue  # a pool node (read by pool_nodes)
            full = self._node(stub)
            if not isinstance(full, dict) or not _outside(full, pool.nodes):
                continue
            out.append(parse_node(full, [], in_pool=False))
        return out

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        try:
            self.directory.drain(node_id, deadline_s, ignore_system_jobs, meta)
        finally:
            self._forget()

    def cancel_drain(self, node_id: str, meta: dict[str, str]) -> None:
        try:
            self.directory.cancel_drain(node_id, meta)
        finally:
            self._forget()

    def purge(self, node_id: str) -> None:
        try:
            self.directory.purge(node_id)
        finally:
            self._forget()


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
