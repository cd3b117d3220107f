"""A fake Nomad HTTP API for tests, faithful to ``../shared/nomad-api/`` (API.md, NOTES.md, samples/).

Why a fake: no Nomad binary can be installed on our machines, so every subsystem (the Nomad target, the
overrides' Variables store, jobspec deploy) tests against this server over real HTTP, through python-nomad.

What it mimics (and tests rely on):

* Plain-text error bodies (``Content-Type: text/plain``), the exact messages of API.md; JSON otherwise.
* ``X-Nomad-Index`` on reads and writes, ``X-Nomad-KnownLeader``/``X-Nomad-LastContact`` on reads,
  blocking reads (``?index=&wait=``, ``400 Invalid wait time``/``Invalid index``).
* ACLs (off unless ``enable_acl``): ``X-Nomad-Token`` or ``Authorization: Bearer``; unknown token →
  ``403 ACL token not found``; missing capability → ``403 Permission denied``.
* ``?namespace=`` (``*`` on lists) and ``?region=`` (another region → ``500 No path to region``).
* Jobs: list, read, register (``PreserveCounts``, ``EnforceIndex``, validation → ``500 1 error occurred:…``),
  deregister (``?purge``), allocations (``200 []`` for unknown jobs), summary, latest deployment (``null``),
  scale status and scale (every 400 of ``Job.Scale``, CAS by ``JobModifyIndex`` → 500), evaluations, and
  ``/v1/jobs/parse`` (HCL via python-hcl2).
* Allocations follow the count like Nomad's reconciler (NOTES.md §C): scale-out places ``pending``
  allocations at the lowest free name index; scale-in stops the highest name index first.
* Variables: read/write/delete with ``?cas=`` (409 with the current variable as JSON; delete → 204),
  list by prefix, and locks (``?lock-acquire|renew|release``, TTL and lock-delay on ``fake.clock``).
* Fault injection: ``fail_next`` (status + body for the next N matching requests), ``delay_next`` (hold the
  response until ``release()``, after applying the request or not: a client timeout), deployments
  (``set_deployment_active``, ``deploy_on_scale``) and allocation client statuses.
* Every request is recorded (``fake.requests``) with method, path, query, parsed body and headers.

Python API (stable; other subsystems' tests use it). Use the ``fake_nomad`` fixture (tests/fixtures_nomad.py)
or ``with FakeNomad() as fake:``; ``fake.address`` is ``http://127.0.0.1:<port>``.

* Seed: ``add_job(id, groups={"workers": 3}, scaling={"workers": (1, 10)}, namespace=, job_type=,
  alloc_status=)``, ``add_sample_job()`` (job-read sample verbatim), ``register(job_json)``,
  ``add_alloc(job, group, client_status=, desired_status=)``, ``put_variable(path, items)``,
  ``namespaces`` (a set), ``healthy``, ``leader``.
* Drive: ``set_alloc_status(job, status, group=, only=, limit=)``, ``set_deployment_active(job, bool)``,
  ``deploy_on_scale``, ``new_alloc_status``, ``clock`` (variable lock TTLs).
* Faults: ``fail_next(status, n, body=, method=, path=)``, ``delay_next(n, apply=, method=, path=)``,
  ``release()``, ``clear_faults()``. ACL: ``enable_acl(management_token)``,
  ``add_token(secret, jobs={ns: [caps]}, variables={ns: [caps]})``, ``disable_acl()``.
* Inspect: ``job(id)``, ``group_count(id, group)``, ``live_count(id, group)``, ``allocations(id)``,
  ``events(id, group)``, ``variable(path)``, ``requests`` / ``requests_to(method, path)`` (``RecordedRequest``
  with ``method, path, query, body, raw_body, headers, status`` and ``header(name)``), ``wait_for_request``,
  ``clear_requests()``. ``parse_jobspec(hcl)`` is the parse endpoint's converter.

Not modelled: real scheduling (nodes, placement failures), rescheduling of failed allocations, pagination,
``filter`` expressions, hiding a variable's Items from tokens that cannot read it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SAMPLES = Path(__file__).with_name("nomad_samples")

ACTIVE_DEPLOYMENT = {"running", "paused", "blocked", "unblocking", "initializing", "pending"}
LIVE_CLIENT = {"pending", "running"}
TERMINAL_CLIENT = {"complete", "failed", "lost"}
SCALING_EVENTS_KEPT = 20  # structs.JobTrackedScalingEvents

JOB_CAPS = ("list-jobs", "parse-job", "read-job", "read-job-scaling", "scale-job", "submit-job")
VAR_CAPS = ("read", "write", "list", "destroy")


def sample(name: str) -> Any:
    """A sample body from ``tests/nomad_samples`` (a copy of ``shared/nomad-api/samples``): ``"job-read.response"``."""
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (for assertions)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    raw_body: bytes
    headers: dict[str, str]
    status: int = 0

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _Fault:
    kind: str  # "fail" | "delay"
    remaining: int
    method: str | None
    path: str | re.Pattern[str] | None
    status: int = 500
    body: str = ""
    apply: bool = True
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


@dataclass
class _Token:
    secret: str
    management: bool
    jobs: dict[str, set[str]]
    variables: dict[str, set[str]]


class ApiError(Exception):
    """Raised inside handlers: becomes a plain-text (or JSON, for 409) error response."""

    def __init__(self, status: int, message: str, json_body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.json_body = json_body


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable; ``NO_BODY`` for an empty body
    index: int | None = None
    blocking: bool = False


NO_BODY = object()


def _now_ns() -> int:
    return time.time_ns()


def _uuid() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------------- the fake


class FakeNomad:
    """The fake Nomad agent. Start with ``start()`` (or ``with FakeNomad() as fake``); ``address`` is its URL.

    State is keyed by (namespace, job ID) and (namespace, variable path). All public methods are thread-safe.
    """

    def __init__(
        self,
        *,
        region: str = "global",
        namespaces: Sequence[str] = ("default",),
        max_delay_s: float = 30.0,
        tls: tuple[str, str] | None = None,
    ):
        self.tls = tls  # (certfile, keyfile): serve HTTPS, to test certificate verification
        self.region = region
        self.namespaces: set[str] = set(namespaces)
        self.max_delay_s = max_delay_s  # upper bound of any injected delay, so a forgotten release() ends
        self.deploy_on_scale = False  # True: a successful scale starts a running deployment (service jobs)
        self.new_alloc_status = "pending"  # ClientStatus of allocations placed by a scale-out
        self.leader = "127.0.0.1:4647"
        self.healthy = True
        self.requests: list[RecordedRequest] = []
        self.index = 100
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.allocs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.deployments: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.scaling_events: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        self.evals: dict[str, dict[str, Any]] = {}
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.clock: Callable[[], float] = time.monotonic  # seconds; variable lock TTLs use it (tests replace it)
        self._locks: dict[tuple[str, str], dict[str, Any]] = {}
        self._acl: dict[str, _Token] | None = None
        self._faults: list[_Fault] = []
        self._cond = threading.Condition(threading.RLock())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeNomad is not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> FakeNomad:
        fake = self

        class Handler(_Handler):
            nomad = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-nomad", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeNomad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- ACL

    def enable_acl(self, management_token: str) -> None:
        """Turn ACLs on; ``management_token`` may do anything. Add narrower tokens with ``add_token``."""
        with self._cond:
            self._acl = {management_token: _Token(management_token, True, {}, {})}

    def add_token(
        self,
        secret: str,
        *,
        jobs: Mapping[str, Sequence[str]] | None = None,
        variables: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """A client token: ``jobs={"default": ["read-job", "scale-job"]}``, ``variables={"default": ["read"]}``."""
        for caps, known in ((jobs or {}, JOB_CAPS), (variables or {}, VAR_CAPS)):
            unknown = {c for cs in caps.values() for c in cs} - set(known)
            if unknown:
                raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {', '.join(known)}")
        with self._cond:
            if self._acl is None:
                raise RuntimeError("call enable_acl first")
            self._acl[secret] = _Token(
                secret,
                False,
                {ns: set(c) for ns, c in (jobs or {}).items()},
                {ns: set(c) for ns, c in (variables or {}).items()},
            )

    def disable_acl(self) -> None:
        with self._cond:
            self._acl = None

    # ---------------------------------------------------------------- faults

    def fail_next(
        self,
        status: int = 500,
        n: int = 1,
        *,
        body: str = "rpc error: No cluster leader",
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
    ) -> None:
        """The next ``n`` requests matching ``method``/``path`` (prefix or regex) get ``status`` with a text body."""
        with self._cond:
            self._faults.append(_Fault("fail", n, method, path, status=status, body=body))

    def delay_next(
        self,
        n: int = 1,
        *,
        apply: bool = True,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
    ) -> None:
        """Hold the next ``n`` matching responses until ``release()`` (at most ``max_delay_s``): a client timeout.

        ``apply=True``: the request takes effect and only its answer is late (the dangerous case for
        non-idempotent writes). ``apply=False``: the connection is closed without applying anything.
        """
        with self._cond:
            self._faults.append(_Fault("delay", n, method, path, apply=apply))

    def release(self) -> None:
        """Let every held (delayed) response go."""
        with self._cond:
            for fault in self._faults:
                fault.released.set()

    def clear_faults(self) -> None:
        with self._cond:
            self.release()
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
            return None

    # ---------------------------------------------------------------- requests

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by method and exact path."""
        with self._cond:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def clear_requests(self) -> None:
        with self._cond:
            self.requests.clear()

    def wait_for_request(self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0) -> RecordedRequest:
        """Block until a recorded request matches (bounded); for tests that race a client thread."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.requests:
                    if predicate(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching request reached the fake Nomad")
                self._cond.wait(left)

    def _record(self, req: RecordedRequest) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def _set_status(self, req: RecordedRequest, status: int) -> None:
        """Fill in the answer's status (0 until answered, or forever when the connection was dropped)."""
        with self._cond:
            for i, r in enumerate(self.requests):
                if r is req:
                    self.requests[i] = dataclasses.replace(req, status=status)
            self._cond.notify_all()

    # ---------------------------------------------------------------- seeding and inspection

    def _bump(self) -> int:
        self.index += 1
        self._cond.notify_all()
        return self.index

    def add_job(
        self,
        job_id: str = "example",
        *,
        namespace: str = "default",
        groups: Mapping[str, int] | None = None,
        scaling: Mapping[str, tuple[int, int]] | None = None,
        job_type: str = "service",
        driver: str = "raw_exec",
        alloc_status: str = "running",
    ) -> dict[str, Any]:
        """Store a job built from the ``job-read`` sample: ``groups={"workers": 3}, scaling={"workers": (1, 10)}``.

        Its allocations are created with ClientStatus ``alloc_status``. Returns a copy of the stored job.
        """
        groups = dict(groups or {"cache": 1})
        base = sample("job-read.response")
        tg_template = base["TaskGroups"][0]
        task_template = tg_template["Tasks"][1]
        task_groups = []
        for name, count in groups.items():
            tg = copy.deepcopy(tg_template)
            task = copy.deepcopy(task_template)
            task.update(Name="worker", Driver=driver, Config={"command": "/usr/local/bin/worker"}, Templates=None)
            task.update(Artifacts=None, DispatchPayload=None, Services=None, KillSignal="SIGTERM")
            tg.update(Name=name, Count=count, Tasks=[task], Constraints=None, Affinities=None)
            if scaling and name in scaling:
                lo, hi = scaling[name]
                tg["Scaling"] = _scaling_block(job_id, namespace, name, lo, hi)
            task_groups.append(tg)
        base.update(ID=job_id, Name=job_id, Namespace=namespace, Type=job_type, TaskGroups=task_groups)
        base.update(Periodic=None, ParameterizedJob=None, Stop=False, Version=0, NodePool="default")
        if job_type != "service":
            base["Update"] = None
        with self._cond:
            self.namespaces.add(namespace)
            stored = self._store_job(base, namespace, preserve_counts=False)
            for alloc in self.allocs[(namespace, job_id)]:
                alloc["ClientStatus"] = alloc_status
            return copy.deepcopy(stored)

    def add_sample_job(self) -> dict[str, Any]:
        """Store ``job-read.response.json`` exactly as the docs show it (namespace ``apps``) with its allocation."""
        job = sample("job-read.response")
        with self._cond:
            self.namespaces.add(job["Namespace"])
            key = (job["Namespace"], job["ID"])
            self.jobs[key] = job
            allocs = sample("job-allocations.response")
            for a in allocs:
                a.setdefault("Namespace", job["Namespace"])
                a.setdefault("JobVersion", 0)
            self.allocs[key] = allocs
            self.index = max(self.index, job["ModifyIndex"])
            return copy.deepcopy(job)

    def register(self, job: Mapping[str, Any], *, namespace: str | None = None, preserve_counts: bool = False) -> dict:
        """Register a JSON job as ``POST /v1/jobs`` would (no ACL, no validation). Returns the stored copy."""
        ns = namespace or str(job.get("Namespace") or "default")
        with self._cond:
            self.namespaces.add(ns)
            return copy.deepcopy(self._store_job(dict(job), ns, preserve_counts=preserve_counts))

    def job(self, job_id: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._cond:
            job = self.jobs.get((namespace, job_id))
            return copy.deepcopy(job) if job else None

    def group_count(self, job_id: str, group: str, namespace: str = "default") -> int:
        job = self.job(job_id, namespace)
        if job is None:
            raise KeyError(job_id)
        return int(_group(job, group)["Count"])

    def allocations(self, job_id: str, namespace: str = "default") -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(self.allocs.get((namespace, job_id), []))

    def live_count(self, job_id: str, group: str, namespace: str = "default") -> int:
        """running + pending allocations with DesiredStatus run: what the Nomad target should read."""
        return sum(
            1
            for a in self.allocations(job_id, namespace)
            if a["TaskGroup"] == group and a["DesiredStatus"] == "run" and a["ClientStatus"] in LIVE_CLIENT
        )

    def events(self, job_id: str, group: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Scaling events of a group, newest first (as ``GET /v1/job/:id/scale`` shows them)."""
        with self._cond:
            return copy.deepcopy(self.scaling_events.get((namespace, job_id), {}).get(group, []))

    def add_alloc(
        self,
        job_id: str,
        group: str,
        *,
        client_status: str = "running",
        desired_status: str = "run",
        namespace: str = "default",
        name_index: int | None = None,
    ) -> dict[str, Any]:
        """Add one allocation in any state (e.g. a stopped or failed one) without touching the job's count."""
        with self._cond:
            key = (namespace, job_id)
            job = self.jobs[key]
            allocs = self.allocs.setdefault(key, [])
            if name_index is None:
                used = {_name_index(a["Name"]) for a in allocs if a["TaskGroup"] == group}
                name_index = max(used, default=-1) + 1
            alloc = self._new_alloc(job, group, name_index, client_status)
            alloc["DesiredStatus"] = desired_status
            if desired_status != "run":
                alloc["DesiredDescription"] = "alloc not needed due to job update"
            allocs.append(alloc)
            self._bump()
            return copy.deepcopy(alloc)

    def set_alloc_status(
        self,
        job_id: str,
        status: str,
        *,
        group: str | None = None,
        namespace: str = "default",
        only: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Set ClientStatus of DesiredStatus=run allocations (``only``: those now in that status). Returns how many."""
        if status not in LIVE_CLIENT | TERMINAL_CLIENT | {"unknown"}:
            raise ValueError(f"not a Nomad client status: {status}")
        with self._cond:
            changed = 0
            index = self._bump()
            for alloc in sorted(self.allocs.get((namespace, job_id), []), key=lambda a: _name_index(a["Name"])):
                if limit is not None and changed >= limit:
                    break
                if alloc["DesiredStatus"] != "run" or (group and alloc["TaskGroup"] != group):
                    continue
                if only and alloc["ClientStatus"] != only:
                    continue
                alloc["ClientStatus"] = status
                alloc["ClientDescription"] = _client_description(status)
                alloc["ModifyIndex"] = index
                alloc["ModifyTime"] = _now_ns()
                changed += 1
            return changed

    def set_deployment_active(self, job_id: str, active: bool, *, namespace: str = "default") -> dict[str, Any]:
        """Start a running deployment of the job's current version, or mark the latest one successful."""
        with self._cond:
            key = (namespace, job_id)
            job = self.jobs[key]
            if active:
                return copy.deepcopy(self._start_deployment(job))
            deps = self.deployments.get(key) or []
            if not deps:
                raise KeyError(f"job {job_id} has no deployment")
            latest = deps[-1]
            latest.update(Status="successful", StatusDescription="Deployment completed successfully")
            latest["ModifyIndex"] = self._bump()
            return copy.deepcopy(latest)

    def put_variable(self, path: str, items: Mapping[str, str], *, namespace: str = "default") -> dict[str, Any]:
        """Store a variable directly (no CAS). Returns the stored copy."""
        with self._cond:
            self.namespaces.add(namespace)
            return copy.deepcopy(self._write_var(namespace, path, dict(items)))

    def variable(self, path: str, namespace: str = "default") -> dict[str, Any] | None:
        with self._cond:
            var = self.variables.get((namespace, path))
            return copy.deepcopy(var) if var else None

    # ---------------------------------------------------------------- state changes (callers hold the lock)

    def _store_job(self, job: dict[str, Any], namespace: str, *, preserve_counts: bool) -> dict[str, Any]:
        key = (namespace, job["ID"])
        existing = self.jobs.get(key)
        job = copy.deepcopy(job)
        job["Namespace"] = namespace
        job.setdefault("Name", job["ID"])
        job.setdefault("Region", self.region)
        for tg in job.get("TaskGroups") or []:
            if tg.get("Count") is None:
                tg["Count"] = 1
            if preserve_counts and existing is not None:
                old = _find_group(existing, tg["Name"])
                if old is not None:
                    tg["Count"] = old["Count"]
        index = self._bump()
        job["ModifyIndex"] = index
        job["Stop"] = bool(job.get("Stop", False))
        if existing is None:
            job.update(CreateIndex=index, JobModifyIndex=index, Version=0, SubmitTime=_now_ns())
        else:
            job["CreateIndex"] = existing["CreateIndex"]
            if _spec(existing) != _spec(job):
                job.update(JobModifyIndex=index, Version=int(existing.get("Version", 0)) + 1, SubmitTime=_now_ns())
            else:
                job.update(JobModifyIndex=existing["JobModifyIndex"], Version=existing.get("Version", 0))
                job["SubmitTime"] = existing.get("SubmitTime")
        self.jobs[key] = job
        self.allocs.setdefault(key, [])
        self._reconcile(job)
        return job

    def _reconcile(self, job: dict[str, Any]) -> None:
        """Make live allocations match each group's count (NOTES.md §C): stop highest index, place lowest free."""
        key = (job["Namespace"], job["ID"])
        allocs = self.allocs.setdefault(key, [])
        groups = {tg["Name"]: tg for tg in job.get("TaskGroups") or []}
        index = self.index
        for alloc in allocs:
            if alloc["DesiredStatus"] == "run":
                alloc["JobVersion"] = job.get("Version", 0)
                if alloc["TaskGroup"] not in groups or job.get("Stop"):
                    _stop(alloc, index)
        if job.get("Stop"):
            return
        for name, tg in groups.items():
            live = [a for a in allocs if a["TaskGroup"] == name and a["DesiredStatus"] == "run"]
            live = [a for a in live if a["ClientStatus"] in LIVE_CLIENT]
            want = int(tg["Count"])
            if len(live) > want:
                for alloc in sorted(live, key=lambda a: _name_index(a["Name"]), reverse=True)[: len(live) - want]:
                    _stop(alloc, index)
            used = {_name_index(a["Name"]) for a in live}
            i = 0
            for _ in range(want - len(live)):
                while i in used:
                    i += 1
                used.add(i)
                allocs.append(self._new_alloc(job, name, i, self.new_alloc_status))

    def _new_alloc(self, job: dict[str, Any], group: str, name_index: int, client_status: str) -> dict[str, Any]:
        tg = _find_group(job, group) or {"Tasks": []}
        now = _now_ns()
        return {
            "ID": _uuid(),
            "EvalID": _uuid(),
            "Name": f"{job['ID']}.{group}[{name_index}]",
            "Namespace": job["Namespace"],
            "NodeID": _uuid(),
            "NodeName": f"gpu-node-{name_index}",
            "JobID": job["ID"],
            "JobType": job.get("Type", "service"),
            "JobVersion": job.get("Version", 0),
            "TaskGroup": group,
            "DesiredStatus": "run",
            "DesiredDescription": "",
            "DesiredTransition": {"Migrate": None, "Reschedule": None, "ForceReschedule": None},
            "ClientStatus": client_status,
            "ClientDescription": _client_description(client_status),
            "TaskStates": {
                t["Name"]: {"State": "running" if client_status == "running" else "pending", "Failed": False}
                for t in tg.get("Tasks") or []
            },
            "DeploymentStatus": None,
            "FollowupEvalID": "",
            "PreviousAllocation": "",
            "NextAllocation": "",
            "RescheduleTracker": None,
            "PreemptedAllocations": None,
            "PreemptedByAllocation": "",
            "CreateIndex": self.index,
            "ModifyIndex": self.index,
            "CreateTime": now,
            "ModifyTime": now,
        }

    def _start_deployment(self, job: dict[str, Any]) -> dict[str, Any]:
        index = self._bump()
        key = (job["Namespace"], job["ID"])
        deployment = {
            "ID": _uuid(),
            "Namespace": job["Namespace"],
            "JobID": job["ID"],
            "JobVersion": job.get("Version", 0),
            "JobModifyIndex": job["JobModifyIndex"],
            "JobSpecModifyIndex": job["JobModifyIndex"],
            "JobCreateIndex": job["CreateIndex"],
            "IsMultiregion": False,
            "TaskGroups": {
                tg["Name"]: {
                    "AutoRevert": False,
                    "AutoPromote": False,
                    "Promoted": False,
                    "PlacedCanaries": None,
                    "DesiredCanaries": 0,
                    "DesiredTotal": tg["Count"],
                    "PlacedAllocs": 0,
                    "HealthyAllocs": 0,
                    "UnhealthyAllocs": 0,
                    "ProgressDeadline": 600000000000,
                    "RequireProgressBy": None,
                }
                for tg in job.get("TaskGroups") or []
            },
            "Status": "running",
            "StatusDescription": "Deployment is running",
            "EvalPriority": 50,
            "CreateIndex": index,
            "ModifyIndex": index,
        }
        self.deployments.setdefault(key, []).append(deployment)
        return deployment

    def _new_eval(self, job: dict[str, Any], triggered_by: str) -> dict[str, Any] | None:
        if job.get("Periodic") or job.get("ParameterizedJob"):
            return None  # Nomad creates no eval for periodic or parameterized jobs
        now = _now_ns()
        evaluation = {
            "ID": _uuid(),
            "Namespace": job["Namespace"],
            "Priority": job.get("Priority", 50),
            "Type": job.get("Type", "service"),
            "TriggeredBy": triggered_by,
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "Status": "complete",
            "StatusDescription": "",
            "CreateIndex": self.index,
            "ModifyIndex": self.index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        self.evals[evaluation["ID"]] = evaluation
        return evaluation

    def _write_var(self, namespace: str, path: str, items: dict[str, str]) -> dict[str, Any]:
        index = self._bump()
        now = _now_ns()
        old = self.variables.get((namespace, path))
        var = {
            "Namespace": namespace,
            "Path": path,
            "CreateIndex": old["CreateIndex"] if old else index,
            "ModifyIndex": index,
            "CreateTime": old["CreateTime"] if old else now,
            "ModifyTime": now,
            "Items": items,
        }
        self.variables[(namespace, path)] = var
        return var

    # ---------------------------------------------------------------- dispatch (called by the handler)

    def _wait_blocking(self, query: dict[str, str]) -> None:
        """A blocking read returns when the index passes ``?index`` or ``wait`` runs out (bounded)."""
        if "index" not in query:
            return
        min_index = int(query["index"])
        wait_s = min(_parse_go_duration(query.get("wait") or "5m") / 1e9, 600.0, self.max_delay_s)
        deadline = time.monotonic() + wait_s
        with self._cond:
            while self.index <= min_index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def _authorize(self, ctx: _Ctx, namespace: str, any_of: Sequence[str], kind: str = "job") -> None:
        if self._acl is None:
            return
        secret = ctx.token()
        if secret is None:
            raise ApiError(403, "Permission denied")
        token = self._acl.get(secret)
        if token is None:
            raise ApiError(403, "ACL token not found")
        if token.management:
            return
        table = token.jobs if kind == "job" else token.variables
        caps = table.get(namespace, set()) | table.get("*", set())
        if not caps & set(any_of):  # each endpoint lists the capabilities Nomad accepts for it
            raise ApiError(403, "Permission denied")


@dataclass
class _Ctx:
    method: str
    query: dict[str, str]
    body: Any
    headers: Mapping[str, str]
    params: dict[str, str]

    @property
    def namespace(self) -> str:
        return self.query.get("namespace") or "default"

    def token(self) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == "x-nomad-token" and value:
                return value
            if key.lower() == "authorization" and value.lower().startswith("bearer "):
                return value[7:].strip()
        return None

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise ApiError(400, "Request decode failed: body is not a JSON object")
        return self.body


# --------------------------------------------------------------------------------------------- endpoints


def _list_jobs(fake: FakeNomad, ctx: _Ctx) -> Reply:
    ns = ctx.namespace
    prefix = ctx.query.get("prefix", "")
    with fake._cond:
        if ns != "*":
            fake._authorize(ctx, ns, ["list-jobs"])
        fake._wait_blocking(ctx.query)
        out = []
        for (job_ns, job_id), job in sorted(fake.jobs.items()):
            if (ns != "*" and job_ns != ns) or not job_id.startswith(prefix):
                continue
            if ns == "*" and fake._acl is not None:
                try:
                    fake._authorize(ctx, job_ns, ["list-jobs"])
                except ApiError:
                    continue
            out.append(_job_stub(fake, job))
        return Reply(200, out, fake.index, blocking=True)


def _register(fake: FakeNomad, ctx: _Ctx, path_id: str | None = None) -> Reply:
    body = ctx.json_body()
    job = body.get("Job")
    if not isinstance(job, dict):
        raise ApiError(400, "Job must be specified")
    if not job.get("ID"):
        raise ApiError(400, "Job ID hasn't been provided")
    if path_id is not None and job["ID"] != path_id:
        raise ApiError(400, "Job ID does not match name")
    ns = ctx.query.get("namespace") or job.get("Namespace") or "default"
    with fake._cond:
        fake._authorize(ctx, ns, ["submit-job"])
        if ns not in fake.namespaces:
            raise ApiError(500, f'job "{job["ID"]}" is in nonexistent namespace "{ns}"')
        errors = _validate_job(job)
        if errors:
            raise ApiError(500, _multierror(errors))
        existing = fake.jobs.get((ns, job["ID"]))
        if body.get("EnforceIndex"):
            want = int(body.get("JobModifyIndex") or 0)
            prefix = f"Enforcing job modify index {want}"
            if want == 0 and existing is not None:
                raise ApiError(500, f"{prefix}: job already exists")
            if want != 0 and existing is None:
                raise ApiError(500, f"{prefix}: job does not exist")
            if existing is not None and existing["JobModifyIndex"] != want:
                raise ApiError(
                    500, f"{prefix}: job exists with conflicting job modify index: {existing['JobModifyIndex']}"
                )
        stored = fake._store_job(job, ns, preserve_counts=bool(body.get("PreserveCounts")))
        evaluation = fake._new_eval(stored, "job-register")
        return Reply(
            200,
            {
                "EvalID": evaluation["ID"] if evaluation else "",
                "EvalCreateIndex": evaluation["CreateIndex"] if evaluation else 0,
                "JobModifyIndex": stored["JobModifyIndex"],
                "Warnings": "",
                "Index": fake.index,
                "LastContact": 0,
                "KnownLeader": False,
            },
            fake.index,
        )


def _register_path(fake: FakeNomad, ctx: _Ctx) -> Reply:
    return _register(fake, ctx, path_id=ctx.params["job"])


def _parse(fake: FakeNomad, ctx: _Ctx) -> Reply:
    body = ctx.json_body()
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["parse-job", "submit-job"])
    text = body.get("JobHCL") or ""
    if not text.strip():
        raise ApiError(400, "Job spec is empty")
    job = parse_jobspec(text, canonicalize=bool(body.get("Canonicalize")), namespace=ctx.namespace)
    return Reply(200, job)


def _job_or_404(fake: FakeNomad, ns: str, job_id: str, message: str = "job not found") -> dict[str, Any]:
    job = fake.jobs.get((ns, job_id))
    if job is None:
        raise ApiError(404, message)
    return job


def _read_job(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        fake._wait_blocking(ctx.query)
        job = _job_or_404(fake, ctx.namespace, ctx.params["job"])
        out = copy.deepcopy(job)
        out["Status"] = _job_status(fake, job)
        return Reply(200, out, fake.index, blocking=True)


def _deregister(fake: FakeNomad, ctx: _Ctx) -> Reply:
    purge_raw = ctx.query.get("purge", "false") or "true"
    if purge_raw.lower() not in ("true", "false", "1", "0", "t", "f"):
        raise ApiError(500, f'Failed to parse value of "purge" ({purge_raw}) as a bool')
    purge = purge_raw.lower() in ("true", "1", "t")
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["submit-job"])
        key = (ctx.namespace, ctx.params["job"])
        job = fake.jobs.get(key)
        if job is None:
            return Reply(200, {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0}, fake.index)
        index = fake._bump()
        job.update(Stop=True, ModifyIndex=index, JobModifyIndex=index, Version=job.get("Version", 0) + 1)
        fake._reconcile(job)
        evaluation = fake._new_eval(job, "job-deregister")
        if purge:
            del fake.jobs[key]
            fake.allocs.pop(key, None)
            fake.deployments.pop(key, None)
            fake.scaling_events.pop(key, None)
        return Reply(
            200,
            {
                "EvalID": evaluation["ID"] if evaluation else "",
                "EvalCreateIndex": evaluation["CreateIndex"] if evaluation else 0,
                "JobModifyIndex": index,
            },
            index,
        )


def _job_allocations(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        fake._wait_blocking(ctx.query)
        allocs = fake.allocs.get((ctx.namespace, ctx.params["job"]), [])
        return Reply(200, copy.deepcopy(allocs), fake.index, blocking=True)


def _job_summary(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        job = _job_or_404(fake, ctx.namespace, ctx.params["job"])
        return Reply(200, _summary(fake, job), fake.index, blocking=True)


def _job_deployment(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        fake._wait_blocking(ctx.query)
        deps = fake.deployments.get((ctx.namespace, ctx.params["job"])) or []
        return Reply(200, copy.deepcopy(deps[-1]) if deps else None, fake.index, blocking=True)


def _job_deployments(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        deps = fake.deployments.get((ctx.namespace, ctx.params["job"])) or []
        return Reply(200, copy.deepcopy(list(reversed(deps))), fake.index, blocking=True)


def _read_deployment(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        for (ns, _job), deps in fake.deployments.items():
            for d in deps:
                if d["ID"] == ctx.params["id"]:
                    fake._authorize(ctx, ns, ["read-job"])
                    return Reply(200, copy.deepcopy(d), fake.index, blocking=True)
        raise ApiError(404, "deployment not found")


def _read_eval(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        evaluation = fake.evals.get(ctx.params["id"])
        if evaluation is None:
            raise ApiError(404, "eval not found")
        fake._authorize(ctx, evaluation["Namespace"], ["read-job"])
        return Reply(200, copy.deepcopy(evaluation), fake.index, blocking=True)


def _scale_status(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job-scaling", "read-job"])
        fake._wait_blocking(ctx.query)
        job = _job_or_404(fake, ctx.namespace, ctx.params["job"])
        key = (job["Namespace"], job["ID"])
        allocs = fake.allocs.get(key, [])
        groups = {}
        for tg in job.get("TaskGroups") or []:
            mine = [a for a in allocs if a["TaskGroup"] == tg["Name"] and a["DesiredStatus"] == "run"]
            running = sum(1 for a in mine if a["ClientStatus"] == "running")
            events = fake.scaling_events.get(key, {}).get(tg["Name"]) or None
            groups[tg["Name"]] = {
                "Desired": tg["Count"],
                "Events": copy.deepcopy(events),
                "Healthy": running,
                "Placed": sum(1 for a in mine if a["ClientStatus"] in LIVE_CLIENT),
                "Running": running,
                "Unhealthy": sum(1 for a in mine if a["ClientStatus"] == "failed"),
            }
        body = {
            "JobCreateIndex": job["CreateIndex"],
            "JobID": job["ID"],
            "Namespace": job["Namespace"],
            "JobModifyIndex": job["JobModifyIndex"],
            "JobStopped": bool(job.get("Stop")),
            "TaskGroups": groups,
        }
        return Reply(200, body, fake.index, blocking=True)


def _scale(fake: FakeNomad, ctx: _Ctx) -> Reply:
    """``Job.Scale`` in nomad/job_endpoint.go, check by check, in its order."""
    body = ctx.json_body()
    job_id = ctx.params["job"]
    target = body.get("Target") or {}
    group_name = target.get("Group") if isinstance(target, dict) else None
    if not group_name:
        raise ApiError(400, "missing task group name for scaling action")
    if target.get("Job") not in (None, "", job_id):
        raise ApiError(400, "job ID in payload did not match URL")
    count = body.get("Count")
    is_error = bool(body.get("Error"))
    if count is not None and is_error:
        raise ApiError(400, "scaling action should not contain count if error is true")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ApiError(400, "Request decode failed: Count must be an integer")
    if count is not None and count < 0:
        raise ApiError(400, "scaling action count can't be negative")
    ns = ctx.query.get("namespace") or target.get("Namespace") or "default"
    with fake._cond:
        fake._authorize(ctx, ns, ["scale-job", "submit-job"])
        job = _job_or_404(fake, ns, job_id, f'job "{job_id}" not found')
        group = _find_group(job, group_name)
        if group is None:
            raise ApiError(400, f'task group "{group_name}" specified for scaling does not exist in job')
        prev = int(group["Count"])
        event = {
            "Count": count,
            "PreviousCount": prev,
            "Error": is_error,
            "Message": body.get("Message", ""),
            "Meta": body.get("Meta"),
            "EvalID": None,
            "Time": _now_ns(),
            "CreateIndex": 0,
        }
        if count is None:
            event["CreateIndex"] = fake._bump()
            _add_event(fake, job, group_name, event)
            return Reply(200, _write_reply(fake, "", 0, job["JobModifyIndex"]), fake.index)
        if job.get("Type") == "system" and count > 1:
            raise ApiError(400, "Cannot scale a system job to more than 1")
        scaling = group.get("Scaling")
        if scaling:
            if count < int(scaling.get("Min") or 0):
                raise ApiError(
                    400, f"group count was less than scaling policy minimum: {count} < {scaling.get('Min') or 0}"
                )
            if scaling.get("Max") is not None and count > int(scaling["Max"]):
                raise ApiError(400, f"group count was greater than scaling policy maximum: {count} > {scaling['Max']}")
        deps = fake.deployments.get((ns, job_id)) or []
        if deps and deps[-1]["Status"] in ACTIVE_DEPLOYMENT:
            raise ApiError(400, "job scaling blocked due to active deployment")
        want = int(body.get("JobModifyIndex") or 0)
        if want and want != job["JobModifyIndex"]:
            raise ApiError(
                500,
                f"Enforcing job modify index {want}: job exists with conflicting job modify index: "
                f"{job['JobModifyIndex']}",
            )
        new_job = copy.deepcopy(job)
        _group(new_job, group_name)["Count"] = count
        stored = fake._store_job(new_job, ns, preserve_counts=False)
        evaluation = fake._new_eval(stored, "job-scaling")
        event["EvalID"] = evaluation["ID"] if evaluation else None
        event["CreateIndex"] = stored["ModifyIndex"]
        _add_event(fake, stored, group_name, event)
        if fake.deploy_on_scale and stored.get("Type") == "service" and stored.get("Update"):
            fake._start_deployment(stored)
        eval_id = evaluation["ID"] if evaluation else ""
        eval_index = evaluation["CreateIndex"] if evaluation else 0
        return Reply(200, _write_reply(fake, eval_id, eval_index, stored["JobModifyIndex"]), fake.index)


def _add_event(fake: FakeNomad, job: dict[str, Any], group: str, event: dict[str, Any]) -> None:
    events = fake.scaling_events.setdefault((job["Namespace"], job["ID"]), {}).setdefault(group, [])
    events.insert(0, event)
    del events[SCALING_EVENTS_KEPT:]


def _write_reply(fake: FakeNomad, eval_id: str, eval_index: int, job_modify_index: int) -> dict[str, Any]:
    return {
        "EvalCreateIndex": eval_index,
        "EvalID": eval_id,
        "Index": fake.index,
        "JobModifyIndex": job_modify_index,
        "KnownLeader": False,
        "LastContact": 0,
        "Warnings": "",
    }


def _var_path(ctx: _Ctx) -> str:
    path = ctx.params["path"]
    if not path or path.startswith("/") or path.endswith("/") or "//" in path:
        raise ApiError(400, "invalid path")
    return path


def _var_read(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read"], kind="var")
        fake._wait_blocking(ctx.query)
        var = fake.variables.get((ctx.namespace, path))
        if var is None:
            raise ApiError(404, "variable not found")
        return Reply(200, copy.deepcopy(var), fake.index, blocking=True)


LOCK_OPS = ("lock-acquire", "lock-renew", "lock-release")
LOCK_MIN_NS, LOCK_MAX_NS = 10 * 10**9, 24 * 3600 * 10**9


def _var_write(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    ops = [op for op in LOCK_OPS if op in ctx.query]
    if len(ops) > 1:
        raise ApiError(400, "multiple lock operations")
    if ops and "cas" in ctx.query:
        raise ApiError(400, "CAS can't be used with lock operations")
    body = ctx.json_body()
    items = body.get("Items")
    ns = ctx.query.get("namespace") or body.get("Namespace") or "default"
    if ops:
        with fake._cond:
            fake._authorize(ctx, ns, ["write"], kind="var")
            return _lock_op(fake, ops[0], ns, path, body)
    if not items:
        raise ApiError(400, "variable missing required Items object")
    if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
        raise ApiError(400, "Request decode failed: Items must map strings to strings")
    with fake._cond:
        fake._authorize(ctx, ns, ["write"], kind="var")
        if ns not in fake.namespaces:
            raise ApiError(500, f'nonexistent namespace "{ns}"')
        _check_cas(fake, ctx, ns, path, with_items=True)
        _check_lock_holder(fake, ns, path, body)
        lock = (fake.variables.get((ns, path)) or {}).get("Lock")
        var = fake._write_var(ns, path, dict(items))
        if lock:
            var["Lock"] = lock
        return Reply(200, copy.deepcopy(var), var["ModifyIndex"])


def _lock_op(fake: FakeNomad, op: str, ns: str, path: str, body: dict[str, Any]) -> Reply:
    """Variable locks (``?lock-acquire|renew|release``) with TTL and lock-delay, on ``fake.clock``."""
    key = (ns, path)
    var = fake.variables.get(key)
    now = fake.clock()
    lock_in = body.get("Lock") or {}
    held = _live_lock(fake, key, now)
    if op == "lock-acquire":
        ttl = _parse_go_duration(str(lock_in.get("TTL") or "15s"))
        delay = _parse_go_duration(str(lock_in.get("LockDelay") or "15s"))
        if not (LOCK_MIN_NS <= ttl <= LOCK_MAX_NS and LOCK_MIN_NS <= delay <= LOCK_MAX_NS):
            raise ApiError(400, "lock TTL and LockDelay must be between 10s and 24h")
        state = fake._locks.get(key)
        if held or (state is not None and now < state["delay_until"]):
            conflict = sample("variable-lock-conflict.response")
            conflict.update(Namespace=ns, Path=path)
            raise ApiError(409, "attempting to modify locked variable", json_body=conflict)
        items = body.get("Items") if body.get("Items") is not None else (var or {}).get("Items") or {}
        out = fake._write_var(ns, path, dict(items))
        lock = {"TTL": lock_in.get("TTL") or "15s", "LockDelay": lock_in.get("LockDelay") or "15s", "ID": _uuid()}
        out["Lock"] = lock
        fake._locks[key] = {"id": lock["ID"], "ttl": ttl / 1e9, "delay": delay / 1e9, "expires": now + ttl / 1e9}
        fake._locks[key]["delay_until"] = 0.0
        return Reply(200, copy.deepcopy(out), out["ModifyIndex"])
    if var is None:
        raise ApiError(404, "variable not found")
    if not held:
        raise ApiError(409, "variable doesn't hold a lock")
    if lock_in.get("ID") != held["id"]:
        raise ApiError(409, "attempting to modify locked variable")
    meta = {k: v for k, v in var.items() if k not in ("Items", "Lock")}
    if op == "lock-renew":
        held["expires"] = now + held["ttl"]
        return Reply(200, {**copy.deepcopy(meta), "Lock": copy.deepcopy(var["Lock"])}, fake.index)
    if body.get("Items"):
        raise ApiError(400, "lock release operation doesn't take variable items")
    var.pop("Lock", None)
    del fake._locks[key]
    var["ModifyIndex"] = fake._bump()
    return Reply(200, {**copy.deepcopy(meta), "ModifyIndex": var["ModifyIndex"]}, var["ModifyIndex"])


def _live_lock(fake: FakeNomad, key: tuple[str, str], now: float) -> dict[str, Any] | None:
    """The lock on a variable if it has not expired; an expired one starts its lock-delay."""
    state = fake._locks.get(key)
    if state is None or state["id"] is None:
        return None
    if now < state["expires"]:
        return state
    state.update(id=None, delay_until=state["expires"] + state["delay"])
    var = fake.variables.get(key)
    if var is not None:
        var.pop("Lock", None)
    return None


def _check_lock_holder(fake: FakeNomad, ns: str, path: str, body: Mapping[str, Any]) -> None:
    held = _live_lock(fake, (ns, path), fake.clock())
    if held and (body.get("Lock") or {}).get("ID") != held["id"]:
        raise ApiError(409, "attempting to modify locked variable")


def _var_delete(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["destroy"], kind="var")
        _check_cas(fake, ctx, ctx.namespace, path, with_items=False)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        _check_lock_holder(fake, ctx.namespace, path, body)
        fake.variables.pop((ctx.namespace, path), None)
        fake._locks.pop((ctx.namespace, path), None)
        return Reply(204, NO_BODY, fake._bump())


def _check_cas(fake: FakeNomad, ctx: _Ctx, ns: str, path: str, *, with_items: bool) -> None:
    if "cas" not in ctx.query:
        return
    try:
        cas = int(ctx.query["cas"])
    except ValueError:
        raise ApiError(400, "failed to parse cas value") from None
    current = fake.variables.get((ns, path))
    current_index = current["ModifyIndex"] if current else 0
    if cas == current_index:
        return
    if current is None:
        conflict: dict[str, Any] = {"Namespace": ns, "Path": path, "CreateIndex": 0, "ModifyIndex": 0}
        conflict.update(CreateTime=0, ModifyTime=0)
    else:
        conflict = copy.deepcopy(current)
        if not with_items:
            conflict.pop("Items", None)
    raise ApiError(409, "cas conflict", json_body=conflict)


def _var_list(fake: FakeNomad, ctx: _Ctx) -> Reply:
    prefix = ctx.query.get("prefix", "")
    ns = ctx.namespace
    with fake._cond:
        if ns != "*":
            fake._authorize(ctx, ns, ["list"], kind="var")
        fake._wait_blocking(ctx.query)
        out = []
        for (var_ns, path), var in sorted(fake.variables.items()):
            if (ns != "*" and var_ns != ns) or not path.startswith(prefix):
                continue
            meta = {k: v for k, v in var.items() if k != "Items"}
            out.append(copy.deepcopy(meta))
        return Reply(200, out, fake.index, blocking=True)


def _agent_health(fake: FakeNomad, ctx: _Ctx) -> Reply:
    if fake.healthy:
        return Reply(200, sample("agent-health.response"))
    body = {"client": {"ok": False, "message": "no known servers"}, "server": {"ok": False, "message": "no leader"}}
    raise ApiError(500, json.dumps(body))


def _status_leader(fake: FakeNomad, ctx: _Ctx) -> Reply:
    return Reply(200, fake.leader)


def _status_peers(fake: FakeNomad, ctx: _Ctx) -> Reply:
    return Reply(200, [fake.leader] if fake.leader else [])


_R = Callable[[FakeNomad, _Ctx], Reply]
_ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], _R]] = [
    (re.compile(r"/v1/jobs"), ("GET",), _list_jobs),
    (re.compile(r"/v1/jobs"), ("POST", "PUT"), _register),
    (re.compile(r"/v1/jobs/parse"), ("POST", "PUT"), _parse),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/allocations"), ("GET",), _job_allocations),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/summary"), ("GET",), _job_summary),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/deployment"), ("GET",), _job_deployment),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/deployments"), ("GET",), _job_deployments),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/scale"), ("GET",), _scale_status),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/scale"), ("POST", "PUT"), _scale),
    (re.compile(r"/v1/job/(?P<job>[^/]+)"), ("GET",), _read_job),
    (re.compile(r"/v1/job/(?P<job>[^/]+)"), ("POST", "PUT"), _register_path),
    (re.compile(r"/v1/job/(?P<job>[^/]+)"), ("DELETE",), _deregister),
    (re.compile(r"/v1/deployment/(?P<id>[^/]+)"), ("GET",), _read_deployment),
    (re.compile(r"/v1/evaluation/(?P<id>[^/]+)"), ("GET",), _read_eval),
    (re.compile(r"/v1/var/(?P<path>.+)"), ("GET",), _var_read),
    (re.compile(r"/v1/var/(?P<path>.+)"), ("PUT", "POST"), _var_write),
    (re.compile(r"/v1/var/(?P<path>.+)"), ("DELETE",), _var_delete),
    (re.compile(r"/v1/vars"), ("GET",), _var_list),
    (re.compile(r"/v1/agent/health"), ("GET",), _agent_health),
    (re.compile(r"/v1/status/leader"), ("GET",), _status_leader),
    (re.compile(r"/v1/status/peers"), ("GET",), _status_peers),
]


def _route(fake: FakeNomad, method: str, path: str) -> tuple[_R, dict[str, str]]:
    matched = False
    for pattern, methods, handler in _ROUTES:
        m = pattern.fullmatch(path)
        if not m:
            continue
        matched = True
        if method in methods:
            return handler, m.groupdict()
    if matched:
        raise ApiError(405, "Invalid method")
    raise ApiError(404, "404 page not found")


def _dispatch(fake: FakeNomad, method: str, path: str, query: dict[str, str], body: Any, headers: Any) -> Reply:
    handler, params = _route(fake, method, path)
    if "region" in query and query["region"] not in ("", fake.region):
        raise ApiError(500, "No path to region")
    _check_blocking_params(query)
    return handler(fake, _Ctx(method, query, body, headers, params))


def _check_blocking_params(query: dict[str, str]) -> None:
    if "wait" in query:
        try:
            _parse_go_duration(query["wait"])
        except ValueError:
            raise ApiError(400, "Invalid wait time") from None
    if "index" in query:
        try:
            if int(query["index"]) < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, "Invalid index") from None


# --------------------------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    nomad: FakeNomad
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "FakeNomad/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read fake.requests
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        fake = self.nomad
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = raw.decode("utf-8", "replace"), True
        headers = dict(self.headers.items())
        received = RecordedRequest(method, path, query, body, raw, headers, 0)
        fake._record(received)  # before handling: a test can wait for a blocking read to arrive
        fault = fake._take_fault(method, path)
        status, payload, content_type, index, blocking = 500, b"", "text/plain; charset=utf-8", None, False
        if fault is not None and fault.kind == "fail":
            status, payload = fault.status, fault.body.encode()
        elif fault is not None and fault.kind == "delay" and not fault.apply:
            fault.released.wait(fake.max_delay_s)
            self.close_connection = True
            return
        else:
            try:
                if bad_json:
                    raise ApiError(400, "Request decode failed: invalid character in JSON body")
                reply = _dispatch(fake, method, path, query, body, headers)
                status, index, blocking = reply.status, reply.index, reply.blocking
                if reply.body is not NO_BODY:
                    payload, content_type = json.dumps(reply.body).encode(), "application/json"
            except ApiError as err:
                status = err.status
                if err.json_body is not None:
                    payload, content_type = json.dumps(err.json_body).encode(), "application/json"
                else:
                    payload = err.message.encode()
                with fake._cond:
                    index = fake.index if status == 409 else None
        fake._set_status(received, status)
        if fault is not None and fault.kind == "delay":
            fault.released.wait(fake.max_delay_s)
        try:
            self.send_response(status)
            if payload or status != 204:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            if index is not None:
                self.send_header("X-Nomad-Index", str(index))
            if blocking:
                self.send_header("X-Nomad-KnownLeader", "true")
                self.send_header("X-Nomad-LastContact", "0")
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# --------------------------------------------------------------------------------------------- helpers


def _find_group(job: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for tg in job.get("TaskGroups") or []:
        if tg.get("Name") == name:
            return tg  # type: ignore[no-any-return]
    return None


def _group(job: Mapping[str, Any], name: str) -> dict[str, Any]:
    tg = _find_group(job, name)
    if tg is None:
        raise KeyError(name)
    return tg


_NAME_INDEX = re.compile(r"\[(\d+)\]$")


def _name_index(name: str) -> int:
    m = _NAME_INDEX.search(name)
    return int(m.group(1)) if m else 0


def _stop(alloc: dict[str, Any], index: int) -> None:
    alloc["DesiredStatus"] = "stop"
    alloc["DesiredDescription"] = "alloc not needed due to job update"
    if alloc["ClientStatus"] in LIVE_CLIENT:
        alloc["ClientStatus"] = "complete"
        alloc["ClientDescription"] = "All tasks have completed"
    alloc["ModifyIndex"] = index
    alloc["ModifyTime"] = _now_ns()


def _client_description(status: str) -> str:
    return {
        "running": "Tasks are running",
        "pending": "No tasks have started",
        "complete": "All tasks have completed",
        "failed": "Failed tasks",
    }.get(status, "")


_VOLATILE = {"ModifyIndex", "JobModifyIndex", "CreateIndex", "Version", "SubmitTime", "Status", "Stable"}


def _spec(job: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in _VOLATILE and k != "StatusDescription"}


def _scaling_block(job_id: str, ns: str, group: str, lo: int, hi: int) -> dict[str, Any]:
    return {
        "ID": _uuid(),
        "Type": "horizontal",
        "Target": {"Namespace": ns, "Job": job_id, "Group": group},
        "Min": lo,
        "Max": hi,
        "Policy": {},
        "Enabled": True,
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }


def _job_status(fake: FakeNomad, job: Mapping[str, Any]) -> str:
    if job.get("Stop"):
        return "dead"
    allocs = fake.allocs.get((job["Namespace"], job["ID"]), [])
    if any(a["ClientStatus"] == "running" for a in allocs):
        return "running"
    return "pending"


def _summary(fake: FakeNomad, job: Mapping[str, Any]) -> dict[str, Any]:
    allocs = fake.allocs.get((job["Namespace"], job["ID"]), [])
    summary = {}
    for tg in job.get("TaskGroups") or []:
        mine = [a for a in allocs if a["TaskGroup"] == tg["Name"]]
        counts = {s: sum(1 for a in mine if a["ClientStatus"] == s) for s in ("running", "complete", "failed", "lost")}
        summary[tg["Name"]] = {
            "Queued": 0,
            "Complete": counts["complete"],
            "Failed": counts["failed"],
            "Running": counts["running"],
            "Starting": sum(1 for a in mine if a["ClientStatus"] == "pending"),
            "Lost": counts["lost"],
            "Unknown": 0,
        }
    return {
        "JobID": job["ID"],
        "Namespace": job["Namespace"],
        "Summary": summary,
        "Children": {"Pending": 0, "Running": 0, "Dead": 0},
        "CreateIndex": job["CreateIndex"],
        "ModifyIndex": job["ModifyIndex"],
    }


def _job_stub(fake: FakeNomad, job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ID": job["ID"],
        "ParentID": job.get("ParentID", ""),
        "Name": job.get("Name", job["ID"]),
        "Namespace": job["Namespace"],
        "Datacenters": job.get("Datacenters"),
        "NodePool": job.get("NodePool", "default"),
        "Multiregion": None,
        "Type": job.get("Type", "service"),
        "Priority": job.get("Priority", 50),
        "Periodic": bool(job.get("Periodic")),
        "ParameterizedJob": bool(job.get("ParameterizedJob")),
        "Stop": bool(job.get("Stop")),
        "Status": _job_status(fake, job),
        "StatusDescription": "",
        "JobSummary": _summary(fake, job),
        "CreateIndex": job["CreateIndex"],
        "ModifyIndex": job["ModifyIndex"],
        "JobModifyIndex": job["JobModifyIndex"],
        "SubmitTime": job.get("SubmitTime"),
    }


def _multierror(errors: Sequence[str]) -> str:
    """hashicorp/go-multierror's format, which Nomad returns for job validation failures."""
    head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
    return head + "\n" + "".join(f"\t* {e}\n" for e in errors) + "\n"


def _validate_job(job: Mapping[str, Any]) -> list[str]:
    """The part of ``structs.Job.Validate`` a scaling tool can trip over."""
    errors = []
    if job.get("Type", "service") not in ("service", "batch", "system", "sysbatch"):
        errors.append(f"Invalid job type: {job.get('Type')!r}")
    if not job.get("TaskGroups"):
        errors.append("Missing job task groups")
    for tg in job.get("TaskGroups") or []:
        name = tg.get("Name") or ""
        if not name:
            errors.append("Job task group 1 missing name")
        if not tg.get("Tasks"):
            errors.append(f"Task group {name} validation failed: Missing tasks for task group")
        count = tg.get("Count", 1)
        if count is not None and count < 0:
            errors.append(f"Task group {name} validation failed: Task group count can't be negative")
        scaling = tg.get("Scaling")
        if scaling:
            lo, hi = int(scaling.get("Min") or 0), scaling.get("Max")
            if hi is None:
                errors.append(f"Task group {name} validation failed: Scaling policy invalid: missing max")
            elif hi < lo:
                errors.append(
                    f"Task group {name} validation failed: Scaling policy invalid: maximum count must not be less "
                    "than minimum count"
                )
            elif count is not None and count > hi:
                errors.append(
                    f"Task group {name} validation failed: Scaling policy invalid: task group count must not be "
                    "greater than maximum count in scaling policy"
                )
            elif count is not None and count < lo:
                errors.append(
                    f"Task group {name} validation failed: Scaling policy invalid: task group count must not be "
                    "less than minimum count in scaling policy"
                )
        for task in tg.get("Tasks") or []:
            if not task.get("Driver"):
                errors.append(f"Task group {name} validation failed: Task {task.get('Name')} missing driver")
    return errors


# --------------------------------------------------------------------------------------------- HCL → JSON


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` for the forms jobspecs use ("30s", "1m30s", "500ms") → nanoseconds."""
    text = text.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("empty duration")
        return 0
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return int(total)


_DURATION_KEYS = {
    "kill_timeout",
    "shutdown_delay",
    "stop_after_client_disconnect",
    "max_client_disconnect",
    "min_healthy_time",
    "healthy_deadline",
    "progress_deadline",
    "stagger",
    "interval",
    "timeout",
    "delay",
    "max_delay",
    "splay",
}
_RENAMES = {
    "restart": "RestartPolicy",
    "reschedule": "ReschedulePolicy",
    "constraint": "Constraints",
    "affinity": "Affinities",
    "spread": "Spreads",
    "network": "Networks",
    "service": "Services",
    "check": "Checks",
    "template": "Templates",
    "artifact": "Artifacts",
    "device": "Devices",
    "volume": "Volumes",
    "volume_mount": "VolumeMounts",
    "cpu": "CPU",
    "memory": "MemoryMB",
    "memory_max": "MemoryMaxMB",
    "id": "ID",
}
_LIST_BLOCKS = {"constraint", "affinity", "spread", "network", "service", "check", "template", "artifact", "device"}


class JobspecError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(400, f"Failed to parse job: {message}")


def parse_jobspec(text: str, *, canonicalize: bool = False, namespace: str = "default") -> dict[str, Any]:
    """``POST /v1/jobs/parse``: HCL jobspec → Nomad's JSON job (python-hcl2; the fields tools read).

    HCL2 functions and variables are not evaluated; ``${…}`` runtime interpolation stays a string, as in Nomad.
    """
    import hcl2  # dev dependency; imported here so the fake starts without it when parse is not used

    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False)
    try:
        doc = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # lark raises several unrelated error classes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobspecError(first) from None
    jobs = doc.get("job") or []
    if len(jobs) != 1 or not isinstance(jobs[0], dict) or len(jobs[0]) != 1:
        raise JobspecError("jobspec must contain exactly one job block")
    ((job_id, body),) = jobs[0].items()
    body = _clean(body)
    job: dict[str, Any] = {
        "ID": job_id,
        "Name": body.get("name", job_id),
        "Namespace": body.get("namespace", namespace),
        "Region": body.get("region", "global"),
        "Type": body.get("type", "service"),
        "Priority": body.get("priority", 50),
        "Datacenters": body.get("datacenters"),
        "NodePool": body.get("node_pool"),
        "AllAtOnce": False,
        "Meta": _first(body.get("meta")),
        "Constraints": _constraints(body.get("constraint")),
        "Affinities": _convert_list(body.get("affinity")),
        "Spreads": _convert_list(body.get("spread")),
        "Update": _convert_block(body.get("update")),
        "Periodic": _convert_block(body.get("periodic")),
        "ParameterizedJob": _convert_block(body.get("parameterized")),
        "Reschedule": _convert_block(body.get("reschedule")),
        "Migrate": _convert_block(body.get("migrate")),
        "TaskGroups": [_task_group(name, tg) for name, tg in _labelled(body.get("group"))] or None,
        "Stop": False,
        "Status": "",
        "StatusDescription": "",
        "Stable": False,
        "Version": 0,
        "CreateIndex": 0,
        "ModifyIndex": 0,
        "JobModifyIndex": 0,
        "SubmitTime": None,
        "ParentID": "",
        "Payload": None,
    }
    if canonicalize:
        job["Datacenters"] = job["Datacenters"] or ["*"]
        job["NodePool"] = job["NodePool"] or "default"
        if job["Type"] == "service" and job["Update"] is None:
            job["Update"] = {
                "Stagger": 30 * 10**9,
                "MaxParallel": 1,
                "HealthCheck": "checks",
                "MinHealthyTime": 10 * 10**9,
                "HealthyDeadline": 300 * 10**9,
                "ProgressDeadline": 600 * 10**9,
                "AutoRevert": False,
                "AutoPromote": False,
                "Canary": 0,
            }
        for tg in job["TaskGroups"] or []:
            tg["Count"] = 1 if tg["Count"] is None else tg["Count"]
            if tg.get("Scaling") and tg["Scaling"].get("Min") is None:
                tg["Scaling"]["Min"] = tg["Count"]
            for task in tg["Tasks"] or []:
                task["KillTimeout"] = task["KillTimeout"] if task["KillTimeout"] is not None else 5 * 10**9
    return job


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _first(blocks: Any) -> Any:
    if isinstance(blocks, list):
        return blocks[0] if blocks else None
    return blocks


def _labelled(blocks: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in blocks or []:
        yield from block.items()


def _camel(key: str) -> str:
    return _RENAMES.get(key) or "".join(part[:1].upper() + part[1:] for part in key.split("_"))


def _convert_value(key: str, value: Any) -> Any:
    if key in _DURATION_KEYS and isinstance(value, str):
        try:
            return _parse_go_duration(value)
        except ValueError:
            raise JobspecError(f"{key}: invalid duration {value!r}") from None
    return value


def _convert_block(block: Any) -> Any:
    block = _first(block)
    if not isinstance(block, dict):
        return block
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key == "constraint":
            out["Constraints"] = _constraints(value)
        elif key in _LIST_BLOCKS:
            out[_camel(key)] = _convert_list(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[_camel(key)] = _convert_block(value)
        else:
            out[_camel(key)] = _convert_value(key, value)
    return out


def _convert_list(blocks: Any) -> list[Any] | None:
    if not blocks:
        return None
    out = []
    for block in blocks:
        if isinstance(block, dict) and len(block) == 1 and isinstance(next(iter(block.values())), dict):
            ((label, body),) = block.items()  # a labelled block such as device "nvidia/gpu" {}
            converted = _convert_block(body)
            converted.setdefault("Name", label)
            out.append(converted)
        else:
            out.append(_convert_block(block))
    return out


def _constraints(blocks: Any) -> list[dict[str, Any]] | None:
    if not blocks:
        return None
    out = []
    for block in blocks:
        if block.get("distinct_hosts") is not None:
            out.append({"LTarget": "", "RTarget": str(block["distinct_hosts"]).lower(), "Operand": "distinct_hosts"})
        elif "distinct_property" in block:
            value = str(block.get("value", ""))
            out.append({"LTarget": block["distinct_property"], "RTarget": value, "Operand": "distinct_property"})
        else:
            out.append(
                {
                    "LTarget": block.get("attribute", ""),
                    "RTarget": str(block.get("value", "")),
                    "Operand": block.get("operator", "="),
                }
            )
    return out


def _task_group(name: str, body: dict[str, Any]) -> dict[str, Any]:
    scaling = _first(body.get("scaling"))
    return {
        "Name": name,
        "Count": body.get("count"),
        "Scaling": (
            {
                "Min": scaling.get("min"),
                "Max": scaling.get("max"),
                "Enabled": scaling.get("enabled", True),
                "Policy": _first(scaling.get("policy")),
                "Type": "horizontal",
            }
            if isinstance(scaling, dict)
            else None
        ),
        "Constraints": _constraints(body.get("constraint")),
        "Affinities": _convert_list(body.get("affinity")),
        "Spreads": _convert_list(body.get("spread")),
        "Networks": _convert_list(body.get("network")),
        "Services": _convert_list(body.get("service")),
        "RestartPolicy": _convert_block(body.get("restart")),
        "ReschedulePolicy": _convert_block(body.get("reschedule")),
        "Update": _convert_block(body.get("update")),
        "Migrate": _convert_block(body.get("migrate")),
        "EphemeralDisk": _convert_block(body.get("ephemeral_disk")),
        "Meta": _first(body.get("meta")),
        "ShutdownDelay": _convert_value("shutdown_delay", body.get("shutdown_delay")),
        "Tasks": [_task(tname, tbody) for tname, tbody in _labelled(body.get("task"))],
    }


def _task(name: str, body: dict[str, Any]) -> dict[str, Any]:
    resources = _first(body.get("resources"))
    res: dict[str, Any] | None = None
    if isinstance(resources, dict):
        res = {}
        for key, value in resources.items():
            res["Devices" if key == "device" else _camel(key)] = (
                _convert_list(value) if key == "device" else _convert_value(key, value)
            )
    lifecycle = _first(body.get("lifecycle"))
    kill_timeout = body.get("kill_timeout")
    return {
        "Name": name,
        "Driver": body.get("driver"),
        "User": body.get("user", ""),
        "Config": _first(body.get("config")),
        "Env": _first(body.get("env")),
        "Meta": _first(body.get("meta")),
        "KillTimeout": _convert_value("kill_timeout", kill_timeout) if kill_timeout is not None else None,
        "KillSignal": body.get("kill_signal", ""),
        "ShutdownDelay": _convert_value("shutdown_delay", body.get("shutdown_delay", "0s")),
        "Lifecycle": (
            {"Hook": lifecycle.get("hook"), "Sidecar": bool(lifecycle.get("sidecar", False))}
            if isinstance(lifecycle, dict)
            else None
        ),
        "Templates": [_template(t) for t in body.get("template") or []] or None,
        "Artifacts": _convert_list(body.get("artifact")),
        "Services": _convert_list(body.get("service")),
        "Constraints": _constraints(body.get("constraint")),
        "Affinities": _convert_list(body.get("affinity")),
        "Resources": res,
        "LogConfig": _convert_block(body.get("logs")),
        "Leader": bool(body.get("leader", False)),
    }


def _template(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "EmbeddedTmpl": block.get("data", ""),
        "SourcePath": block.get("source", ""),
        "DestPath": block.get("destination", ""),
        "ChangeMode": block.get("change_mode", "restart"),
        "ChangeSignal": block.get("change_signal", ""),
        "Envvars": bool(block.get("env", False)),
        "Perms": block.get("perms", "0644"),
        "Splay": _convert_value("splay", block.get("splay", "5s")),
        "ErrMissingKey": bool(block.get("error_on_missing_key", False)),
    }
