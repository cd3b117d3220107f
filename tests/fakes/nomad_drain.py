"""The fake Nomad's node writes: drain (and its drainer), eligibility, purge — held to Nomad's source.

Sources (nomad-facts §6; hashicorp/nomad ``command/agent/node_endpoint.go``, ``nomad/node_endpoint.go``,
``nomad/state/state_store.go`` ``updateNodeDrainImpl``/``updateNodeEligibilityImpl``, ``nomad/drainer/``):

* ``POST|PUT /v1/node/:id/drain`` body ``{"DrainSpec": {"Deadline": ns, "IgnoreSystemJobs": bool} | null,
  "MarkEligible": bool, "Meta": {…}}`` (the path's node wins over a body ``NodeID``). A drain makes the node
  ineligible; ``DrainStrategy`` is flat ``{Deadline, IgnoreSystemJobs, ForceDeadline, StartedAt}``; Deadline > 0
  sets ForceDeadline = now + Deadline, 0 = no deadline, < 0 = forced (already past). ``DrainSpec: null`` cancels
  (eligible only with ``MarkEligible``). ``LastDrain`` ``{StartedAt, UpdatedAt, Status, AccessorID, Meta}``
  (1-second precision) is created when a drain starts, updated while one runs, and **untouched when neither the
  old nor the new state drains** (``drainNoop``): cancelling a completed drain only changes eligibility.
  Reply ``{NodeModifyIndex, EvalIDs, EvalCreateIndex, Index}``; unknown node → **500 ``node not found``**.
* The drainer (default mode; strict mode drains by ``migrate.max_parallel`` instead, tests/fakes/nomad_strict.py):
  allocations of service jobs on a draining node migrate (``DesiredTransition.Migrate``, stopped,
  a replacement placed elsewhere or queued) once ``drain_stop_after`` seconds of ``wall_clock`` passed since the
  drain started (0: at once; the fake's clients stop instantly otherwise); allocation IDs in ``stuck_allocs``
  never stop (a task that ignores its kill). When every non-system allocation is client-terminal the remaining
  system ones stop (unless IgnoreSystemJobs) and the drain completes: ``DrainStrategy`` null, ``LastDrain.Status``
  ``complete``, the node **stays ineligible**. At the ForceDeadline every remaining allocation is told to migrate
  and the drain is marked complete at once, even while some are still running. An empty node completes at once.
* ``POST|PUT /v1/node/:id/eligibility`` ``{"Eligibility": "eligible"|"ineligible"}``: every error is a 500 —
  ``invalid scheduling eligibility "<x>"``, ``node not found``, ``can not set node's scheduling eligibility to
  eligible while it is draining``; the same value again → 200 with all-zero indexes and ``X-Nomad-Index: 0``.
* ``POST|PUT /v1/node/:id/purge``: the node is deregistered (its allocations are lost and replaced); reply
  ``structs.NodeUpdateResponse``; unknown → 500 ``node not found``.

ACL: ``node:write`` for all three (``FakeNomad._authorize_node``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.nomad import FakeNomad, Reply, _Ctx

ZERO_TIME = "0001-01-01T00:00:00Z"
TERMINAL_CLIENT = {"complete", "failed", "lost"}
LIVE_CLIENT = {"pending", "running"}


def _rfc3339(seconds: float, *, whole: bool = False) -> str:
    when = datetime.fromtimestamp(int(seconds) if whole else seconds, UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if not whole and when.microsecond:
        text += f".{when.microsecond:06d}000"
    return text + "Z"


class NodeDrainer:
    """Mixed into FakeNomad: drain state per node and the drainer's progress on ``wall_clock``."""

    nodes: dict[str, dict[str, Any]]
    wall_clock: Callable[[], float]
    drain_stop_after: float
    stuck_allocs: set[str]

    def _init_drainer(self: FakeNomad) -> None:
        self.wall_clock = time.time  # epoch seconds of drain timestamps and deadlines (tests replace it)
        self.drain_stop_after = 0.0  # seconds a migrating allocation takes to stop (0: at once)
        self.stuck_allocs = set()  # allocation IDs that never stop (a task ignoring its kill signal)

    # -- the state store --------------------------------------------------------------------------------
    def _update_drain(
        self: FakeNomad,
        node_id: str,
        spec: dict[str, Any] | None,
        mark_eligible: bool,
        meta: dict[str, str] | None,
        *,
        completed: bool = False,
        accessor: str = "",
    ) -> dict[str, Any]:
        """``updateNodeDrainImpl``: the new DrainStrategy, eligibility and LastDrain of one node."""
        node = self.nodes[node_id]
        now = self._now()
        before = node.get("DrainStrategy")
        strategy = None
        if spec is not None:
            deadline = int(spec.get("Deadline") or 0)
            if deadline > 0:
                force = _rfc3339(now + deadline / 1e9)
            elif deadline < 0:
                force = _rfc3339(now - 1)  # DeadlineTime: a negative deadline is already past
            else:
                force = ZERO_TIME
            started = before["StartedAt"] if before else _rfc3339(now)
            strategy = {
                "Deadline": deadline,
                "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs")),
                "ForceDeadline": force,
                "StartedAt": started,
            }
        changes: dict[str, Any] = {"DrainStrategy": strategy}
        if strategy is not None:
            changes["SchedulingEligibility"] = "ineligible"
        elif mark_eligible:
            changes["SchedulingEligibility"] = "eligible"
        if not (before is None and strategy is None):  # drainNoop leaves LastDrain alone
            last = dict(node.get("LastDrain") or {}) if before is not None else {}
            if before is None:
                last = {"StartedAt": _rfc3339(now, whole=True), "Meta": dict(meta or {}), "AccessorID": ""}
            last["UpdatedAt"] = _rfc3339(now, whole=True)
            if meta:
                last["Meta"] = dict(meta)
            if accessor:
                last["AccessorID"] = accessor
            last["Status"] = "draining" if strategy is not None else ("complete" if completed else "canceled")
            changes["LastDrain"] = last
        return self._update_node(node_id, **changes)

    # -- the drainer ---------------------------------------------------------------------------------------
    def progress_drains(self: FakeNomad) -> int:
        """Advance every drain (and, strict, the clients and heartbeats) to ``wall_clock``: ``progress()``, which
        runs before each request too. Returns drains completed."""
        return self.progress()

    def _progress_one(self: FakeNomad, node_id: str) -> int:
        node = self.nodes[node_id]
        strategy = node["DrainStrategy"]
        now = self._now()
        started = _parse(strategy["StartedAt"])
        force = strategy["ForceDeadline"]
        past_deadline = strategy["Deadline"] < 0 or (force != ZERO_TIME and now >= _parse(force))
        ignore_system = bool(strategy["IgnoreSystemJobs"])
        touched: set[tuple[str, str]] = set()
        index = self._bump()
        for key, allocs in self.allocs.items():
            job = self.jobs.get(key) or {}
            for alloc in allocs:
                if alloc.get("NodeID") != node_id or alloc["DesiredStatus"] != "run":
                    continue
                if alloc["ClientStatus"] in TERMINAL_CLIENT or job.get("Type") == "system":
                    continue
                if past_deadline or now - started >= self.drain_stop_after:
                    self._migrate(alloc, index, stop=alloc["ID"] not in self.stuck_allocs)
                    touched.add(key)
        live = [a for a in self._allocs_on(node_id) if a["ClientStatus"] in LIVE_CLIENT]
        non_system = [a for a in live if (self.jobs.get((a["Namespace"], a["JobID"])) or {}).get("Type") != "system"]
        complete = past_deadline or not non_system
        if complete:
            for alloc in live:
                is_system = (self.jobs.get((alloc["Namespace"], alloc["JobID"])) or {}).get("Type") == "system"
                if is_system and not ignore_system:
                    self._migrate(alloc, index, stop=alloc["ID"] not in self.stuck_allocs)
                    touched.add((alloc["Namespace"], alloc["JobID"]))
                elif past_deadline and not is_system:
                    self._migrate(alloc, index, stop=alloc["ID"] not in self.stuck_allocs)
            self._update_drain(node_id, None, False, None, completed=True)  # NodesDrainComplete
        for key in sorted(touched):
            job = self.jobs.get(key)
            if job is not None:
                self._submit(self._new_eval(job, "node-drain", NodeID=node_id))
        return 1 if complete else 0

    def _allocs_on(self: FakeNomad, node_id: str) -> list[dict[str, Any]]:
        return [a for allocs in self.allocs.values() for a in allocs if a.get("NodeID") == node_id]

    def _migrate(self: FakeNomad, alloc: dict[str, Any], index: int, *, stop: bool) -> None:
        """The drainer marks an allocation to migrate; the scheduler stops it (the client stops it unless stuck;
        strict mode: after its kill timeline, tests/fakes/nomad_strict.py)."""
        self._stop_alloc(alloc, index, description="alloc is being migrated", migrate=True, stuck=not stop)

    def _node_evals(self: FakeNomad, node_id: str) -> list[str]:
        """``createNodeEvals``: a node-update evaluation per job with allocations on the node."""
        ids = []
        keys = {(a["Namespace"], a["JobID"]) for a in self._allocs_on(node_id)}
        for key in sorted(keys):
            job = self.jobs.get(key)
            if job is None:
                continue
            evaluation = self._new_eval(job, "node-update", NodeID=node_id)
            if evaluation is not None:
                ids.append(evaluation["ID"])
                self._submit(evaluation)
        return ids


