"""The Nomad target: read a pool's task group (desired, placed, queued) and scale it, exactly once.

``status`` keeps Nomad's counts apart (DESIGN.md): *desired* is the group's ``Count`` (``GET /v1/job/:id``),
*placed* the group's allocations with DesiredStatus ``run`` that are ``running`` or ``pending`` (canaries
excluded; all job versions, since during an update old allocations still serve), *queued* the job summary's
``Queued`` (``GET /v1/job/:id/summary``): work Nomad cannot place. Nomad creates an allocation only on a
registered, eligible node, so GPU nodes that are still booting show up as queued, never as pending; failed
allocations waiting for their reschedule delay are *rescheduling* (neither placed nor queued). When some are
queued, the job's blocked evaluation says why (``GET /v1/job/:id/evaluations``). The job is read first
because ``/v1/job/:id/allocations`` answers ``200 []`` for a job that does not exist, which would otherwise
look like an empty pool.

A tick reads through ``for_tick()``: the namespace's allocation list (``GET /v1/allocations``, the same stubs as
a job's) and job list (``GET /v1/jobs``, whose stubs carry each job's summary) are read once and shared by all its
pools (``TickLists``); each pool still reads its own job, whose count and modify index a scale is checked against.
A job the lists do not show (newer than them), or lists that cannot be read, fall back to the job's own reads.

``scale`` never sends a second scale blindly. Each request carries the ``JobModifyIndex`` read just before
it (Nomad's check-and-set for ``Job.Scale``). When an attempt ends without a clear answer (timeout, 5xx,
dropped connection), the job is read again before anything is resent:

* the group has the desired count and the job's modify index moved → the lost request was applied: done;
* the modify index did not move → nothing was applied: resend (same CAS index), with backoff;
* the job moved to another count → someone else changed it: give up for this tick (re-decided next tick).

Even a resend racing a late apply is safe: the CAS index is stale by then, so Nomad answers
"Enforcing job modify index …" and the next re-read sees the applied count. Attempts are bounded by
``nomad.retries``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from autoscaler import __version__
from autoscaler.core.decision import Decision, PastAction, PoolState
from autoscaler.core.errors import JobIndexConflict, NomadAuthError, NomadError, NomadNotFound, NomadUnavailable
from autoscaler.core.settings.forescale import NomadSettings, PoolConfig
from autoscaler.nomad.client import NomadClient
from autoscaler.nomad.placement import explain_metric

log = logging.getLogger("forescale.nomad")

MAX_MESSAGE = 480
LIVE_CLIENT_STATUSES = frozenset({"running", "pending"})


class NomadTarget:
    """Reads a task group's desired/placed/queued counts and scales it via ``POST /v1/job/:id/scale``."""

    def __init__(
        self,
        settings: NomadSettings,
        *,
        client: NomadClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        lists: TickLists | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or NomadClient(settings, sleep=sleep)
        self.lists = lists

    def for_tick(self) -> NomadTarget:
        """This target for one tick: the namespace's allocation and job lists read once for all pools."""
        return NomadTarget(self.settings, client=self.client, lists=TickLists(self.client))

    # ------------------------------------------------------------------ reading

    def status(self, pool: PoolConfig) -> PoolState:
        job_id, group = pool.nomad.job, pool.nomad.group
        job = self.client.read_job(job_id)
        desired = int(self._group(job, pool).get("Count") or 0)
        shared = self.lists.of(job_id) if self.lists is not None else None
        if shared is None:
            all_allocs, summaries = self.client.job_allocations(job_id), self.client.job_summary(job_id)
        else:
            all_allocs, summaries = shared
        allocs = [a for a in all_allocs if a.get("TaskGroup") == group]
        summary = ((summaries.get("Summary") or {}).get(group)) or {}
        queued = int(summary.get("Queued") or 0)
        reason = self._queued_reason(job_id, group) if queued else None
        return PoolState(
            desired=desired,
            placed=count_live(allocs, group),
            queued=queued,
            running=sum(1 for a in allocs if _wanted(a) and a.get("ClientStatus") == "running"),
            rescheduling=sum(
                1 for a in allocs if _wanted(a) and a.get("ClientStatus") == "failed" and not a.get("NextAllocation")
            ),
            queued_reason=reason,
        )

    def _queued_reason(self, job_id: str, group: str) -> str | None:
        """Nomad's reason from the job's blocked evaluation (or the latest one that failed to place)."""
        try:
            evals = self.client.job_evaluations(job_id)
        except NomadError as exc:  # the counts are known; only the explanation is missing
            log.warning("cannot read the evaluations of %s: %s", job_id, exc)
            return None
        failing = [e for e in evals if ((e.get("FailedTGAllocs") or {}).get(group))]
        if not failing:
            return None
        latest = max(failing, key=lambda e: (e.get("Status") == "blocked", int(e.get("ModifyIndex") or 0)))
        return explain_metric(latest["FailedTGAllocs"][group])

    def _group(self, job: dict[str, Any], pool: PoolConfig) -> dict[str, Any]:
        for tg in job.get("TaskGroups") or []:
            if tg.get("Name") == pool.nomad.group:
                return tg
        names = ", ".join(str(tg.get("Name")) for tg in job.get("TaskGroups") or []) or "none"
        raise NomadNotFound(
            f"task group '{pool.nomad.group}' not found in job '{pool.nomad.job}' "
            f"(namespace '{self.settings.namespace}'; its groups: {names}); fix pools[{pool.name}].nomad.group"
        )

    def recent_changes(self, pool: PoolConfig, since: datetime, until: datetime) -> list[PastAction]:
        """Count changes of the group from Nomad's scaling events (``GET /v1/job/:id/scale``; the last 20 per group).

        Any successful change counts, forescale's or an operator's (``nomad job scale``): a cooldown follows the
        fleet, not the tool. ``pinned`` comes from the reason codes forescale puts in each request's Meta.
        """
        status = self.client.scale_status(pool.nomad.job)
        group = (status.get("TaskGroups") or {}).get(pool.nomad.group) or {}
        return changes_from_events(pool.name, group.get("Events") or [], since, until)

    # ------------------------------------------------------------------ scaling

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        """Set the group's count to ``decision.desired``; returns e.g. "eval 116f3ede"."""
        job = self.client.read_job(pool.nomad.job)
        before = _job_modify_index(job, pool)
        start_count = _int(self._group(job, pool).get("Count"), 0)
        if start_count == decision.desired:
            # Someone (or a lost answer of ours) already set it: a Job.Scale to the same count would still
            # write a new job version, an evaluation and a scaling event.
            log.info("%s/%s is already at %d: no scale sent", pool.nomad.job, pool.nomad.group, decision.desired)
            return f"already at {decision.desired}: no scale sent"
        body = scale_request(pool, decision)
        body["JobModifyIndex"] = before
        attempts = 0

        def attempt() -> str:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                applied = self._verify(pool, decision, before)
                if applied is not None:
                    return applied
            try:
                reply = self.client.scale_job(pool.nomad.job, body)
            except JobIndexConflict as exc:  # unclear too: maybe our own lost request already moved the index
                raise NomadUnavailable(str(exc), exc.status, exc.body) from exc
            data = reply.body if isinstance(reply.body, dict) else {}
            eval_id = str(data.get("EvalID") or "")
            return f"eval {eval_id[:8]}" if eval_id else f"scaled to {decision.desired} (no eval)"

        try:
            note = self.client.retrying(attempt)
        except NomadUnavailable as exc:
            raise NomadUnavailable(
                f"{pool.nomad.job}/{pool.nomad.group}: not scaled to {decision.desired} after "
                f"{attempts} attempt(s): {exc}",
                exc.status,
                exc.body,
            ) from exc
        log.info(
            "scaled %s/%s %d → %d (job count was %d): %s",
            pool.nomad.job,
            pool.nomad.group,
            decision.current,
            decision.desired,
            start_count,
            note,
        )
        return note

    def _verify(self, pool: PoolConfig, decision: Decision, before: int) -> str | None:
        """After an unclear attempt: was it applied? Returns a note if so; raises if someone else moved the job.

        Its reads are single tries: a failure counts as one more failed attempt of the bounded scale loop.
        """
        job = self.client.read_job(pool.nomad.job, retry=False)
        index = _job_modify_index(job, pool)
        count = _int(self._group(job, pool).get("Count"), -1)
        if index == before:
            return None  # nothing happened since our last CAS index: resending is safe
        if count == decision.desired:
            status = self.client.scale_status(pool.nomad.job, retry=False)
            events = ((status.get("TaskGroups") or {}).get(pool.nomad.group) or {}).get("Events") or []
            eval_id = next((str(e.get("EvalID") or "") for e in events if e.get("Count") == decision.desired), "")
            log.warning("scale of %s/%s answered unclearly but was applied (re-read)", pool.nomad.job, pool.nomad.group)
            return f"eval {eval_id[:8]} (confirmed by re-reading the job)" if eval_id else "confirmed by re-reading"
        raise NomadError(
            f"{pool.nomad.job}/{pool.nomad.group} changed while scaling (count now {count}, job modify index "
            f"{before} → {index}); not scaled to {decision.desired}: the next tick decides again from the new count"
        )


def _wanted(alloc: dict[str, Any]) -> bool:
    """DesiredStatus run and not a canary (Nomad's scale status skips canaries too)."""
    return alloc.get("DesiredStatus") == "run" and not (alloc.get("DeploymentStatus") or {}).get("Canary")


def _job_modify_index(job: dict[str, Any], pool: PoolConfig) -> int:
    """The job's JobModifyIndex (the scale's check-and-set index); without one, nothing is scaled."""
    value = job.get("JobModifyIndex")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NomadError(
            f"Nomad's answer for job '{pool.nomad.job}' has no usable JobModifyIndex ({value!r}), which the scale "
            "check-and-set needs: not scaled (is nomad.address the Nomad API, not a proxy?)"
        )
    return value


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def count_live(allocs: list[dict[str, Any]], group: str) -> int:
    """Placed: allocations of ``group`` Nomad wants running (DesiredStatus run) that are running or pending."""
    mine = (a for a in allocs if a.get("TaskGroup") == group and _wanted(a))
    return sum(1 for a in mine if a.get("ClientStatus") in LIVE_CLIENT_STATUSES)


def changes_from_events(pool: str, events: list[dict[str, Any]], since: datetime, until: datetime) -> list[PastAction]:
    """ScalingEvents (``{Time ns, Count, PreviousCount, Error, Meta}``) → the count changes in [since, until]."""
    out = []
    for event in events:
        count, previous, stamp = event.get("Count"), event.get("PreviousCount"), event.get("Time")
        if event.get("Error") or not isinstance(count, int) or not isinstance(previous, int):
            continue
        if count == previous or not isinstance(stamp, int):
            continue
        at = datetime.fromtimestamp(stamp / 1e9, UTC)
        if not since <= at <= until:
            continue
        meta = event.get("Meta") if isinstance(event.get("Meta"), dict) else {}
        pinned = "manual_pin" in str((meta or {}).get("reasons") or "").split(",")
        out.append(PastAction(at=at, pool=pool, previous=previous, count=count, pinned=pinned))
    return sorted(out, key=lambda a: a.at)


def scale_request(pool: PoolConfig, decision: Decision) -> dict[str, Any]:
    """The ``POST /v1/job/:id/scale`` body (``JobModifyIndex`` is added per attempt by ``NomadTarget.scale``)."""
    message = decision.explain()
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    meta: dict[str, Any] = {
        "forescale_version": __version__,
        "pool": pool.name,
        "previous_count": decision.current,
        "placed": decision.placed,
        "queued": decision.queued,
        "forecast_rps": _round(decision.forecast_rps),
        "observed_rps": _round(decision.observed_rps),
        "forecast_nodes": decision.forecast_nodes,
        "model": decision.model,
        "reasons": ",".join(decision.reason_codes()),
    }
    return {
        "Count": decision.desired,
        "Target": {"Group": pool.nomad.group},
        "Message": message,
        "Error": False,
        "Meta": meta,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class TickLists:
    """One tick's ``GET /v1/allocations`` and ``GET /v1/jobs`` of the configured namespace, read once — by the
    first pool that asks, the others waiting for it — and shared by every pool of the tick."""

    def __init__(self, client: NomadClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._read = False
        self._allocs: dict[str, list[dict[str, Any]]] = {}
        self._summaries: dict[str, dict[str, Any]] | None = None

    def of(self, job_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        """The job's allocation stubs and summary, or None when the lists do not show the job (or failed)."""
        with self._lock:
            if not self._read:
                self._read = True
                self._load()
        if self._summaries is None or job_id not in self._summaries:
            return None
        return self._allocs.get(job_id, []), self._summaries[job_id]

    def _load(self) -> None:
        try:
            allocs = self.client.get_json("allocations", {"task_states": "false"}).body
            jobs = self.client.get_json("jobs").body
        except NomadAuthError:  # a token without list-jobs: each pool reads its own job's, as without the lists
            log.info("the token may not list jobs or allocations: each pool reads its own (docs/nomad.md: list-jobs)")
            return
        except NomadError as exc:  # each pool reads its own job's, as without the lists
            log.warning("cannot read the namespace's allocation or job list (%s): each pool reads its own", exc)
            return
        if not isinstance(allocs, list) or not isinstance(jobs, list):
            log.warning("Nomad's allocation or job list is not a list: each pool reads its own")
            return
        for alloc in allocs:
            if isinstance(alloc, dict):
                self._allocs.setdefault(str(alloc.get("JobID") or ""), []).append(alloc)
        self._summaries = {
            str(j["ID"]): j["JobSummary"]
            for j in jobs
            if isinstance(j, dict) and j.get("ID") and isinstance(j.get("JobSummary"), dict)
        }
