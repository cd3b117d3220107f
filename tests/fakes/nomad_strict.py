"""The fake Nomad's strict mode: clients that take time, drains by ``migrate.max_parallel``, missed heartbeats.

By default the fake's clients do everything at once (an allocation stops in the HTTP request that stops it, a
drain completes inside the drain request when ``drain_stop_after`` is 0, a node goes ``down`` only when a test says
so). ``FakeNomad(strict=True)`` (fixture ``strict_nomad``, or ``fake_nomad`` parametrized with ``{"strict": True}``)
turns on what Nomad really does, each on ``fake.wall_clock`` (epoch seconds; tests give it their fake clock):

* **Stopping takes time** (``stop_delays``; nomad-facts §11.1). An allocation told to stop (count lowered, job
  stopped, drained) keeps ``ClientStatus: running`` with ``DesiredStatus: stop`` for the group's
  ``shutdown_delay`` + the task's ``shutdown_delay`` + ``kill_timeout`` (default 5 s, at most the client's
  ``max_kill_timeout_s``, 30 s) — the task ignores SIGTERM until the kill — then turns ``complete``.
* **Clients start and become healthy** (``alloc_lifecycle``; §11.2). A ``pending`` allocation on a ready node runs
  after ``alloc_start_s`` (0: on the next step); ``DeploymentStatus.Healthy`` is set once it has run for the group's
  ``migrate.min_healthy_time`` (default 10 s). Allocations that were ``running`` when the job was added are healthy.
* **Drains follow the drainer** (``strict_drain``; §11.3, nomad/drainer/watch_jobs.go ``handleTaskGroup``): per task
  group, ``healthy − (count − migrate.max_parallel)`` allocations (max_parallel default 1) are marked to migrate at a
  time; the next batch waits until the replacements are healthy. The drain completes when every non-system
  allocation on the node is client-terminal (``drainingNode.IsDone``), then system ones stop. The ForceDeadline
  behaviour is unchanged (everything left is told to migrate and the drain is complete at once).
  ``drain_stop_after`` is not used in strict mode.
* **Heartbeats** (``heartbeat_ttl``, ``heartbeat_grace``; §11.4, nomad/heartbeat.go). Nodes heartbeat until a test
  (or tests/fakes/cloud.py, when the instance is gone) calls ``stop_heartbeats(node_id)``. ``heartbeat_ttl +
  heartbeat_grace`` later (20 s + 10 s: Nomad's MinHeartbeatTTL 10 s plus its random stagger of up to one TTL, then
  ``heartbeat_grace`` 10 s) ``invalidateHeartbeat`` runs: the node goes ``disconnected`` if one of its running
  allocations has ``disconnect.lost_after`` (``disconnectState``), else ``down``. On a ``disconnected`` node those
  allocations become ``unknown`` (``DesiredStatus`` still ``run``) and are replaced unless ``disconnect.replace =
  false``; pending ones and ones without ``lost_after`` are ``lost``. An ``unknown`` allocation is ``lost`` once
  ``lost_after`` has passed; the node goes ``down`` at the first heartbeat check after that. On a ``down`` node every
  allocation is ``lost`` and replaced. ``resume_heartbeats(node_id)`` brings the client back (``ready``; its
  ``unknown`` allocations run again and their replacements stop — Nomad's default reconnect, simplified).
  ``max_client_disconnect`` is ignored, as Nomad 1.10+ ignores it (structs.go ``Validate``).

Without ``strict``: ``stop_heartbeats`` takes the node ``down`` at once (the old behaviour), nothing else changes.

Fault injection on ``GET /v1/node/:id/allocations`` (any mode): ``fail_node_allocations(kind, node_id=None,
times=None)`` with ``kind`` ``"null"`` (``200 null``), ``"object"`` (``200 {}``), ``"no_client_status"`` (every
allocation without ``ClientStatus``), ``"unknown"`` (every allocation ``ClientStatus: unknown``) or ``"500"``;
``times=None`` until ``clear_node_allocation_faults()``.

Example::

    fake = FakeNomad(strict=True).start()
    fake.wall_clock = lambda: clock.now().timestamp()
    fake.add_job("ml-ocr", groups={"workers": 4}, migrate_max_parallel=2, shutdown_delay=5, kill_timeout=30)
    fake.stop_heartbeats(node_id); clock.advance(timedelta(seconds=30)); fake.progress()   # node "down"
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.nomad import FakeNomad, Reply

NS = 1_000_000_000
DEFAULT_KILL_TIMEOUT_S = 5.0  # structs.DefaultKillTimeout
DEFAULT_MIGRATE: dict[str, Any] = {
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * NS,
    "HealthyDeadline": 300 * NS,
}
ALLOC_LIST_FAULTS = ("null", "object", "no_client_status", "unknown", "500")
TERMINAL = {"complete", "failed", "lost"}
LIVE = {"pending", "running"}
MAX_EVENTS = 10_000
STATUS_ALLOC_UNKNOWN = "alloc is unknown since its node is disconnected"  # scheduler/structs/const.go
STATUS_ALLOC_LOST = "alloc is lost since its node is down"


@dataclass
class _AllocListFault:
    kind: str
    node_id: str | None
    remaining: int | None


def _seconds(ns: Any) -> float:
    return float(ns or 0) / NS


class StrictClients:
    """Mixed into FakeNomad (see the module docstring). Methods take the fake's lock."""

    def _init_strict(self: FakeNomad, strict: bool) -> None:
        self.strict = strict
        self.strict_drain = strict
        self.stop_delays = strict
        self.alloc_lifecycle = strict
        self.heartbeat_ttl: float | None = 20.0 if strict else None
        self.heartbeat_grace = 10.0
        self.alloc_start_s = 0.0
        self.max_kill_timeout_s = 30.0  # the client's max_kill_timeout
        self._now_override: float | None = None
        self._silent: dict[str, float] = {}  # node ID → when its heartbeats stopped
        self._hb_next: dict[str, float] = {}  # node ID → next heartbeat check
        self._stopping: dict[str, float] = {}  # allocation ID → when its tasks are dead
        self._created_at: dict[str, float] = {}
        self._running_since: dict[str, float] = {}
        self._unknown_since: dict[str, float] = {}
        self._replace_unknown: set[str] = set()  # unknown allocations the reconciler replaces now
        self._alloc_list_faults: list[_AllocListFault] = []

    def _now(self: FakeNomad) -> float:
        return self._now_override if self._now_override is not None else self.wall_clock()

    # ------------------------------------------------------------------ public API

    def stop_heartbeats(self: FakeNomad, node_id: str) -> None:
        """The node's client stops heartbeating (process killed, machine gone); strict: down/disconnected later."""
        with self._cond:
            if node_id not in self.nodes:
                raise KeyError(node_id)
            if self.heartbeat_ttl is None:
                if self.nodes[node_id]["Status"] != "down":
                    self._missed(node_id, "down")
                return
            now = self._now()
            self._silent.setdefault(node_id, now)
            self._hb_next.setdefault(node_id, now + self.heartbeat_ttl + self.heartbeat_grace)

    def resume_heartbeats(self: FakeNomad, node_id: str) -> None:
        """The client is back: the node is ready again; its unknown allocations reconnect."""
        with self._cond:
            self._silent.pop(node_id, None)
            self._hb_next.pop(node_id, None)
            node = self.nodes[node_id]
            if node["Status"] in ("down", "disconnected"):
                index = self._bump()
                for alloc in self._allocs_on(node_id):
                    if alloc["ClientStatus"] != "unknown" or alloc["DesiredStatus"] != "run":
                        continue
                    alloc.update(ClientStatus="running", ClientDescription="Tasks are running", ModifyIndex=index)
                    self._unknown_since.pop(alloc["ID"], None)
                    self._replace_unknown.discard(alloc["ID"])
                    replacement = self._find_alloc(alloc.get("NextAllocation") or "")
                    if replacement is not None and replacement["DesiredStatus"] == "run":
                        self._stop_alloc(replacement, index)
                    alloc["NextAllocation"] = ""
                self._update_node(node_id, Status="ready", StatusDescription="", _previous_status=node["Status"])

    def heartbeats_stopped(self: FakeNomad, node_id: str) -> bool:
        with self._cond:
            return node_id in self._silent or (self.heartbeat_ttl is None and self.nodes[node_id]["Status"] == "down")

    def fail_node_allocations(
        self: FakeNomad, kind: str, *, node_id: str | None = None, times: int | None = None
    ) -> None:
        """Bad answers from ``GET /v1/node/:id/allocations`` (module docstring)."""
        if kind not in ALLOC_LIST_FAULTS:
            raise ValueError(f"kind must be one of {', '.join(ALLOC_LIST_FAULTS)}")
        with self._cond:
            self._alloc_list_faults.append(_AllocListFault(kind, node_id, times))

    def clear_node_allocation_faults(self: FakeNomad) -> None:
        with self._cond:
            self._alloc_list_faults.clear()

    def stopping_until(self: FakeNomad, alloc_id: str) -> float | None:
        """When a stopping allocation's tasks will be dead (wall_clock seconds), or None."""
        with self._cond:
            return self._stopping.get(alloc_id)

    # ------------------------------------------------------------------ hooks used by nomad.py / nomad_drain.py

    def _alloc_list_fault(self: FakeNomad, node_id: str, allocs: list[dict[str, Any]]) -> Reply | None:
        from tests.fakes.nomad import ApiError, Reply

        for fault in self._alloc_list_faults:
            if fault.node_id not in (None, node_id) or fault.remaining == 0:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            if fault.kind == "500":
                raise ApiError(500, "rpc error: No cluster leader")
            if fault.kind == "null":
                return Reply(200, None, self.index, blocking=True)
            if fault.kind == "object":
                return Reply(200, {}, self.index, blocking=True)
            out = copy.deepcopy(allocs)
            for alloc in out:
                if fault.kind == "no_client_status":
                    alloc.pop("ClientStatus", None)
                else:
                    alloc["ClientStatus"] = "unknown"
            return Reply(200, out, self.index, blocking=True)
        return None

    def _alloc_created(self: FakeNomad, alloc: dict[str, Any]) -> None:
        now = self._now()
        self._created_at[alloc["ID"]] = now
        if alloc["ClientStatus"] == "running":
            self._running_since[alloc["ID"]] = now

    def _alloc_running(self: FakeNomad, alloc: dict[str, Any], *, healthy: bool = False) -> None:
        self._running_since.setdefault(alloc["ID"], self._now())
        if healthy and self.alloc_lifecycle:
            self._set_healthy(alloc, self._now())

    def _stop_alloc(
        self: FakeNomad,
        alloc: dict[str, Any],
        index: int,
        *,
        description: str = "alloc not needed due to job update",
        migrate: bool = False,
        stuck: bool = False,
    ) -> bool:
        """Tell an allocation to stop; the client stops it at once or, strict, after its kill timeline.
        Returns True when it was live (its capacity is free for placement at once, as in Nomad's scheduler)."""
        from tests.fakes.nomad import _now_ns

        live = alloc["ClientStatus"] in LIVE
        if migrate:
            alloc["DesiredTransition"] = {**(alloc.get("DesiredTransition") or {}), "Migrate": True}
        alloc["DesiredStatus"] = "stop"
        alloc["DesiredDescription"] = description
        alloc["ModifyIndex"] = index
        alloc["ModifyTime"] = _now_ns()
        if not live or stuck:
            return live
        if self.stop_delays and alloc["ClientStatus"] == "running":
            # told again (a deadline, a second drain) while already stopping: the client's kill goes on as it was
            self._stopping.setdefault(alloc["ID"], self._now() + self._kill_timeline(alloc))
            return live
        alloc["ClientStatus"] = "complete"
        alloc["ClientDescription"] = "All tasks have completed"
        return live

    def _kill_timeline(self: FakeNomad, alloc: dict[str, Any]) -> float:
        """group shutdown_delay + max over tasks of (task shutdown_delay + min(kill_timeout, max_kill_timeout))."""
        tg = self._tg_of(alloc)
        longest = 0.0
        for task in tg.get("Tasks") or []:
            kill = _seconds(task.get("KillTimeout")) if task.get("KillTimeout") is not None else DEFAULT_KILL_TIMEOUT_S
            longest = max(longest, _seconds(task.get("ShutdownDelay")) + min(kill, self.max_kill_timeout_s))
        return _seconds(tg.get("ShutdownDelay")) + longest

    def _tg_of(self: FakeNomad, alloc: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get((alloc["Namespace"], alloc["JobID"])) or {}
        for tg in job.get("TaskGroups") or []:
            if tg.get("Name") == alloc["TaskGroup"]:
                return tg
        return {}

    def _job_type(self: FakeNomad, alloc: dict[str, Any]) -> str:
        return str((self.jobs.get((alloc["Namespace"], alloc["JobID"])) or {}).get("Type") or "service")

    def _find_alloc(self: FakeNomad, alloc_id: str) -> dict[str, Any] | None:
        for allocs in self.allocs.values():
            for alloc in allocs:
                if alloc["ID"] == alloc_id:
                    return alloc
        return None

    # ------------------------------------------------------------------ the clock

    def progress(self: FakeNomad) -> int:
        """Advance clients, heartbeats and drains to ``wall_clock`` (every request does this first), each event at
        the time it is due. Returns the number of drains completed."""
        with self._cond:
            now = self.wall_clock()
            done = 0
            try:
                for _ in range(MAX_EVENTS):
                    done += self._drain_step()
                    event = self._next_event(now)
                    if event is None:
                        break
                    when, action = event
                    self._now_override = when
                    action(when)
                self._now_override = None
                done += self._drain_step()
            finally:
                self._now_override = None
            return done

    def _next_event(self: FakeNomad, now: float) -> tuple[float, Callable[[float], None]] | None:
        due: list[tuple[float, Callable[[float], None]]] = []
        for alloc_id, at in self._stopping.items():
            if alloc_id not in self.stuck_allocs:  # a task that ignores its kill never stops, whenever marked
                due.append((at, partial(self._stopped, alloc_id)))
        for node_id, at in self._hb_next.items():
            due.append((at, partial(self._heartbeat_check, node_id)))
        for alloc_id, since in self._unknown_since.items():
            alloc = self._find_alloc(alloc_id)
            if alloc is not None:
                lost_after = _seconds((self._tg_of(alloc).get("Disconnect") or {}).get("LostAfter"))
                due.append((since + lost_after, partial(self._expire_unknown, alloc_id)))
        if self.alloc_lifecycle:
            for allocs in self.allocs.values():
                for alloc in allocs:
                    if alloc["DesiredStatus"] != "run":
                        continue
                    aid = alloc["ID"]
                    if alloc["ClientStatus"] == "pending" and self._node_ready(alloc.get("NodeID", "")):
                        start = self._created_at.get(aid, now) + self.alloc_start_s
                        due.append((start, partial(self._start, alloc)))
                    elif alloc["ClientStatus"] == "running" and not _has_health(alloc):
                        since = self._running_since.setdefault(aid, now)
                        due.append((since + self._min_healthy(alloc), partial(self._set_healthy, alloc)))
        for node_id, node in self.nodes.items():
            strategy = node.get("DrainStrategy")
            if strategy is not None and strategy["Deadline"] > 0:
                from tests.fakes.nomad_drain import _parse

                due.append((_parse(strategy["ForceDeadline"]), partial(self._deadline, node_id)))
        due = [d for d in due if d[0] <= now]
        if not due:
            return None
        return min(due, key=lambda d: d[0])

    def _node_ready(self: FakeNomad, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        return node is not None and node["Status"] == "ready"

    def _min_healthy(self: FakeNomad, alloc: dict[str, Any]) -> float:
        migrate = self._tg_of(alloc).get("Migrate") or DEFAULT_MIGRATE
        return _seconds(migrate.get("MinHealthyTime"))

    def _deadline(self: FakeNomad, node_id: str, when: float) -> None:
        self._progress_one(node_id)  # the drainer sees the deadline passed

    def _stopped(self: FakeNomad, alloc_id: str, when: float) -> None:
        self._stopping.pop(alloc_id, None)
        alloc = self._find_alloc(alloc_id)
        if alloc is None or alloc["ClientStatus"] in TERMINAL or alloc["ClientStatus"] == "unknown":
            return
        alloc["ClientStatus"] = "complete"
        alloc["ClientDescription"] = "All tasks have completed"
        alloc["ModifyIndex"] = self._bump()

    def _start(self: FakeNomad, alloc: dict[str, Any], when: float) -> None:
        alloc["ClientStatus"] = "running"
        alloc["ClientDescription"] = "Tasks are running"
        for state in (alloc.get("TaskStates") or {}).values():
            state["State"] = "running"
        alloc["ModifyIndex"] = self._bump()
        self._running_since[alloc["ID"]] = when

    def _set_healthy(self: FakeNomad, alloc: dict[str, Any], when: float) -> None:
        from tests.fakes.nomad_drain import _rfc3339

        index = self._bump()
        alloc["DeploymentStatus"] = {
            "Healthy": True,
            "Timestamp": _rfc3339(when),
            "Canary": False,
            "ModifyIndex": index,
        }
        alloc["ModifyIndex"] = index

    # ------------------------------------------------------------------ heartbeats (nomad/heartbeat.go)

    def _heartbeat_check(self: FakeNomad, node_id: str, when: float) -> None:
        """``invalidateHeartbeat``: disconnected while an allocation may reconnect, else down."""
        node = self.nodes.get(node_id)
        if node is None or node["Status"] in ("down", "initializing"):
            self._hb_next.pop(node_id, None)
            return
        can_disconnect, pending = False, False
        for alloc in self._allocs_on(node_id):
            lost_after = _seconds((self._tg_of(alloc).get("Disconnect") or {}).get("LostAfter"))
            if lost_after <= 0:
                continue
            can_disconnect = True
            since = self._unknown_since.get(alloc["ID"])
            expired = alloc["ClientStatus"] == "unknown" and since is not None and since + lost_after <= when
            if alloc["DesiredStatus"] == "run" and alloc["ClientStatus"] not in TERMINAL and not expired:
                pending = True
        if can_disconnect and pending:
            self._hb_next[node_id] = when + (self.heartbeat_ttl or 0.0) + self.heartbeat_grace
            if node["Status"] != "disconnected":
                self._missed(node_id, "disconnected")
            return
        self._hb_next.pop(node_id, None)
        self._missed(node_id, "down")

    def _missed(self: FakeNomad, node_id: str, status: str) -> None:
        from tests.fakes.nomad_drain import _rfc3339

        node = self.nodes[node_id]
        events = list(node.get("Events") or [])
        events.append(
            {
                "CreateIndex": self.index + 1,
                "Details": None,
                "Message": "Node heartbeat missed",
                "Subsystem": "Cluster",
                "Timestamp": _rfc3339(self._now()),
            }
        )
        self._update_node(
            node_id, Status=status, StatusDescription="", Events=events[-10:], _previous_status=node["Status"]
        )

    def _disconnect_allocs(self: FakeNomad, node: dict[str, Any]) -> None:
        """The reconciler on a disconnected node (scheduler/reconciler/filters.go classification rules)."""
        from tests.fakes.nomad import _now_ns

        index = self._bump()
        touched: set[tuple[str, str]] = set()
        for key, allocs in self.allocs.items():
            for alloc in allocs:
                if alloc.get("NodeID") != node["ID"] or alloc["DesiredStatus"] != "run":
                    continue
                if alloc["ClientStatus"] in TERMINAL or alloc["ClientStatus"] == "unknown":
                    continue
                disconnect = self._tg_of(alloc).get("Disconnect") or {}
                if alloc["ClientStatus"] == "pending" or _seconds(disconnect.get("LostAfter")) <= 0:
                    alloc.update(
                        DesiredStatus="stop",
                        ClientStatus="lost",
                        ModifyIndex=index,
                        ModifyTime=_now_ns(),
                        DesiredDescription=STATUS_ALLOC_LOST,
                        ClientDescription=STATUS_ALLOC_LOST,
                    )
                    self._stopping.pop(alloc["ID"], None)
                else:
                    alloc.update(ClientStatus="unknown", ClientDescription=STATUS_ALLOC_UNKNOWN, ModifyIndex=index)
                    self._unknown_since[alloc["ID"]] = self._now()
                    if disconnect.get("Replace") is not False:
                        self._replace_unknown.add(alloc["ID"])
                touched.add(key)
        for key in sorted(touched):
            job = self.jobs.get(key)
            if job is not None:
                self._submit(self._new_eval(job, "node-update", NodeID=node["ID"]))

    def _expire_unknown(self: FakeNomad, alloc_id: str, when: float) -> None:
        """An ``unknown`` allocation past ``disconnect.lost_after`` is lost (reconcile_cluster.go: expiring → lost)."""
        from tests.fakes.nomad import _now_ns

        self._unknown_since.pop(alloc_id, None)
        self._replace_unknown.discard(alloc_id)
        alloc = self._find_alloc(alloc_id)
        if alloc is None or alloc["ClientStatus"] != "unknown":
            return
        alloc.update(
            DesiredStatus="stop",
            ClientStatus="lost",
            ModifyIndex=self._bump(),
            ModifyTime=_now_ns(),
            DesiredDescription=STATUS_ALLOC_LOST,
            ClientDescription=STATUS_ALLOC_LOST,
        )
        job = self.jobs.get((alloc["Namespace"], alloc["JobID"]))
        if job is not None:
            self._submit(self._new_eval(job, "alloc-failure"))

    # ------------------------------------------------------------------ the drainer (nomad/drainer)

    def _drain_step(self: FakeNomad) -> int:
        """One pass of the drainer over every draining node: legacy or by migrate.max_parallel."""
        done = 0
        if self.strict_drain:
            self._migrate_batches()
        for node_id in sorted(self.nodes):
            node = self.nodes.get(node_id)
            if node is None or node.get("DrainStrategy") is None:
                continue
            done += self._strict_complete(node_id) if self.strict_drain else self._progress_one(node_id)
        return done

    def _migrate_batches(self: FakeNomad) -> None:
        """``handleTaskGroup`` for every group with allocations on a draining node."""
        draining = {nid for nid, n in self.nodes.items() if n.get("DrainStrategy") is not None}
        index = None
        for key, allocs in sorted(self.allocs.items()):
            job = self.jobs.get(key) or {}
            if job.get("Type", "service") != "service":
                continue  # batch: only at the deadline; system: after everything else (RemainingAllocs)
            for tg in job.get("TaskGroups") or []:
                mine = [a for a in allocs if a["TaskGroup"] == tg["Name"]]
                if not any(a.get("NodeID") in draining for a in mine):
                    continue
                healthy = 0
                drainable = []
                for alloc in mine:
                    terminal = alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] in TERMINAL
                    migrating = bool((alloc.get("DesiredTransition") or {}).get("Migrate"))
                    if not terminal and _has_health(alloc) and not migrating:
                        healthy += 1
                    if alloc.get("NodeID") in draining and alloc["ClientStatus"] not in TERMINAL and not migrating:
                        drainable.append(alloc)
                max_parallel = int((tg.get("Migrate") or DEFAULT_MIGRATE).get("MaxParallel") or 1)
                count = int(tg.get("Count") or 0)
                take = min(len(drainable), healthy - (count - max_parallel))
                if take <= 0:
                    continue
                if index is None:
                    index = self._bump()
                from tests.fakes.nomad import _name_index

                batch = sorted(drainable, key=lambda a: _name_index(a["Name"]))[:take]
                for alloc in batch:
                    self._stop_alloc(
                        alloc,
                        index,
                        description="alloc is being migrated",
                        migrate=True,
                        stuck=alloc["ID"] in self.stuck_allocs,
                    )
                self._submit(self._new_eval(job, "node-drain", NodeID=batch[0].get("NodeID", "")))

    def _strict_complete(self: FakeNomad, node_id: str) -> int:
        """``drainingNode.IsDone`` then ``RemainingAllocs``/``NodesDrainComplete``."""
        node = self.nodes[node_id]
        strategy = node["DrainStrategy"]
        from tests.fakes.nomad_drain import ZERO_TIME, _parse

        now = self._now()
        force = strategy["ForceDeadline"]
        if strategy["Deadline"] < 0 or (force != ZERO_TIME and now >= _parse(force)):
            return self._progress_one(node_id)  # the deadline: as before
        on_node = self._allocs_on(node_id)
        for alloc in on_node:
            if self._job_type(alloc) != "system" and alloc["ClientStatus"] not in TERMINAL:
                return 0
        index = self._bump()
        if not strategy["IgnoreSystemJobs"]:
            for alloc in on_node:
                if self._job_type(alloc) == "system" and alloc["DesiredStatus"] == "run":
                    self._stop_alloc(
                        alloc,
                        index,
                        description="alloc is being migrated",
                        migrate=True,
                        stuck=alloc["ID"] in self.stuck_allocs,
                    )
        self._update_drain(node_id, None, False, None, completed=True)
        return 1


def _has_health(alloc: dict[str, Any]) -> bool:
    """``AllocDeploymentStatus.HasHealth``: Healthy is set (true or false)."""
    status = alloc.get("DeploymentStatus")
    return isinstance(status, dict) and status.get("Healthy") is not None
