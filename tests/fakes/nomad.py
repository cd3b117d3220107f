"""A fake Nomad HTTP API for tests, faithful to ``../shared/nomad-api/`` and ``docs/nomad-facts.md``.

Why a fake: no Nomad binary can be installed on our machines, so every subsystem (the Nomad target, the
overrides' Variables store, jobspec deploy) tests against this server over real HTTP, through python-nomad.

What it mimics (and tests rely on):

* Plain-text error bodies (``Content-Type: text/plain``), the exact messages of API.md and Nomad's source;
  JSON otherwise. ``X-Nomad-Index`` on reads and writes, ``X-Nomad-KnownLeader``/``X-Nomad-LastContact`` on
  reads, blocking reads (``?index=&wait=``, ``400 Invalid wait time``/``Invalid index``).
* ACLs (off unless ``enable_acl``): ``X-Nomad-Token`` or ``Authorization: Bearer``; unknown token →
  ``403 ACL token not found``; missing capability → ``403 Permission denied``. Checked where Nomad checks them:
  ``Job.Scale`` authorizes before validating the body; register and plan validate (admission) first.
* ``?namespace=`` (``*`` on lists) and ``?region=`` (another region → ``500 No path to region``).
* Jobs: list, read, register (``PreserveCounts``, ``EnforceIndex``, validation → ``500 1 error occurred:…``,
  implied constraints added on admission), plan (``Diff``, annotations, placement failures; nothing stored),
  deregister (``?purge``), allocations (``200 []`` for unknown jobs), evaluations, summary (``Queued``), latest
  deployment (``null``), scale status (``JobModifyIndex`` is the job's ModifyIndex) and scale (every check of
  ``Job.Scale`` in its order; always a new Version and JobModifyIndex, even for the same count). The
  namespace's allocations (``GET /v1/allocations``: ``prefix``, ``task_states``; the same stubs as a job's).
* **Scheduling.** Every write creates a ``pending`` evaluation that the fake's scheduler processes at once
  (``auto_schedule``; set it to False to keep evaluations pending until ``process_evals()``). The reconciler
  follows NOTES.md §C (scale-out fills the lowest free name index, scale-in stops the highest), places each
  allocation on a *node* (ready, eligible, not draining, in the job's node pool and datacenters, passing
  drivers, constraints incl. ``${device.attr.memory}``, ``distinct_hosts``, GPU devices, cpu and memory).
  What cannot be placed is **queued**: the evaluation completes with ``FailedTGAllocs``,
  ``QueuedAllocations`` and a ``BlockedEval``, the job summary shows ``Queued``, and the blocked evaluation is
  retried when a node registers, becomes ready or eligible, or capacity is freed (nomad-facts §1).
  Failed allocations are **rescheduled after their delay** (the group's ``reschedule`` policy; service default
  30s exponential): until then they count towards the group's count and nothing is placed for them, as in
  Nomad; a delayed ``alloc-failure`` evaluation (``WaitUntil``) runs once ``fake.clock`` passes it.
* **Nodes** (tests/fakes/nomad_nodes.py): the registry, ``GET /v1/nodes``, ``/v1/node/:id`` and
  ``/v1/node/:id/allocations``. Decision on capacity: ``auto_nodes = True`` (the default) gives an
  "infinite fleet": when no registered node fits an allocation, the fake registers a made-to-measure T4 client
  (``auto-node-N``) for it, so tests that do not care about nodes keep their old behaviour. Set
  ``fake.auto_nodes = False`` for a finite fleet: only nodes added with ``add_node`` exist and allocations queue
  when they run out. Auto nodes are still T4s: a constraint no T4 meets leaves allocations queued either way.
* **Node writes** (tests/fakes/nomad_drain.py): ``POST /v1/node/:id/drain`` with the drainer (allocations migrate
  after ``drain_stop_after`` seconds of ``wall_clock``, ``stuck_allocs`` never stop, deadlines force completion,
  the node stays ineligible, LastDrain as ``updateNodeDrainImpl`` keeps it), ``/eligibility`` and ``/purge``.
* **Strict mode** (``FakeNomad(strict=True)``, fixture ``strict_nomad``; tests/fakes/nomad_strict.py): stopping
  allocations keep running for ``shutdown_delay`` + ``kill_timeout``, pending ones start and turn healthy after
  ``migrate.min_healthy_time``, drains move ``migrate.max_parallel`` allocations at a time and wait for healthy
  replacements, nodes whose heartbeats stop go ``disconnected`` (allocations ``unknown``) or ``down`` after the
  heartbeat TTL + grace. Any mode: ``fail_node_allocations(kind)`` breaks ``GET /v1/node/:id/allocations``.
* Variables: read/write/delete with ``?cas=`` (409 with the current variable as JSON, Items included; delete →
  204), the body's Namespace winning for writes, Nomad's path rule and 64 KiB size cap (``RPC Error:: 400,…``),
  list by prefix, and locks (``?lock-acquire|renew|release``, TTL and lock-delay on ``fake.clock``).
* Fault injection: ``fail_next`` (status + body for the next N matching requests), ``delay_next`` (hold the
  response until ``release()``, after applying the request or not: a client timeout), deployments
  (``set_deployment_active``, ``deploy_on_scale``) and allocation client statuses.
* Every request is recorded (``fake.requests``) with method, path, query, parsed body and headers.

Python API (stable; other subsystems' tests use it). Use the ``fake_nomad`` fixture (tests/fixtures/nomad.py)
or ``with FakeNomad() as fake:``; ``fake.address`` is ``http://127.0.0.1:<port>``.

* Seed: ``add_job(id, groups={"workers": 3}, scaling={"workers": (1, 10)}, namespace=, job_type=,
  alloc_status=)``, ``add_sample_job()`` (job-read sample verbatim), ``register(job_json)``,
  ``add_alloc(job, group, client_status=, desired_status=)``, ``put_variable(path, items)``,
  ``namespaces`` (a set), ``healthy``, ``leader``, ``job_max_count``.
* Nodes: ``add_node(name, datacenter=, node_pool=, node_class=, status=, eligibility=, attributes=, meta=,
  gpus=, gpu_memory_mib=, cpu_shares=, memory_mb=, instance_id=, …)``, ``remove_node(id)``,
  ``set_node_status(id, status)``, ``set_node_eligibility(id, bool)``, ``node(id)``, ``node_by_name(name)``,
  ``node_list()``, ``auto_nodes``.
* Drive: ``set_alloc_status(job, status, group=, only=, limit=)``, ``set_deployment_active(job, bool)``,
  ``deploy_on_scale``, ``new_alloc_status``, ``clock`` (lock TTLs and reschedule delays), ``auto_schedule``,
  ``process_evals()``; drains: ``wall_clock`` (epoch seconds of drain times), ``drain_stop_after``,
  ``stuck_allocs``, ``progress_drains()``/``progress()``. Strict: ``strict_drain``, ``stop_delays``,
  ``alloc_lifecycle``, ``heartbeat_ttl``/``heartbeat_grace``, ``alloc_start_s``, ``max_kill_timeout_s``,
  ``stop_heartbeats(id)``, ``resume_heartbeats(id)``, ``heartbeats_stopped(id)``, ``stopping_until(alloc_id)``;
  ``add_job(..., migrate_max_parallel=, min_healthy_time=, shutdown_delay=, kill_timeout=, lost_after=,
  replace_on_disconnect=)``. ``fail_node_allocations(kind, node_id=, times=)``,
  ``clear_node_allocation_faults()``. tests/fakes/cloud.py links a moto Auto Scaling group to the nodes.
* Faults: ``fail_next(status, n, body=, method=, path=)``, ``delay_next(n, apply=, method=, path=)``,
  ``release()``, ``clear_faults()``. ACL: ``enable_acl(management_token)``,
  ``add_token(secret, jobs={ns: [caps]}, variables={ns: [caps]}, node="read"|"write")``, ``disable_acl()``.
* Inspect: ``job(id)``, ``group_count(id, group)``, ``live_count(id, group)``, ``queued(id, group)``,
  ``allocations(id)``, ``evaluations(id)``, ``events(id, group)``, ``variable(path)``, ``requests`` /
  ``requests_to(method, path)`` (``RecordedRequest`` with ``method, path, query, body, raw_body, headers,
  status`` and ``header(name)``), ``wait_for_request``, ``clear_requests()``. ``parse_jobspec(hcl)`` is the
  parse endpoint's converter.

Not modelled: scoring (the first feasible node in name order wins), preemption, spread, affinities, ports,
deployments driven by allocation health, canaries, garbage collection, pagination, hiding a variable's Items
from tokens that cannot read it.
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
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.nomad_diff import job_diff
from tests.fakes.nomad_drain import DRAIN_ROUTES, NodeDrainer
from tests.fakes.nomad_nodes import (
    NODE_ROUTES,
    NodeRegistry,
    Usage,
    alloc_metric,
    auto_node_spec,
    build_node,
    datacenter_matches,
    device_requests,
    feasibility,
    group_resources,
    has_room,
    record_failure,
)
from tests.fakes.nomad_strict import StrictClients

SAMPLES = Path(__file__).with_name("nomad_samples")

ACTIVE_DEPLOYMENT = {"running", "paused", "blocked", "unblocking", "initializing", "pending"}
LIVE_CLIENT = {"pending", "running"}
TERMINAL_CLIENT = {"complete", "failed", "lost"}
SCALING_EVENTS_KEPT = 20  # structs.JobTrackedScalingEvents
# What an allocation's share of its node's usage depends on, besides its resources on record (kept by _node_usage).
_ALLOC_STAMP = itemgetter("ID", "DesiredStatus", "ClientStatus", "NodeID", "TaskGroup")

JOB_CAPS = ("list-jobs", "parse-job", "plan-job", "read-job", "read-job-scaling", "scale-job", "submit-job")
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
    node: str | None = None  # node policy: "read" | "write" | None (deny)


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


class FakeNomad(NodeRegistry, NodeDrainer, StrictClients):
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
        strict: bool = False,
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
        self.nodes: dict[str, dict[str, Any]] = {}
        self.auto_nodes = True  # no registered node fits → register a made-to-measure one ("infinite fleet")
        self._init_drainer()  # drain, eligibility and purge (tests/fakes/nomad_drain.py)
        self._init_strict(strict)  # clients that take time, drains by max_parallel, heartbeats (nomad_strict.py)
        self.auto_schedule = True  # evaluations are processed when created (False: wait for process_evals())
        self.job_max_count: int | None = None  # the server's job_max_count (Job.Scale answers 500 above it)
        self.queued_counts: dict[tuple[str, str], dict[str, int]] = {}  # job summary Queued per group
        self._auto_node_ids: set[str] = set()
        self._eval_due: dict[str, float] = {}  # delayed evaluations → fake.clock() time they run
        self._failed_at: dict[str, float] = {}  # allocation ID → fake.clock() time it failed
        self._alloc_res: dict[str, dict[str, Any]] = {}  # allocation ID → cpu, memory, GPU instance IDs
        self._usage_shares: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}  # _node_usage's kept shares
        self._unblocking = False
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.clock: Callable[[], float] = time.monotonic  # seconds; variable lock TTLs use it (tests replace it)
        self.now_ns: Callable[[], int] = _now_ns  # wall clock of ScalingEvent.Time (tests replace it)
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
        node: str | None = None,
    ) -> None:
        """A client token: ``jobs={"default": ["read-job", "scale-job"]}``, ``variables={"default": ["read"]}``,
        ``node="read"`` (or ``"write"``, which implies read; None denies node endpoints)."""
        for caps, known in ((jobs or {}, JOB_CAPS), (variables or {}, VAR_CAPS)):
            unknown = {c for cs in caps.values() for c in cs} - set(known)
            if unknown:
                raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {', '.join(known)}")
        if node not in (None, "read", "write"):
            raise ValueError("node policy must be 'read', 'write' or None")
        with self._cond:
            if self._acl is None:
                raise RuntimeError("call enable_acl first")
            self._acl[secret] = _Token(
                secret,
                False,
                {ns: set(c) for ns, c in (jobs or {}).items()},
                {ns: set(c) for ns, c in (variables or {}).items()},
                node,
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
            self._alloc_list_faults.clear()

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
            for i in range(len(self.requests) - 1, -1, -1):  # from the newest: it is among the last few
                if self.requests[i] is req:  # recorded once (_record)
                    self.requests[i] = dataclasses.replace(req, status=status)
                    break
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
        node_pool: str = "default",
        datacenters: Sequence[str] = ("dc1",),
        gpus: int = 0,
        gpu_constraints: Sequence[Mapping[str, str]] = (),
        distinct_hosts: bool = False,
        migrate_max_parallel: int | None = None,
        min_healthy_time: float | None = None,
        shutdown_delay: float | None = None,
        kill_timeout: float | None = None,
        lost_after: float | None = None,
        replace_on_disconnect: bool | None = None,
    ) -> dict[str, Any]:
        """Store a job built from the ``job-read`` sample: ``groups={"workers": 3}, scaling={"workers": (1, 10)}``.

        ``gpus=1, distinct_hosts=True, node_pool="gpu"`` makes it a forescale GPU pool (one allocation per node,
        ``device "nvidia/gpu"`` with ``gpu_constraints``). Its allocations are placed on nodes (queued if none
        fits) and get ClientStatus ``alloc_status``. Returns a copy of the stored job.

        Each group's ``migrate { max_parallel, min_healthy_time }``, ``shutdown_delay``, ``disconnect { lost_after,
        replace }`` and the task's ``kill_timeout`` (seconds) matter in strict mode (tests/fakes/nomad_strict.py).
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
            if gpus:
                constraints = [dict(c) for c in gpu_constraints] or None
                device = {"Name": "nvidia/gpu", "Count": gpus, "Constraints": constraints}
                task["Resources"] = {"CPU": 200, "MemoryMB": 256, "Devices": [device]}
            if distinct_hosts:
                tg["Constraints"] = [{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}]
            if scaling and name in scaling:
                lo, hi = scaling[name]
                tg["Scaling"] = _scaling_block(job_id, namespace, name, lo, hi)
            if migrate_max_parallel is not None or min_healthy_time is not None:
                tg["Migrate"] = {
                    "MaxParallel": 1 if migrate_max_parallel is None else migrate_max_parallel,
                    "HealthCheck": "checks",
                    "HealthyDeadline": 300 * 10**9,
                    "MinHealthyTime": int((10.0 if min_healthy_time is None else min_healthy_time) * 1e9),
                }
            if shutdown_delay is not None:
                tg["ShutdownDelay"] = int(shutdown_delay * 1e9)
            if kill_timeout is not None:
                task["KillTimeout"] = int(kill_timeout * 1e9)
            if lost_after is not None or replace_on_disconnect is not None:
                tg["Disconnect"] = {
                    "LostAfter": int((lost_after or 0) * 1e9),
                    "Replace": replace_on_disconnect,
                    "StopOnClientAfter": None,
                    "Reconcile": "best_score",
                }
            task_groups.append(tg)
        base.update(ID=job_id, Name=job_id, Namespace=namespace, Type=job_type, TaskGroups=task_groups)
        base.update(Periodic=None, ParameterizedJob=None, Stop=False, Version=0, NodePool=node_pool)
        base["Datacenters"] = list(datacenters)
        if job_type != "service":
            base["Update"] = None
        with self._cond:
            self.namespaces.add(namespace)
            stored = self._store_job(base, namespace, preserve_counts=False)
            evaluation = self._new_eval(stored, "job-register")
            if evaluation is not None:
                self._process_eval(evaluation)  # seeding: placed now even when auto_schedule is off
            for alloc in self.allocs[(namespace, job_id)]:
                alloc["ClientStatus"] = alloc_status
                alloc["ClientDescription"] = _client_description(alloc_status)
                if alloc_status == "running":
                    self._alloc_running(alloc, healthy=True)  # it ran before the story: healthy (strict mode)
            self._refresh_status(stored)
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
            stored = self._store_job(dict(job), ns, preserve_counts=preserve_counts)
            self._submit(self._new_eval(stored, "job-register"))
            return copy.deepcopy(stored)

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
        """running + pending allocations with DesiredStatus run: the group's *placed* allocations."""
        return sum(
            1
            for a in self.allocations(job_id, namespace)
            if a["TaskGroup"] == group and a["DesiredStatus"] == "run" and a["ClientStatus"] in LIVE_CLIENT
        )

    def queued(self, job_id: str, group: str, namespace: str = "default") -> int:
        """The job summary's ``Queued`` for the group: allocations Nomad could not place."""
        with self._cond:
            return int(self.queued_counts.get((namespace, job_id), {}).get(group, 0))

    def evaluations(self, job_id: str, namespace: str = "default") -> list[dict[str, Any]]:
        """The job's evaluations, oldest first (as ``GET /v1/job/:id/evaluations`` lists them)."""
        with self._cond:
            mine = [e for e in self.evals.values() if (e["Namespace"], e["JobID"]) == (namespace, job_id)]
            return copy.deepcopy(sorted(mine, key=lambda e: e["CreateIndex"]))

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
            if client_status == "running":
                self._alloc_running(alloc, healthy=True)
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
            ended = False
            for alloc in sorted(self.allocs.get((namespace, job_id), []), key=lambda a: _name_index(a["Name"])):
                if limit is not None and changed >= limit:
                    break
                if alloc["DesiredStatus"] != "run" or (group and alloc["TaskGroup"] != group):
                    continue
                if alloc.get("NextAllocation"):
                    continue  # already replaced
                if only and alloc["ClientStatus"] != only:
                    continue
                ended |= status in TERMINAL_CLIENT and alloc["ClientStatus"] not in TERMINAL_CLIENT
                alloc["ClientStatus"] = status
                alloc["ClientDescription"] = _client_description(status)
                alloc["ModifyIndex"] = index
                alloc["ModifyTime"] = _now_ns()
                if status == "running":
                    self._alloc_running(alloc)
                if status == "failed":
                    self._failed_at[alloc["ID"]] = self.clock()
                changed += 1
            job = self.jobs.get((namespace, job_id))
            if job is not None and changed:
                if ended:  # Node.UpdateAlloc: an evaluation for the job (the reschedule or replacement)
                    self._submit(self._new_eval(job, "alloc-failure" if status == "failed" else "alloc-stop"))
                    self._unblock()  # capacity freed
                self._refresh_status(job)
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

    def _store_job(
        self, job: dict[str, Any], namespace: str, *, preserve_counts: bool, new_version: bool = False
    ) -> dict[str, Any]:
        """``upsertJobImpl``: a new Version and JobModifyIndex when the *submitted* spec changed (or always, for
        ``Job.Scale``: ``new_version``); ``PreserveCounts`` copies the live counts in after that comparison."""
        key = (namespace, job["ID"])
        existing = self.jobs.get(key)
        job = admit_job(job, namespace, self.region)
        if existing is not None and not new_version and _spec(existing) == _spec(job):
            return existing  # Register of an unchanged spec writes only a new evaluation
        if preserve_counts and existing is not None:
            for tg in job.get("TaskGroups") or []:
                old = _find_group(existing, tg["Name"])
                if old is not None:
                    tg["Count"] = old["Count"]
        index = self._bump()
        job["ModifyIndex"] = index
        job["JobModifyIndex"] = index
        if existing is None:
            job.update(CreateIndex=index, Version=0, SubmitTime=_now_ns(), Status="pending")
        else:
            job["CreateIndex"] = existing["CreateIndex"]
            job.update(Version=int(existing.get("Version", 0)) + 1, SubmitTime=_now_ns())
            job["Status"] = existing.get("Status", "pending")
        self.jobs[key] = job
        self.allocs.setdefault(key, [])
        queued = self.queued_counts.setdefault(key, {})
        for tg in job.get("TaskGroups") or []:
            queued.setdefault(tg["Name"], 0)
        return job

    def _new_eval(self, job: dict[str, Any], triggered_by: str, **extra: Any) -> dict[str, Any] | None:
        """A ``pending`` evaluation (Nomad writes evaluations pending; the scheduler completes them)."""
        if job.get("Periodic") or job.get("ParameterizedJob"):
            return None  # Nomad creates no eval for periodic or parameterized jobs
        now = _now_ns()
        index = self._bump()
        evaluation = {
            "ID": _uuid(),
            "Namespace": job["Namespace"],
            "Priority": job.get("Priority", 50),
            "Type": job.get("Type", "service"),
            "TriggeredBy": triggered_by,
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "NodeID": "",
            "NodeModifyIndex": 0,
            "DeploymentID": "",
            "Status": "pending",
            "StatusDescription": "",
            "Wait": 0,
            "WaitUntil": None,
            "NextEval": "",
            "PreviousEval": "",
            "BlockedEval": "",
            "RelatedEvals": None,
            "FailedTGAllocs": None,
            "ClassEligibility": None,
            "QuotaLimitReached": "",
            "EscapedComputedClass": False,
            "AnnotatePlan": False,
            "QueuedAllocations": None,
            "LeaderACL": "",
            "SnapshotIndex": 0,
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        evaluation.update(extra)
        self.evals[evaluation["ID"]] = evaluation
        return evaluation

    def _submit(self, evaluation: dict[str, Any] | None) -> None:
        """Hand an evaluation to the scheduler: processed now unless ``auto_schedule`` is off (or it waits)."""
        if evaluation is not None and self.auto_schedule and evaluation["ID"] not in self._eval_due:
            self._process_eval(evaluation)

    def process_evals(self) -> int:
        """Run every pending evaluation that is due (delayed reschedules whose time came, or all pending ones
        when ``auto_schedule`` is off), oldest first. Returns how many ran."""
        with self._cond:
            ran = 0
            now = self.clock()
            for evaluation in sorted(self.evals.values(), key=lambda e: e["CreateIndex"]):
                if evaluation["Status"] != "pending":
                    continue
                due = self._eval_due.get(evaluation["ID"])
                if due is not None and due > now:
                    continue
                if due is None and self.auto_schedule:
                    continue  # processed when it was created; only the scheduler's own delayed evals wait
                self._eval_due.pop(evaluation["ID"], None)
                self._process_eval(evaluation)
                ran += 1
            return ran

    def _run_due(self) -> None:
        """Delayed evaluations (reschedules) whose ``WaitUntil`` passed on ``fake.clock`` run before a request."""
        if not self._eval_due or not self.auto_schedule:
            return
        now = self.clock()
        for eval_id, due in sorted(self._eval_due.items(), key=lambda kv: kv[1]):
            if due <= now:
                del self._eval_due[eval_id]
                evaluation = self.evals.get(eval_id)
                if evaluation is not None and evaluation["Status"] == "pending":
                    self._process_eval(evaluation)

    def _process_eval(self, evaluation: dict[str, Any]) -> None:
        """The scheduler (generic_sched.go) for one evaluation: reconcile, place on nodes, set the eval status,
        the job summary's ``Queued`` and at most one blocked evaluation per job (nomad-facts §1)."""
        key = (evaluation["Namespace"], evaluation["JobID"])
        job = self.jobs.get(key)
        was_blocked = evaluation["Status"] == "blocked"
        if job is None:
            evaluation.update(Status="complete", ModifyIndex=self._bump(), ModifyTime=_now_ns())
            return
        queued, failed, _placed = self._reconcile(job, evaluation)
        summary = self.queued_counts.setdefault(key, {})
        index = self._bump()
        evaluation.update(SnapshotIndex=index - 1, ModifyIndex=index, ModifyTime=_now_ns())
        if failed and was_blocked:
            # ReblockEval: still blocked, QueuedAllocations untouched; only the placed allocs (Queued-- per insert,
            # done in _new_alloc) lowered Queued.
            evaluation["FailedTGAllocs"] = failed
        else:
            evaluation.update(Status="complete", QueuedAllocations=dict(queued), FailedTGAllocs=failed or None)
            summary.update(queued)
            if failed:
                blocked = self._new_eval(
                    job,
                    "queued-allocs",
                    Status="blocked",
                    StatusDescription="created to place remaining allocations",
                    PreviousEval=evaluation["ID"],
                    FailedTGAllocs=copy.deepcopy(failed),
                )
                assert blocked is not None
                evaluation["BlockedEval"] = blocked["ID"]
                self._cancel_blocked(key, keep=blocked["ID"], reason="")
            else:
                self._cancel_blocked(key, keep=evaluation["ID"], reason=f'evaluation "{evaluation["ID"]}" successful')
        self._refresh_status(job)

    def _cancel_blocked(self, key: tuple[str, str], *, keep: str, reason: str) -> None:
        for other in self.evals.values():
            if other["ID"] == keep or other["Status"] != "blocked" or (other["Namespace"], other["JobID"]) != key:
                continue
            other.update(Status="canceled", ModifyIndex=self._bump(), ModifyTime=_now_ns())
            other["StatusDescription"] = reason or "evaluation superseded by a newer blocked evaluation"

    def _unblock(self) -> None:
        """A node became usable or capacity was freed: blocked evaluations run again (BlockedEvals.Unblock)."""
        if not self.auto_schedule or self._unblocking:
            return
        self._unblocking = True
        try:
            for evaluation in sorted(self.evals.values(), key=lambda e: e["CreateIndex"]):
                if evaluation["Status"] == "blocked":
                    self._process_eval(evaluation)
        finally:
            self._unblocking = False

    def _reconcile(
        self, job: dict[str, Any], evaluation: Mapping[str, Any]
    ) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, int]]:
        """The reconciler (NOTES.md §C): stop the highest name indexes, replace lost/complete allocations, keep
        failed ones until their reschedule delay (reschedule later), and place the rest on feasible nodes.

        Returns (queued per group, AllocMetric per group that could not be fully placed, placed per group).
        """
        key = (job["Namespace"], job["ID"])
        allocs = self.allocs.setdefault(key, [])
        groups = {tg["Name"]: tg for tg in job.get("TaskGroups") or []}
        index = self.index
        stopped_any = False
        for alloc in allocs:
            if alloc["DesiredStatus"] == "run" and alloc["ClientStatus"] not in TERMINAL_CLIENT:
                alloc["JobVersion"] = job.get("Version", 0)  # an in-place update
            if alloc["DesiredStatus"] == "run" and (alloc["TaskGroup"] not in groups or job.get("Stop")):
                stopped_any |= self._stop_alloc(alloc, index)
        queued = {name: 0 for name in groups}
        failed: dict[str, dict[str, Any]] = {}
        placed = {name: 0 for name in groups}
        if job.get("Stop") or job.get("Periodic") or job.get("ParameterizedJob"):
            if stopped_any:
                self._unblock()
            return queued, failed, placed
        now = self.clock()
        usage = self._node_usage()
        for name, tg in groups.items():
            mine = [
                a for a in allocs
                if a["TaskGroup"] == name and a["DesiredStatus"] == "run" and not a.get("NextAllocation")
            ]  # fmt: skip
            untainted: list[dict[str, Any]] = []
            reschedule_now: list[dict[str, Any]] = []
            for alloc in mine:
                if alloc["ClientStatus"] == "unknown" and alloc["ID"] in self._replace_unknown:
                    reschedule_now.append(alloc)  # disconnected: replaced now, kept "unknown" (nomad_strict.py)
                elif alloc["ClientStatus"] in ("pending", "running", "unknown"):
                    untainted.append(alloc)
                elif alloc["ClientStatus"] == "failed":
                    due = self._reschedule_due(job, tg, alloc)
                    if due is not None and due <= now:
                        reschedule_now.append(alloc)
                    else:
                        untainted.append(alloc)  # reschedule later (or never): it still counts towards Count
                        if due is not None:
                            self._follow_up(job, alloc, due, evaluation)
            want = int(tg.get("Count") or 0)
            have = untainted + reschedule_now
            if len(have) > want:
                for alloc in sorted(have, key=lambda a: _name_index(a["Name"]), reverse=True)[: len(have) - want]:
                    stopped_any |= self._stop_alloc(alloc, index)
                    if alloc in reschedule_now:
                        reschedule_now.remove(alloc)
                    else:
                        untainted.remove(alloc)
            used = {_name_index(a["Name"]) for a in untainted + reschedule_now}
            placements: list[tuple[int, dict[str, Any] | None]] = [(_name_index(a["Name"]), a) for a in reschedule_now]
            i = 0
            for _ in range(want - len(untainted) - len(reschedule_now)):
                while i in used:
                    i += 1
                used.add(i)
                placements.append((i, None))
            metric: dict[str, Any] | None = None
            full: set[str] = set()  # nodes without room for one more of this group, in this pass
            for name_index, previous in placements:
                node, devices, attempt = self._select_node(job, tg, usage, full=full)
                if node is None:
                    queued[name] += 1
                    if metric is None:
                        metric = attempt
                    else:
                        metric["CoalescedFailures"] += 1
                    continue
                alloc = self._new_alloc(job, name, name_index, self.new_alloc_status, node, devices, previous)
                allocs.append(alloc)
                cpu, memory = group_resources(tg)
                usage.add(node["ID"], (job["Namespace"], job["ID"], name), cpu, memory, devices)
                placed[name] += 1
            if metric is not None:
                failed[name] = metric
        if stopped_any:
            self._unblock()
        return queued, failed, placed

    def _plan_placements(
        self, existing: Mapping[str, Any] | None, job: Mapping[str, Any]
    ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, Any]]]:
        """What the scheduler would do with ``job`` (plan's ``AnnotatePlan``), without changing anything:
        ``DesiredTGUpdates`` per group and the ``FailedTGAllocs`` of placements no node could take."""
        key = (job["Namespace"], job["ID"])
        allocs = self.allocs.get(key, []) if existing is not None else []
        usage = self._node_usage()
        updates: dict[str, dict[str, int]] = {}
        failed: dict[str, dict[str, Any]] = {}
        old_groups = {tg["Name"]: tg for tg in (existing or {}).get("TaskGroups") or []}
        for tg in job.get("TaskGroups") or []:
            name = tg["Name"]
            live = [
                a for a in allocs
                if a["TaskGroup"] == name and a["DesiredStatus"] == "run" and not a.get("NextAllocation")
                and a["ClientStatus"] in ("pending", "running", "unknown", "failed")
            ]  # fmt: skip
            count = int(tg.get("Count") or 0)
            kept = min(len(live), count)
            old = old_groups.get(name)
            row = dict.fromkeys(DESIRED_UPDATE_KEYS, 0)
            row["Stop"] = max(0, len(live) - count)
            row["Place"] = max(0, count - len(live))
            if old is not None and kept:
                if _spec_of(old.get("Tasks")) != _spec_of(tg.get("Tasks")):
                    row["DestructiveUpdate"] = kept
                elif _spec_of({**old, "Count": 0}) != _spec_of({**tg, "Count": 0}):
                    row["InPlaceUpdate"] = kept
                else:
                    row["Ignore"] = kept
            updates[name] = row
            metric: dict[str, Any] | None = None
            for _ in range(row["Place"]):
                node, devices, attempt = self._select_node(job, tg, usage, commit=False)
                if node is None:
                    if metric is None:
                        metric = attempt
                    else:
                        metric["CoalescedFailures"] += 1
                    continue
                cpu, memory = group_resources(tg)
                usage.add(node["ID"], (job["Namespace"], job["ID"], name), cpu, memory, devices)
            if metric is not None:
                failed[name] = metric
        for name in old_groups:
            if name not in updates:
                row = dict.fromkeys(DESIRED_UPDATE_KEYS, 0)
                row["Stop"] = sum(1 for a in allocs if a["TaskGroup"] == name and a["DesiredStatus"] == "run")
                updates[name] = row
        return updates, failed

    def _node_usage(self) -> Usage:
        """What every live allocation takes, per node. Every scheduling pass reads it whole (1000 jobs × 12
        allocations in benchmarks/scale.py), so each job's share is kept with the allocations' ID, statuses, node
        and group it was worked out from, and worked out again only when one of them changed. A share that needs
        the job's spec (an allocation placed without resources on record) is never kept."""
        usage = Usage()
        cpu_of, memory_of, devices_of, groups_of = usage.cpu, usage.memory, usage.devices, usage.groups
        kept = self._usage_shares
        for key, allocs in self.allocs.items():
            stamp = tuple(map(_ALLOC_STAMP, allocs))
            held = kept.get(key)
            if held is not None and held[0] == stamp:
                share = held[1]
            else:
                share, keep = self._job_usage(key, allocs)
                if keep:
                    kept[key] = (stamp, share)
                else:
                    kept.pop(key, None)
            for node, cpu, memory, devices, groups in share:
                cpu_of[node] = cpu_of.get(node, 0) + cpu
                memory_of[node] = memory_of.get(node, 0) + memory
                devices_of.setdefault(node, set()).update(devices)
                groups_of.setdefault(node, set()).update(groups)
        return usage

    def _job_usage(
        self, key: tuple[str, str], allocs: list[dict[str, Any]]
    ) -> tuple[list[tuple[str, int, int, set[str], set[tuple[str, str, str]]]], bool]:
        """One job's live allocations per node: (node, cpu, memory, GPU instance IDs, groups); and whether it
        depends on nothing but the allocations and their resources on record."""
        ns, job_id = key
        per_node: dict[str, tuple[int, int, set[str], set[tuple[str, str, str]]]] = {}
        keep = True
        for alloc in allocs:
            if alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] in TERMINAL_CLIENT:
                continue
            res = self._alloc_res.get(alloc["ID"]) or {}
            cpu, memory = res.get("cpu"), res.get("memory")
            if cpu is None or memory is None:
                keep = False
                cpu, memory = group_resources(_find_group(self.jobs.get(key) or {}, alloc["TaskGroup"]) or {})
            node = alloc["NodeID"]
            was_cpu, was_memory, devices, groups = per_node.get(node) or (0, 0, set(), set())
            devices.update(res.get("devices") or [])
            groups.add((ns, job_id, alloc["TaskGroup"]))
            per_node[node] = (was_cpu + cpu, was_memory + memory, devices, groups)
        return [(node, *row) for node, row in per_node.items()], keep

    def _select_node(
        self,
        job: Mapping[str, Any],
        tg: Mapping[str, Any],
        usage: Usage,
        *,
        commit: bool = True,
        full: set[str] | None = None,
    ) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
        """The first feasible ready+eligible node of the job's pool and datacenters (nodes in name order), or a
        made-to-measure one in ``auto_nodes`` mode. Returns (node, GPU instance IDs, the AllocMetric).

        ``full``: one scheduling pass's set of nodes found without room for one more allocation of ``tg`` (filled
        here). A pass's usage only grows, so they stay without room: its next placements skip them."""
        pool = str(job.get("NodePool") or "default")
        dcs = list(job.get("Datacenters") or ["*"])
        metric = alloc_metric(pool)
        in_pool = [n for n in self.nodes.values() if pool == "all" or n["NodePool"] == pool]
        metric["NodesInPool"] = len(in_pool)
        in_dcs = {dc: datacenter_matches(dc, dcs) for dc in {n["Datacenter"] for n in in_pool}}
        ready = sorted(
            (
                n for n in in_pool
                if n["Status"] == "ready" and n["SchedulingEligibility"] == "eligible" and n["DrainStrategy"] is None
                and in_dcs[n["Datacenter"]]
            ),
            key=lambda n: (n["Name"], n["ID"]),
        )  # fmt: skip
        for dc in sorted({n["Datacenter"] for n in ready}) or [d for d in dcs if "*" not in d][:1]:
            metric["NodesAvailable"][dc] = sum(1 for n in ready if n["Datacenter"] == dc)
        # First fit, quickly: a node without room for one more allocation fails `feasibility` whatever else holds,
        # so only nodes with room get the full check; the same node wins. The AllocMetric's reasons are read only
        # when no node fits: then every node is checked in full below, as the scheduler reports them.
        cpu, memory = group_resources(tg)
        gpus = sum(int(r.get("Count") or 1) for r in device_requests(tg))
        full = set() if full is None else full
        for node in ready:
            if node["ID"] in full:
                continue
            if not has_room(node, usage, cpu, memory, gpus):
                full.add(node["ID"])
            else:
                kind, _, devices = feasibility(job, tg, node, usage)
                if kind is None:
                    return node, devices, metric
        for node in ready:
            metric["NodesEvaluated"] += 1
            kind, why, devices = feasibility(job, tg, node, usage)
            if kind is None:
                return node, devices, metric
            assert why is not None
            record_failure(metric, node, kind, why)
        if self.auto_nodes:
            spec = auto_node_spec(job, tg)
            node = build_node(index=self._bump(), seq=len(self.nodes) + 1, name=f"auto-node-{len(self.nodes) + 1}",
                              **spec)  # fmt: skip
            kind, why, devices = feasibility(job, tg, node, usage)
            if kind is None:
                if commit:
                    self.nodes[node["ID"]] = node
                    self._auto_node_ids.add(node["ID"])
                return node, devices, metric
            assert why is not None
            metric["NodesInPool"] += 1  # the auto fleet's client was looked at like any other
            metric["NodesEvaluated"] += 1
            metric["NodesAvailable"][node["Datacenter"]] = metric["NodesAvailable"].get(node["Datacenter"], 0) + 1
            record_failure(metric, node, kind, why)  # no client of the auto fleet could run it either
        return None, [], metric

    def _reschedule_due(self, job: Mapping[str, Any], tg: Mapping[str, Any], alloc: Mapping[str, Any]) -> float | None:
        """When (``fake.clock`` seconds) a failed allocation is replaced, or None if its policy allows no more."""
        policy = tg.get("ReschedulePolicy") or job.get("Reschedule") or _default_reschedule(job)
        events = ((alloc.get("RescheduleTracker") or {}).get("Events")) or []
        failed_at = self._failed_at.get(alloc["ID"], self.clock())
        if not policy.get("Unlimited"):
            interval_s = int(policy.get("Interval") or 0) / 1e9
            recent = [e for e in events if not interval_s or e.get("_at", failed_at) >= failed_at - interval_s]
            if len(recent) >= int(policy.get("Attempts") or 0):
                return None
        base = int(policy.get("Delay") or 0) / 1e9
        cap = int(policy.get("MaxDelay") or 0) / 1e9
        function = policy.get("DelayFunction") or "exponential"
        if function == "constant" or not events:
            delay = base
        elif function == "fibonacci":
            a, b = base, base
            for _ in range(len(events)):
                a, b = b, a + b
            delay = a
        else:
            delay = base * 2 ** len(events)
        if cap and delay > cap:
            delay = cap
        return failed_at + delay

    def _follow_up(self, job: dict[str, Any], alloc: dict[str, Any], due: float, evaluation: Mapping[str, Any]) -> None:
        """The delayed evaluation that reschedules a failed allocation (``FollowupEvalID``, ``WaitUntil``)."""
        existing = self.evals.get(alloc.get("FollowupEvalID") or "")
        if existing is not None and existing["Status"] == "pending":
            return
        wait_until = time.time() + max(0.0, due - self.clock())
        follow = self._new_eval(
            job,
            "alloc-failure",
            PreviousEval=evaluation.get("ID", ""),
            WaitUntil=_rfc3339(wait_until),
            StatusDescription="created for delayed rescheduling",
        )
        if follow is None:
            return
        self._eval_due[follow["ID"]] = due
        alloc["FollowupEvalID"] = follow["ID"]
        alloc["ModifyIndex"] = self.index

    def _new_alloc(
        self,
        job: dict[str, Any],
        group: str,
        name_index: int,
        client_status: str,
        node: Mapping[str, Any] | None = None,
        devices: Sequence[str] = (),
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        tg = _find_group(job, group) or {"Tasks": []}
        now = _now_ns()
        index = self._bump()
        alloc_id = _uuid()
        tracker = None
        if previous is not None:
            events = list(((previous.get("RescheduleTracker") or {}).get("Events")) or [])
            policy = tg.get("ReschedulePolicy") or job.get("Reschedule") or _default_reschedule(job)
            events.append(
                {
                    "RescheduleTime": now,
                    "PrevAllocID": previous["ID"],
                    "PrevNodeID": previous.get("NodeID", ""),
                    "Delay": int(policy.get("Delay") or 0),
                }
            )
            tracker = {"Events": events}
            previous["NextAllocation"] = alloc_id
            previous["ModifyIndex"] = index
        node_id = node["ID"] if node is not None else _uuid()
        alloc = {
            "ID": alloc_id,
            "EvalID": _uuid(),
            "Name": f"{job['ID']}.{group}[{name_index}]",
            "Namespace": job["Namespace"],
            "NodeID": node_id,
            "NodeName": node["Name"] if node is not None else f"gpu-node-{name_index}",
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
            "PreviousAllocation": previous["ID"] if previous is not None else "",
            "NextAllocation": "",
            "RescheduleTracker": tracker,
            "PreemptedAllocations": None,
            "PreemptedByAllocation": "",
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        cpu, memory = group_resources(tg)
        self._alloc_res[alloc_id] = {"cpu": cpu, "memory": memory, "devices": list(devices)}
        self._alloc_created(alloc)
        if client_status == "pending" and alloc["JobID"]:
            queued = self.queued_counts.setdefault((job["Namespace"], job["ID"]), {})
            queued[group] = max(0, queued.get(group, 0) - 1)  # updateSummaryWithAlloc: Queued-- per insert
        return alloc

    def _full_alloc(self, alloc: Mapping[str, Any]) -> dict[str, Any]:
        """An ``Allocation`` as ``GET /v1/node/:id/allocations`` returns it: the stub plus ``Job``, the aggregate
        ``Resources`` (CPU, MemoryMB, …) and ``AllocatedResources`` (with the granted GPU instances)."""
        out = copy.deepcopy(dict(alloc))
        job = self.jobs.get((alloc["Namespace"], alloc["JobID"])) or {}
        tg = _find_group(job, alloc["TaskGroup"]) or {}
        res = self._alloc_res.get(alloc["ID"]) or {}
        cpu, memory = group_resources(tg)
        out["Job"] = copy.deepcopy(job) or None
        out["Resources"] = {"CPU": cpu, "MemoryMB": memory, "DiskMB": 300, "IOPS": 0, "Networks": None,
                            "Devices": None}  # fmt: skip
        tasks = {}
        for task in tg.get("Tasks") or []:
            t_res = task.get("Resources") or {}
            requested = (t_res.get("Devices") or []) and res.get("devices")
            tasks[task["Name"]] = {
                "Cpu": {"CpuShares": t_res.get("CPU") or 100, "ReservedCores": None},
                "Memory": {"MemoryMB": t_res.get("MemoryMB") or 300, "MemoryMaxMB": 0},
                "Networks": None,
                "Devices": [{"Vendor": "nvidia", "Type": "gpu", "Name": "Tesla T4", "DeviceIDs": res["devices"]}]
                if requested
                else None,
            }
        out["AllocatedResources"] = {
            "Tasks": tasks,
            "TaskLifecycles": {t["Name"]: t.get("Lifecycle") for t in tg.get("Tasks") or []},
            "Shared": {"Networks": None, "DiskMB": 300, "Ports": None},
        }
        out["Metrics"] = alloc_metric(str(job.get("NodePool") or "default"))
        return out

    def _refresh_status(self, job: dict[str, Any]) -> None:
        """``setJobStatus``: a job status change moves the job's ModifyIndex (not its JobModifyIndex)."""
        status = _job_status(self, job)
        if job.get("Status") != status:
            job["Status"] = status
            job["ModifyIndex"] = self._bump()

    def _after_node_change(self, node: dict[str, Any], previous_status: str | None, removed: bool = False) -> None:
        """Allocations on a node that went down (or away) are lost and replaced, on a disconnected one unknown or
        lost (nomad_strict.py); a usable node unblocks evals."""
        if not removed and node["Status"] == "disconnected" and previous_status != "disconnected":
            self._disconnect_allocs(node)
        if removed or node["Status"] in ("down",):
            index = self._bump()
            touched: set[tuple[str, str]] = set()
            for key, allocs in self.allocs.items():
                for alloc in allocs:
                    if alloc.get("NodeID") != node["ID"] or alloc["DesiredStatus"] != "run":
                        continue
                    if alloc["ClientStatus"] in TERMINAL_CLIENT:
                        continue
                    alloc.update(DesiredStatus="stop", ClientStatus="lost", ModifyIndex=index, ModifyTime=_now_ns())
                    alloc["DesiredDescription"] = "alloc is lost since its node is down"
                    alloc["ClientDescription"] = "alloc is lost since its node is down"
                    touched.add(key)
            for key in sorted(touched):
                job = self.jobs.get(key)
                if job is not None:
                    self._submit(self._new_eval(job, "node-update", NodeID=node["ID"]))
        if not removed and node["Status"] == "ready" and node["SchedulingEligibility"] == "eligible":
            self._unblock()

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

    def _authorize_node(self, ctx: _Ctx, level: str) -> None:
        """The ``node`` ACL policy: ``read`` for node reads, ``write`` for drain, eligibility and purge."""
        if self._acl is None:
            return
        secret = ctx.token()
        if secret is None:
            raise ApiError(403, "Permission denied")
        token = self._acl.get(secret)
        if token is None:
            raise ApiError(403, "ACL token not found")
        if token.management or token.node == "write" or (token.node == "read" and level == "read"):
            return
        raise ApiError(403, "Permission denied")

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
        if ns not in fake.namespaces:
            raise ApiError(500, f'job "{job["ID"]}" is in nonexistent namespace "{ns}"')
        errors = _validate_job(job)  # admission (canonicalize + validate) runs before the ACL check
        if errors:
            raise ApiError(500, _multierror(errors))
        fake._authorize(ctx, ns, ["submit-job"])
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
        unchanged = existing is not None and stored is existing
        evaluation = fake._new_eval(stored, "job-register")
        fake._submit(evaluation)
        return Reply(
            200,
            {
                "EvalID": evaluation["ID"] if evaluation else "",
                "EvalCreateIndex": evaluation["CreateIndex"] if evaluation else 0,
                # an unchanged spec writes only an evaluation and answers the job's ModifyIndex (sic)
                "JobModifyIndex": stored["ModifyIndex"] if unchanged else stored["JobModifyIndex"],
                "Warnings": "",
                "Index": fake.index,
                "LastContact": 0,
                "KnownLeader": False,
            },
            fake.index,
        )


def _plan(fake: FakeNomad, ctx: _Ctx) -> Reply:
    """``POST /v1/job/:id/plan`` (``Job.Plan``): admission and validation, then the ACL (``submit-job`` or
    ``plan-job``), then a dry run of the scheduler and the diff against the stored job. Nothing is stored; there
    is no ``PreserveCounts`` (nomad-facts §4)."""
    body = ctx.json_body()
    job = body.get("Job")
    if not isinstance(job, dict):
        raise ApiError(400, "Job must be specified")
    if not job.get("ID"):
        raise ApiError(400, "Job must have a valid ID")
    if job["ID"] != ctx.params["job"]:
        raise ApiError(400, "Job ID does not match")
    ns = ctx.query.get("namespace") or job.get("Namespace") or "default"
    with fake._cond:
        admitted = admit_job(job, ns, fake.region)
        errors = _validate_job(admitted)
        if errors:
            raise ApiError(500, _multierror(errors))
        fake._authorize(ctx, ns, ["submit-job", "plan-job"])
        existing = fake.jobs.get((ns, job["ID"]))
        updates, failed = fake._plan_placements(existing, admitted)
        created = None
        if failed:
            created = [
                {
                    "ID": _uuid(),
                    "Namespace": ns,
                    "JobID": job["ID"],
                    "Type": admitted.get("Type", "service"),
                    "TriggeredBy": "queued-allocs",
                    "Status": "blocked",
                    "StatusDescription": "created to place remaining allocations",
                    "FailedTGAllocs": copy.deepcopy(failed),
                }
            ]
        index = existing["JobModifyIndex"] if existing is not None else 0
        reply = {
            "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
            "FailedTGAllocs": failed or None,
            "JobModifyIndex": index,
            "CreatedEvals": created,
            "Diff": job_diff(existing, admitted) if body.get("Diff") else None,
            "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
            "Warnings": "",
            "Index": index,
        }
        return Reply(200, reply, index)


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
        out["Status"] = job.get("Status") or _job_status(fake, job)
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
        evaluation = fake._new_eval(job, "job-deregister")
        if evaluation is None:
            fake._reconcile(job, {})
        fake._submit(evaluation)
        fake._refresh_status(job)
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


def _list_allocations(fake: FakeNomad, ctx: _Ctx) -> Reply:
    """``GET /v1/allocations`` (``Alloc.List``): the same ``AllocListStub`` as ``/v1/job/:id/allocations`` (both come
    from ``Allocation.Stub``, nomad/structs/structs.go) for every job of the namespace — ``*``: of every namespace
    the token may read (``read-job``) — filtered by ``prefix`` (of the allocation ID); ``task_states=false`` leaves
    ``TaskStates`` out (null), as ``AllocStubFields.TaskStates`` does (default true)."""
    from tests.fakes.nomad_nodes import _bool_param

    ns = ctx.namespace
    prefix = ctx.query.get("prefix", "")
    task_states = "task_states" not in ctx.query or _bool_param(ctx, "task_states")
    with fake._cond:
        if ns != "*":
            fake._authorize(ctx, ns, ["read-job"])
        fake._wait_blocking(ctx.query)
        out = []
        for (job_ns, _job), allocs in sorted(fake.allocs.items()):
            if ns != "*" and job_ns != ns:
                continue
            if ns == "*" and fake._acl is not None:
                try:
                    fake._authorize(ctx, job_ns, ["read-job"])
                except ApiError:
                    continue
            for alloc in allocs:
                if str(alloc.get("ID", "")).startswith(prefix):
                    stub = copy.deepcopy(alloc)
                    if not task_states:
                        stub["TaskStates"] = None
                    out.append(stub)
        return Reply(200, out, fake.index, blocking=True)


def _job_summary(fake: FakeNomad, ctx: _Ctx) -> Reply:
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        fake._wait_blocking(ctx.query)
        job = _job_or_404(fake, ctx.namespace, ctx.params["job"])
        return Reply(200, _summary(fake, job), fake.index, blocking=True)


def _job_evaluations(fake: FakeNomad, ctx: _Ctx) -> Reply:
    """``GET /v1/job/:id/evaluations``: every evaluation of the job (``[]`` for an unknown job)."""
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job"])
        fake._wait_blocking(ctx.query)
        return Reply(200, fake.evaluations(ctx.params["job"], ctx.namespace), fake.index, blocking=True)


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
    """``Job.ScaleStatus``: Placed counts every non-terminal, non-canary allocation (pending, running, unknown);
    Healthy/Unhealthy come from deployment health; ``JobModifyIndex`` is the job's *ModifyIndex* (nomad-facts §2)."""
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read-job-scaling", "read-job"])
        fake._wait_blocking(ctx.query)
        job = _job_or_404(fake, ctx.namespace, ctx.params["job"])
        key = (job["Namespace"], job["ID"])
        allocs = fake.allocs.get(key, [])
        groups = {}
        index = job["ModifyIndex"]
        for tg in job.get("TaskGroups") or []:
            mine = [
                a for a in allocs
                if a["TaskGroup"] == tg["Name"] and a["DesiredStatus"] == "run"
                and a["ClientStatus"] not in TERMINAL_CLIENT and not (a.get("DeploymentStatus") or {}).get("Canary")
            ]  # fmt: skip
            health = [(a.get("DeploymentStatus") or {}).get("Healthy") for a in mine]
            events = fake.scaling_events.get(key, {}).get(tg["Name"]) or None
            index = max([index, *(a["ModifyIndex"] for a in mine), *(e["CreateIndex"] for e in events or [])])
            groups[tg["Name"]] = {
                "Desired": tg["Count"],
                "Events": copy.deepcopy(events),
                "Healthy": sum(1 for h in health if h is True),
                "Placed": len(mine),
                "Running": sum(1 for a in mine if a["ClientStatus"] == "running"),
                "Unhealthy": sum(1 for h in health if h is False),
            }
        body = {
            "JobCreateIndex": job["CreateIndex"],
            "JobID": job["ID"],
            "Namespace": job["Namespace"],
            "JobModifyIndex": job["ModifyIndex"],
            "JobStopped": bool(job.get("Stop")),
            "TaskGroups": groups,
        }
        return Reply(200, body, index, blocking=True)


def _scale(fake: FakeNomad, ctx: _Ctx) -> Reply:
    """``Job.Scale`` (nomad/job_endpoint.go), check by check, in its order (nomad-facts §3): the HTTP layer's
    checks, then the token and ACL, then ``JobScaleRequest.Validate``, the job lookup, bounds, deployment, CAS."""
    body = ctx.json_body()
    job_id = ctx.params["job"]
    target = body.get("Target") or {}
    if not isinstance(target, dict):
        raise ApiError(400, "Request decode failed: Target must be an object")
    if target.get("Job") not in (None, "", job_id):
        raise ApiError(400, "job ID in payload did not match URL")
    count = body.get("Count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
        raise ApiError(400, "Request decode failed: Count must be an integer")
    ns = ctx.namespace
    with fake._cond:
        fake._authorize(ctx, ns, ["scale-job", "submit-job"])
        group_name = target.get("Group")
        is_error = bool(body.get("Error"))
        if target.get("Namespace") not in (None, "", ns):
            raise ApiError(400, "namespace in payload did not match header")
        if not group_name:
            raise ApiError(400, "missing task group name for scaling action")
        if count is not None and count < 0:
            raise ApiError(400, "scaling action count can't be negative")
        if count is not None and is_error:
            raise ApiError(400, "scaling action should not contain count if error is true")
        if count is not None and count > 2**31 - 1:
            raise ApiError(400, f"new scaling count is too large for TaskGroup.Count (int): {count}")
        job = _job_or_404(fake, ns, job_id, f'job "{job_id}" not found')
        if job.get("Type") == "system" and count is not None and count > 1:
            raise ApiError(400, 'jobs of type "system" can only be scaled between 0 and 1')
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
            "Time": fake.now_ns(),
            "CreateIndex": 0,
        }
        if count is None:  # an event only; the reply's JobModifyIndex is the job's ModifyIndex (sic)
            event["CreateIndex"] = fake._bump()
            _add_event(fake, job, group_name, event)
            return Reply(200, _write_reply(fake, "", 0, job["ModifyIndex"]), fake.index)
        scaling = group.get("Scaling")
        if scaling is not None:
            if count < int(scaling.get("Min") or 0):
                raise ApiError(
                    400, f"group count was less than scaling policy minimum: {count} < {scaling.get('Min') or 0}"
                )
            if scaling.get("Max") is not None and count > int(scaling["Max"]):
                raise ApiError(400, f"group count was greater than scaling policy maximum: {count} > {scaling['Max']}")
        if fake.job_max_count is not None:
            total = sum(count if tg["Name"] == group_name else int(tg["Count"]) for tg in job["TaskGroups"])
            if total > fake.job_max_count:
                raise ApiError(
                    500, f"total count was greater than configured job_max_count: {total} > {fake.job_max_count}"
                )
        deps = fake.deployments.get((ns, job_id)) or []
        if deps and deps[-1]["Status"] in ACTIVE_DEPLOYMENT and deps[-1]["JobCreateIndex"] == job["CreateIndex"]:
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
        new_job["SubmitTime"] = _now_ns()
        # upsertJobImpl: always a new Version and JobModifyIndex, even when the count did not change.
        stored = fake._store_job(new_job, ns, preserve_counts=False, new_version=True)
        evaluation = fake._new_eval(stored, "job-scaling")  # a second raft apply: the pending evaluation
        event["EvalID"] = evaluation["ID"] if evaluation else None
        event["CreateIndex"] = fake._bump()  # a third raft apply: the scaling event
        _add_event(fake, stored, group_name, event)
        eval_id = evaluation["ID"] if evaluation else ""
        eval_index = evaluation["CreateIndex"] if evaluation else 0
        reply = _write_reply(fake, eval_id, eval_index, stored["JobModifyIndex"])
        reply["Index"] = event["CreateIndex"]
        fake._submit(evaluation)
        if fake.deploy_on_scale and stored.get("Type") == "service" and stored.get("Update"):
            fake._start_deployment(stored)
        return Reply(200, reply, event["CreateIndex"])


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
        "NextToken": "",
        "Warnings": "",
    }


VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")  # structs.ValidatePath (nomad/structs/variables.go)
VARIABLE_MAX_BYTES = 65536  # Items.Size() = Σ len(key) + len(value)


def _var_path(ctx: _Ctx) -> str:
    path = ctx.params["path"]
    if not path:
        raise ApiError(400, "missing variable path")
    return path


def _validate_variable(path: str, items: Mapping[str, str] | None) -> None:
    """``canonicalizeAndValidate``: errors are double-wrapped, so the body reads ``RPC Error:: 400,<msg>``."""
    if not VARIABLE_PATH.match(path):
        raise ApiError(400, f'RPC Error:: 400,invalid path "{path}"')
    size = sum(len(k.encode()) + len(v.encode()) for k, v in (items or {}).items())
    if size > VARIABLE_MAX_BYTES:
        raise ApiError(400, "RPC Error:: 400,variables are limited to 64KiB in total size")


def _var_read(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["read"], kind="var")
        fake._wait_blocking(ctx.query)
        _expire_locks(fake)
        var = fake.variables.get((ctx.namespace, path))
        if var is None:
            raise ApiError(404, "variable not found")
        out = copy.deepcopy(var)
        if not _is_management(fake, ctx):
            out.pop("Lock", None)  # the Lock is shown to management tokens only
        return Reply(200, out, fake.index, blocking=True)


LOCK_OPS = ("lock-acquire", "lock-renew", "lock-release")
LOCK_MIN_NS, LOCK_MAX_NS = 10 * 10**9, 24 * 3600 * 10**9
LOCK_DEFAULT_NS = 15 * 10**9  # VariableLock.Canonicalize: TTL and LockDelay default to 15s


def _var_write(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    ops = [op for op in LOCK_OPS if op in ctx.query]
    if len(ops) > 1:
        raise ApiError(400, "multiple lock operations")
    if ops and "cas" in ctx.query:
        raise ApiError(400, "CAS can't be used with lock operations")
    body = ctx.json_body()
    items = body.get("Items")
    # Variables.Apply takes the body's Namespace when set (set, cas, lock-acquire, lock-release); renew only
    # ever uses ?namespace (nomad-facts §7).
    ns = body.get("Namespace") or ctx.namespace
    if ops == ["lock-renew"]:
        ns = ctx.namespace
    if ops:
        with fake._cond:
            fake._authorize(ctx, ns, ["write"], kind="var")
            _expire_locks(fake)
            if ops[0] == "lock-acquire":
                _validate_variable(path, items if isinstance(items, dict) else None)
            return _lock_op(fake, ctx, ops[0], ns, path, body)
    if not items:
        raise ApiError(400, "variable missing required Items object")
    if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
        raise ApiError(400, "Request decode failed: Items must map strings to strings")
    lock_in = body.get("Lock") if isinstance(body.get("Lock"), dict) else {}
    with fake._cond:
        fake._authorize(ctx, ns, ["write"], kind="var")
        _validate_variable(path, items)
        if lock_in.get("TTL") or lock_in.get("LockDelay"):
            raise ApiError(400, "RPC Error:: 400,variable should not contain lock definition")
        if ns not in fake.namespaces:
            raise ApiError(500, f'nonexistent namespace "{ns}"')
        _expire_locks(fake)
        _check_cas(fake, ctx, ns, path)
        _check_lock_holder(fake, ns, path, lock_in)
        lock = (fake.variables.get((ns, path)) or {}).get("Lock")
        var = fake._write_var(ns, path, dict(items))
        if lock:
            var["Lock"] = lock
        out = copy.deepcopy(var)
        if lock and not (_is_management(fake, ctx) or lock_in.get("ID") == lock["ID"]):
            out.pop("Lock", None)  # makeVariablesApplyResponse: only the holder or a management token sees it
        return Reply(200, out, var["ModifyIndex"])


def _lock_op(fake: FakeNomad, ctx: _Ctx, op: str, ns: str, path: str, body: dict[str, Any]) -> Reply:
    """``?lock-acquire|renew|release`` as ``Variables.Apply``/``RenewLock`` and the state store do it
    (nomad-facts §7), with TTL timers on ``fake.clock`` (expiry after 2×TTL, removal LockDelay later)."""
    key = (ns, path)
    now = fake.clock()
    lock_in = body.get("Lock") if isinstance(body.get("Lock"), dict) else {}
    lock_id = lock_in.get("ID") or ""
    if op == "lock-acquire":
        ttl = _lock_duration(lock_in.get("TTL"))
        delay = _lock_duration(lock_in.get("LockDelay"))
        errors = []
        if ttl < 0 or delay < 0:
            errors.append("Lock delay and TTL must be positive")
        if not LOCK_MIN_NS <= ttl <= LOCK_MAX_NS:
            errors.append("TTL must be between 10 seconds and 24 hours")
        if errors:
            raise ApiError(400, "RPC Error:: 400," + _multierror(errors))
        if ns not in fake.namespaces:
            raise ApiError(500, f'nonexistent namespace "{ns}"')
        held = (fake.variables.get(key) or {}).get("Lock")
        if held and held["ID"] != lock_id:
            raise ApiError(409, "locked", json_body=_zero_variable(ns, path))
        items = body.get("Items") if isinstance(body.get("Items"), dict) else {}
        var = fake._write_var(ns, path, dict(items))  # the whole variable, Items included, is overwritten
        var["Lock"] = {"TTL": _go_duration(ttl), "LockDelay": _go_duration(delay), "ID": lock_id or _uuid()}
        fake._locks[key] = {"id": var["Lock"]["ID"], "ttl": ttl / 1e9, "delay": delay / 1e9}
        _restart_lock_timer(fake._locks[key], now)
        out = copy.deepcopy(var)
        if not items:
            out.pop("Items", None)
        return Reply(200, out, var["ModifyIndex"])
    if op == "lock-renew":
        if not lock_id:
            raise ApiError(500, _multierror(["missing lock ID"]))
        var = fake.variables.get(key)
        if var is None:
            raise ApiError(404, "variable doesn't exist")
        held = var.get("Lock")
        if not held:
            raise ApiError(409, "variable doesn't hold a lock")
        state = fake._locks.get(key)
        if held["ID"] != lock_id or state is None or now >= state["expires"]:
            raise ApiError(409, "attempting to modify locked variable")
        _restart_lock_timer(state, now)  # not a raft write: ModifyIndex stays, no X-Nomad-Index
        return Reply(200, {**_metadata(var), "Lock": copy.deepcopy(held)})
    # lock-release
    if body.get("Items") is not None:
        raise ApiError(400, "RPC Error:: 400,lock release operation doesn't take variable items")
    if not lock_id:
        raise ApiError(400, "RPC Error:: 400,missing lock information")
    var = fake.variables.get(key)
    if var is None:
        raise ApiError(404, "variable doesn't exist")
    held = var.get("Lock")
    if not held:
        raise ApiError(409, "variable doesn't hold a lock")
    if held["ID"] != lock_id:
        raise ApiError(409, "locked", json_body=_zero_variable(ns, path))
    _remove_lock(fake, key)
    return Reply(200, _metadata(var), var["ModifyIndex"])


def _restart_lock_timer(state: dict[str, Any], now: float) -> None:
    """The leader's TTL timer: it fires 2×TTL after acquire or renew; the lock goes LockDelay after that."""
    state["expires"] = now + 2 * state["ttl"]
    state["removed_at"] = state["expires"] + state["delay"]


def _expire_locks(fake: FakeNomad) -> None:
    """Locks whose timer fired and whose LockDelay is over are released by the server (Items kept)."""
    now = fake.clock()
    for key, state in list(fake._locks.items()):
        if now >= state["removed_at"]:
            _remove_lock(fake, key)


def _remove_lock(fake: FakeNomad, key: tuple[str, str]) -> None:
    fake._locks.pop(key, None)
    var = fake.variables.get(key)
    if var is not None and var.pop("Lock", None) is not None:
        var["ModifyIndex"] = fake._bump()
        var["ModifyTime"] = _now_ns()


def _check_lock_holder(fake: FakeNomad, ns: str, path: str, lock_in: Mapping[str, Any]) -> None:
    held = (fake.variables.get((ns, path)) or {}).get("Lock")
    if held and lock_in.get("ID") != held["ID"]:
        raise ApiError(409, "locked", json_body=_zero_variable(ns, path))


def _zero_variable(ns: str, path: str) -> dict[str, Any]:
    """The 409 body of a locked variable (``isLocked`` → zero value; Items and Lock omitted)."""
    return {"Namespace": ns, "Path": path, "CreateIndex": 0, "CreateTime": 0, "ModifyIndex": 0, "ModifyTime": 0}


def _metadata(var: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in var.items() if k not in ("Items", "Lock")}


def _is_management(fake: FakeNomad, ctx: _Ctx) -> bool:
    if fake._acl is None:
        return True
    token = fake._acl.get(ctx.token() or "")
    return token is not None and token.management


def _lock_duration(value: Any) -> int:
    """``VariableLock.UnmarshalJSON``: a Go duration string or a number of nanoseconds; absent/0 → 15s."""
    if value is None or value in ("", 0):
        return LOCK_DEFAULT_NS
    if isinstance(value, bool):
        raise ApiError(400, "Request decode failed: invalid duration")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    try:
        return sign * _parse_go_duration(text.lstrip("-+")) or LOCK_DEFAULT_NS
    except ValueError:
        raise ApiError(400, f"Request decode failed: time: invalid duration {json.dumps(text)}") from None


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` (``VariableLock.MarshalJSON``): 60s → "1m0s", 90s → "1m30s"; 0 → ""."""
    if ns == 0:
        return ""
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{sign}{ns / size:g}{unit}"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _var_delete(fake: FakeNomad, ctx: _Ctx) -> Reply:
    path = _var_path(ctx)
    with fake._cond:
        fake._authorize(ctx, ctx.namespace, ["destroy"], kind="var")
        _expire_locks(fake)
        _check_cas(fake, ctx, ctx.namespace, path)
        if (fake.variables.get((ctx.namespace, path)) or {}).get("Lock"):
            # the delete request carries no Lock: a locked variable cannot be deleted over HTTP (release first)
            raise ApiError(409, "locked", json_body=_zero_variable(ctx.namespace, path))
        fake.variables.pop((ctx.namespace, path), None)
        fake._locks.pop((ctx.namespace, path), None)
        return Reply(204, NO_BODY, fake._bump())


def _check_cas(fake: FakeNomad, ctx: _Ctx, ns: str, path: str) -> None:
    """``?cas=N``: a mismatch is 409 with the current variable, Items included (also for delete)."""
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
    (re.compile(r"/v1/allocations"), ("GET",), _list_allocations),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/allocations"), ("GET",), _job_allocations),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/summary"), ("GET",), _job_summary),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/plan"), ("POST", "PUT"), _plan),
    (re.compile(r"/v1/job/(?P<job>[^/]+)/evaluations"), ("GET",), _job_evaluations),
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
    *NODE_ROUTES,
    *DRAIN_ROUTES,
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
        # ErrInvalidMethod is 405 on the job and node handlers but 400 on /v1/var/:path (nomad-facts §0)
        raise ApiError(400 if path.startswith("/v1/var/") else 405, "Invalid method")
    raise ApiError(404, "404 page not found")


def _dispatch(fake: FakeNomad, method: str, path: str, query: dict[str, str], body: Any, headers: Any) -> Reply:
    handler, params = _route(fake, method, path)
    if "region" in query and query["region"] not in ("", fake.region):
        raise ApiError(500, "No path to region")
    _check_blocking_params(query)
    with fake._cond:
        fake._run_due()  # delayed evaluations (reschedules) whose time came
        fake.progress()  # the drainer (strict: clients, heartbeats), up to fake.wall_clock
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


def _default_reschedule(job: Mapping[str, Any]) -> dict[str, Any]:
    """``structs.DefaultServiceJobReschedulePolicy`` / ``DefaultBatchJobReschedulePolicy``."""
    if job.get("Type", "service") == "batch":
        return {"Attempts": 1, "Interval": 24 * 3600 * 10**9, "Delay": 5 * 10**9, "DelayFunction": "constant",
                "MaxDelay": 0, "Unlimited": False}  # fmt: skip
    return {"Attempts": 0, "Interval": 0, "Delay": 30 * 10**9, "DelayFunction": "exponential",
            "MaxDelay": 3600 * 10**9, "Unlimited": True}  # fmt: skip


def _rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s % 1 * 1e9):09d}Z"


NATIVE_SERVICE_CONSTRAINT = {"LTarget": "${attr.nomad.service_discovery}", "RTarget": "true", "Operand": "="}


def admit_job(job: Mapping[str, Any], namespace: str, region: str) -> dict[str, Any]:
    """What Nomad's admission does to a submitted job before storing (or planning) it: defaults, and the
    implied constraint of task groups with ``provider = "nomad"`` services (nomad/job_endpoint_hooks.go
    ``jobImpliedConstraints``). A client-side diff of the parsed job against the stored one therefore never
    comes out empty on a real Nomad; ``POST /v1/job/:id/plan`` compares the admitted job."""
    out = copy.deepcopy(dict(job))
    out["Namespace"] = namespace
    out.setdefault("Name", out["ID"])
    out["Region"] = out.get("Region") or region
    out["Stop"] = bool(out.get("Stop", False))
    for tg in out.get("TaskGroups") or []:
        if tg.get("Count") is None:
            tg["Count"] = 1
        services = list(tg.get("Services") or [])
        for task in tg.get("Tasks") or []:
            services += task.get("Services") or []
        if any((svc or {}).get("Provider") == "nomad" for svc in services):
            constraints = list(tg.get("Constraints") or [])
            if NATIVE_SERVICE_CONSTRAINT not in constraints:
                constraints.append(dict(NATIVE_SERVICE_CONSTRAINT))
            tg["Constraints"] = constraints
    return out


def _client_description(status: str) -> str:
    return {
        "running": "Tasks are running",
        "pending": "No tasks have started",
        "complete": "All tasks have completed",
        "failed": "Failed tasks",
    }.get(status, "")


DESIRED_UPDATE_KEYS = (
    "Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate", "Canary", "Preemptions",
    "Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater",
)  # fmt: skip


def _spec_of(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


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
    """``StateStore.getJobStatus``: running while any allocation is non-terminal, pending while an evaluation
    is (pending or blocked), dead once it had allocations and none is left (or it is stopped)."""
    if job.get("Type") == "system" or job.get("Periodic") or job.get("ParameterizedJob"):
        return "dead" if job.get("Stop") else "running"
    key = (job["Namespace"], job["ID"])
    allocs = fake.allocs.get(key, [])
    if any(a["DesiredStatus"] == "run" and a["ClientStatus"] not in TERMINAL_CLIENT for a in allocs):
        return "running"
    if any((e["Namespace"], e["JobID"]) == key and e["Status"] in ("pending", "blocked") for e in fake.evals.values()):
        return "pending"
    if allocs or job.get("Stop"):
        return "dead"
    return "pending"


def _summary(fake: FakeNomad, job: Mapping[str, Any]) -> dict[str, Any]:
    """``structs.JobSummary``: ``Queued`` is what the last evaluation could not place (nomad-facts §1)."""
    key = (job["Namespace"], job["ID"])
    allocs = fake.allocs.get(key, [])
    queued = fake.queued_counts.get(key, {})
    summary = {}
    for tg in job.get("TaskGroups") or []:
        mine = [a for a in allocs if a["TaskGroup"] == tg["Name"]]
        counts = {
            s: sum(1 for a in mine if a["ClientStatus"] == s)
            for s in ("running", "complete", "failed", "lost", "unknown", "pending")
        }
        summary[tg["Name"]] = {
            "Queued": int(queued.get(tg["Name"], 0)),
            "Complete": counts["complete"],
            "Failed": counts["failed"],
            "Running": counts["running"],
            "Starting": counts["pending"],
            "Lost": counts["lost"],
            "Unknown": counts["unknown"],
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
        "Status": job.get("Status") or _job_status(fake, job),
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
    "lost_after",
    "stop_on_client_after",
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
        **({"Disconnect": _convert_block(body["disconnect"])} if body.get("disconnect") else {}),
        **(
            {"MaxClientDisconnect": _convert_value("max_client_disconnect", body["max_client_disconnect"])}
            if body.get("max_client_disconnect") is not None
            else {}
        ),
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