def _parse(text: str) -> float:
    """Go's RFC 3339 (nanoseconds, Z) → epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


# --------------------------------------------------------------------------------------------- endpoints


def _node_or_500(fake: FakeNomad, node_id: str) -> dict[str, Any]:
    from tests.fakes.nomad import ApiError

    node = fake.nodes.get(node_id)
    if node is None:
        raise ApiError(500, "node not found")
    return node


def drain_node(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import ApiError, Reply

    if ctx.body is None:
        raise ApiError(400, "Request body is empty")
    body = ctx.json_body()
    spec = body.get("DrainSpec")
    if spec is not None and not isinstance(spec, dict):
        raise ApiError(400, "Request decode failed: DrainSpec must be an object")
    meta = body.get("Meta") or None
    with fake._cond:
        fake._authorize_node(ctx, "write")
        node_id = ctx.params["node"]
        node = _node_or_500(fake, node_id)
        was_ineligible = node["SchedulingEligibility"] == "ineligible"
        mark = bool(body.get("MarkEligible"))
        updated = fake._update_drain(node_id, spec, mark, meta, accessor="token:fake")
        eval_ids: list[str] | None = None
        eval_index = 0
        if spec is None and mark and was_ineligible:
            eval_ids = fake._node_evals(node_id) or None
            eval_index = fake.index if eval_ids else 0
        if spec is not None:
            fake._drain_step()  # an empty node completes at once (strict: the first batch is marked to migrate)
        index = int(updated["ModifyIndex"])
        return Reply(200, {"NodeModifyIndex": index, "EvalIDs": eval_ids, "EvalCreateIndex": eval_index,
                           "Index": index}, index)  # fmt: skip


def node_eligibility(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import ApiError, Reply

    if ctx.body is None:
        raise ApiError(400, "Request body is empty")
    body = ctx.json_body()
    wanted = body.get("Eligibility")
    with fake._cond:
        fake._authorize_node(ctx, "write")
        node_id = str(body.get("NodeID") or ctx.params["node"])  # a body NodeID overrides the path
        if not node_id:
            raise ApiError(500, "missing node ID for setting scheduling eligibility")
        if wanted not in ("eligible", "ineligible"):
            raise ApiError(500, f'invalid scheduling eligibility "{wanted}"')
        node = _node_or_500(fake, node_id)
        if node.get("DrainStrategy") is not None and wanted == "eligible":
            raise ApiError(500, "can not set node's scheduling eligibility to eligible while it is draining")
        if node["SchedulingEligibility"] == wanted:
            zero = {"NodeModifyIndex": 0, "EvalIDs": None, "EvalCreateIndex": 0, "Index": 0}
            return Reply(200, zero, 0)
        updated = fake._update_node(node_id, SchedulingEligibility=wanted)
        eval_ids = fake._node_evals(node_id) if wanted == "eligible" else []
        index = int(updated["ModifyIndex"])
        return Reply(200, {"NodeModifyIndex": index, "EvalIDs": eval_ids or None,
                           "EvalCreateIndex": fake.index if eval_ids else 0, "Index": index}, index)  # fmt: skip


def purge_node(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import Reply

    with fake._cond:
        fake._authorize_node(ctx, "write")
        node_id = ctx.params["node"]
        _node_or_500(fake, node_id)
        before = set(fake.evals)
        fake.remove_node(node_id)
        eval_ids = sorted(set(fake.evals) - before)
        index = fake.index
        body = {
            "HeartbeatTTL": 0,
            "EvalIDs": eval_ids,
            "EvalCreateIndex": index if eval_ids else 0,
            "NodeModifyIndex": index,
            "Features": 0,
            "LeaderRPCAddr": "",
            "NumNodes": 0,
            "Servers": None,
            "SchedulingEligibility": "",
            "SignedIdentity": None,
            "Index": index,
            "LastContact": 0,
            "KnownLeader": False,
            "NextToken": "",
        }
        return Reply(200, body, index)


DRAIN_ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], Callable[[FakeNomad, _Ctx], Reply]]] = [
    (re.compile(r"/v1/node/(?P<node>[^/]+)/drain"), ("POST", "PUT"), drain_node),
    (re.compile(r"/v1/node/(?P<node>[^/]+)/eligibility"), ("POST", "PUT"), node_eligibility),
    (re.compile(r"/v1/node/(?P<node>[^/]+)/purge"), ("POST", "PUT"), purge_node),
]
