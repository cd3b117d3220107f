# Rendered by `forescale render` from forescale.jobspec-example.yaml; edit the config and re-render, not this file.
# Register with `forescale deploy` (PreserveCounts: a redeploy keeps the count forescale scaled to).
job "ml-workers" {
  type        = "service"
  namespace   = "default"
  node_pool   = "gpu"
  datacenters = ["eu-west-1a", "eu-west-1b"]

  meta {
    managed-by = "forescale"
  }

  # Pool "ocr": 4 worker(s) per GPU, 2..20 GPU nodes.
  group "ocr" {
    # Only the initial count: `forescale deploy` registers with PreserveCounts, forescale scales it afterwards.
    count = 2

    scaling {
      enabled = true
      min     = 2
      max     = 20
    }

    # One allocation per GPU node: the workers share that node's GPU through compose.
    constraint {
      distinct_hosts = true
    }

    constraint {
      attribute = "${node.class}"
      value     = "gpu-t4"
    }

    spread {
      attribute = "${node.datacenter}"
      weight    = 100
    }

    # No deployments: every Job.Scale would otherwise open one and block the next scale for up to
    # progress_deadline (NOTES §C). Image rollouts then replace all allocations at once: roll off-peak.
    update {
      max_parallel = 0
    }

    # A worker dying makes the entrypoint exit 1: restart in place twice, then place it on another node.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    network {
      port "health" {
      }
    }

    task "workers" {
      driver = "raw_exec"

      config {
        command = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        args = [
          "run",
          "--project", "ocr-${NOMAD_ALLOC_ID}",
          "--file", "local/docker-compose.yml",
          "--workers", "4",
          "--drain-timeout", "60",
          "--stop-timeout", "10",
          "--start-timeout", "600",
          "--worker-stop-signal", "SIGTERM",
          "--lock-dir", "/run/forescale",
          "--health-addr", "${NOMAD_IP_health}:${NOMAD_PORT_health}",
        ]
      }

      # Teardown timeline: services deregistered → shutdown_delay → kill_signal to the entrypoint →
      # workers get SIGTERM and 60s to finish in-flight work → compose down -t 10 → exit 0.
      # kill_timeout = drain + stop + margin, and must stay ≤ the client's max_kill_timeout (300s).
      kill_signal    = "SIGTERM"
      kill_timeout   = "1m20s"
      shutdown_delay = "10s"

      template {
        destination = "local/docker-compose.yml"
        change_mode = "noop"
        data        = <<FORESCALE_EOF
# Rendered by forescale from forescale.jobspec-example.yaml (pool ocr); edit the config, not this file.
# Workers: 4 per GPU. Started by forescale-compose-entrypoint, one project per allocation.
services:
  worker-1:
    image: "registry.example.com/ml/ocr:1.4.2"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    cpus: 1.5
    mem_limit: 6144m
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "ocr"
      io.forescale.pool: "ocr"
      io.forescale.worker: "1"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=1"
      - "FORESCALE_WORKERS=4"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
      - "MODEL_NAME=ocr-v4"
      - "QUEUE_URL=amqp://rabbitmq.service.consul:5672/ocr"
      - QUEUE_PASSWORD
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
  worker-2:
    image: "registry.example.com/ml/ocr:1.4.2"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    cpus: 1.5
    mem_limit: 6144m
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "ocr"
      io.forescale.pool: "ocr"
      io.forescale.worker: "2"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=2"
      - "FORESCALE_WORKERS=4"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
      - "MODEL_NAME=ocr-v4"
      - "QUEUE_URL=amqp://rabbitmq.service.consul:5672/ocr"
      - QUEUE_PASSWORD
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
  worker-3:
    image: "registry.example.com/ml/ocr:1.4.2"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    cpus: 1.5
    mem_limit: 6144m
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "ocr"
      io.forescale.pool: "ocr"
      io.forescale.worker: "3"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=3"
      - "FORESCALE_WORKERS=4"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
      - "MODEL_NAME=ocr-v4"
      - "QUEUE_URL=amqp://rabbitmq.service.consul:5672/ocr"
      - QUEUE_PASSWORD
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
  worker-4:
    image: "registry.example.com/ml/ocr:1.4.2"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    cpus: 1.5
    mem_limit: 6144m
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "ocr"
      io.forescale.pool: "ocr"
      io.forescale.worker: "4"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=4"
      - "FORESCALE_WORKERS=4"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
      - "MODEL_NAME=ocr-v4"
      - "QUEUE_URL=amqp://rabbitmq.service.consul:5672/ocr"
      - QUEUE_PASSWORD
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
FORESCALE_EOF
      }

      # Rendered once into the allocation's shared directory: the poststop cleanup task runs the same file.
      template {
        destination = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        perms       = "0755"
        change_mode = "noop"
        data        = <<FORESCALE_EOF
#!/usr/bin/env python3
"""forescale-compose-entrypoint: run N docker compose workers under Nomad's raw_exec, and tear them down cleanly.

Nomad's raw_exec sends its kill_signal only to this process, then SIGKILLs the process group and the task
cgroup; the containers live under dockerd, so nothing but this script (and the poststop task) can stop them.

  run      reap stale projects, `compose up` in the foreground, watch the workers; on SIGTERM/SIGINT send
           the workers their stop signal, wait up to --drain-timeout, `compose down -t --stop-timeout`, exit 0;
           exit 1 (after removing every container) as soon as a worker dies.
  cleanup  remove every container of --project (the poststop task), then reap stale projects.
  reap     remove the containers of every forescale project whose owner is gone.

Liveness of a project = a lock: the `run` of a project holds an exclusive flock on <lock-dir>/<project>.lock
for its whole life. The kernel drops it when the process dies, even by SIGKILL, so a project whose lock can
be taken has no owner and is safe to remove. Containers carry the label io.forescale.managed=true.

Python 3 standard library only (Debian's docker-compose v1 needs python3 anyway). Works with compose v2
(`docker compose`) and v1 (`docker-compose`); pick one with --compose or FORESCALE_COMPOSE.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import http.server
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANAGED_LABEL = "io.forescale.managed=true"
PROJECT_LABEL = "com.docker.compose.project"
POLL_S = 0.25
DOCKER_GRACE_S = 10.0  # docker CLI failures tolerated while watching before the allocation is failed


def log(message: str) -> None:
    """One timestamped line on stderr (Nomad keeps the task's stderr as its log)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    sys.stderr.write(f"{stamp} forescale-entrypoint[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


def docker(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; never raises on a non-zero exit unless ``check``."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def compose_command(choice: str | None) -> list[str]:
    """The compose CLI: --compose/FORESCALE_COMPOSE, else `docker compose` (v2) if present, else `docker-compose`."""
    if choice:
        return shlex.split(choice)
    try:
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if v2.returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return ["docker-compose"]


def containers(project: str | None = None, running_only: bool = False) -> list[dict[str, str]]:
    """Containers managed by forescale (optionally of one project): id, name, state, project."""
    args = ["ps", "--no-trunc", "--filter", f"label={MANAGED_LABEL}"]
    if not running_only:
        args.append("-a")
    if project:
        args += ["--filter", f"label={PROJECT_LABEL}={project}"]
    args += ["--format", '{{"{{"}}.ID}}\t{{"{{"}}.Names}}\t{{"{{"}}.State}}\t{{"{{"}}.Label "' + PROJECT_LABEL + '"}}']
    proc = docker(*args, check=True)
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            out.append({"id": parts[0], "name": parts[1], "state": parts[2], "project": parts[3]})
    return out


def remove_project(project: str) -> int:
    """Force-remove every container of ``project`` (works without the compose file); returns how many."""
    ids = [c["id"] for c in containers(project)]
    if ids:
        proc = docker("rm", "-f", "-v", *ids)
        if proc.returncode != 0:
            log(f"docker rm -f failed for {project}: {proc.stderr.strip()}")
    return len(ids)


class ProjectLock:
    """Exclusive flock on <lock_dir>/<project>.lock: held by the project's `run` for its whole life."""

    def __init__(self, lock_dir: Path, project: str) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.path = lock_dir / f"{project}.lock"
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def release(self, unlink: bool = False) -> None:
        # Unlink only when the project is over for good (cleanup): a lock file unlinked while another process
        # has it open would let two processes each "hold" the lock of the same project.
        if self.fd is None:
            return
        if unlink:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def reap(lock_dir: Path, keep: str | None = None) -> list[str]:
    """Remove the containers of every forescale project on this node whose owner no longer holds its lock."""
    reaped = []
    for project in sorted({c["project"] for c in containers() if c["project"] and c["project"] != keep}):
        lock = ProjectLock(lock_dir, project)
        if not lock.try_acquire():
            continue  # its `run` is alive (on this node): not ours to touch
        try:
            count = remove_project(project)
            log(f"reaped stale project {project}: removed {count} container(s)")
            reaped.append(project)
        finally:
            lock.release()
    return reaped


class Health:
    """/healthz: 200 while all N workers run and no stop was requested, 503 otherwise."""

    def __init__(self) -> None:
        self.ok = False

    def serve(self, addr: str) -> http.server.ThreadingHTTPServer:
        host, _, port = addr.rpartition(":")
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 200 if health.ok and self.path.split("?")[0] in ("/healthz", "/") else 503
                body = b"ok\n" if code == 200 else b"not ready\n"
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log(f"health endpoint on http://{host or '127.0.0.1'}:{server.server_address[1]}/healthz")
        return server


class Runner:
    """The `run` mode: one compose project in the foreground with graceful teardown."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.project: str = args.project
        self.compose = [*compose_command(args.compose), "-p", self.project, "-f", args.file]
        self.stop_requested: str | None = None
        self.health = Health()
        self.child: subprocess.Popen[bytes] | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop_requested is None:
            self.stop_requested = name
        else:
            log(f"received {name} again; teardown is already running")

    def run(self) -> int:
        args = self.args
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        lock = ProjectLock(Path(args.lock_dir), self.project)
        log(f"project {self.project}: waiting for its lock {lock.path}")
        if not lock.acquire(timeout=args.lock_timeout):
            log(f"project {self.project} is still owned by a live process (lock {lock.path}); exiting")
            return 1
        try:
            return self._run_locked()
        finally:
            lock.release()

    def _run_locked(self) -> int:
        args = self.args
        try:
            stale = reap(Path(args.lock_dir), keep=self.project)
            log(f"reaped {len(stale)} stale project(s)")
            leftover = remove_project(self.project)
            if leftover:
                log(f"removed {leftover} leftover container(s) of a previous run of {self.project}")
            if args.health_addr:
                self.health.serve(args.health_addr)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            log(f"cannot prepare the node: {exc}; exit 1")
            return 1
        if self.stop_requested:
            log(f"{self.stop_requested} before start; nothing to stop")
            return 0
        cmd = [*self.compose, "up", "--no-build", "--no-color"]
        log(f"starting {args.workers} worker(s): {shlex.join(cmd)}")
        code = 1
        try:
            # Own process group: a terminal's Ctrl-C reaches only us, so compose never starts its own teardown.
            self.child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
            code = self._watch()
        except Exception as exc:  # whatever went wrong, the containers must still go
            log(f"error while watching the workers: {exc}")
            code = 1
        finally:
            self.health.ok = False
            self._teardown(drain=code == 0)
        log(f"exit {code}")
        return code

    def _watch(self) -> int:
        """Wait for a stop signal (→ 0), a dead worker or compose exiting (→ 1), or a start timeout (→ 1)."""
        args = self.args
        started = time.monotonic()
        all_up = False
        failures = 0
        assert self.child is not None
        while True:
            if self.stop_requested:
                log(f"received {self.stop_requested}: stopping {args.workers} worker(s)")
                return 0
            try:
                state = containers(self.project)
                failures = 0
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures += 1
                if failures * POLL_S >= DOCKER_GRACE_S:
                    log(f"docker does not answer for {DOCKER_GRACE_S:g}s ({exc}); giving up")
                    return 1
                time.sleep(POLL_S)
                continue
            running = [c for c in state if c["state"] == "running"]
            dead = [c for c in state if c["state"] in ("exited", "dead")]
            if dead:
                names = ", ".join(c["name"] for c in dead)
                log(f"worker(s) stopped unexpectedly: {names}; tearing down so Nomad restarts the allocation")
                return 1
            if self.child.poll() is not None:
                log(f"compose exited with code {self.child.returncode} before a stop was requested")
                return 1
            if len(running) >= args.workers and not all_up:
                all_up = True
                log(f"all {len(running)} worker(s) running")
            self.health.ok = all_up and len(running) >= args.workers
            if not all_up and time.monotonic() - started > args.start_timeout:
                log(f"only {len(running)}/{args.workers} worker(s) running after {args.start_timeout:g}s")
                return 1
            time.sleep(POLL_S)

    def _teardown(self, drain: bool) -> None:
        """Drain (on a requested stop), `compose down`, force-remove leftovers; never raises."""
        args = self.args
        if drain:
            try:
                self._drain()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                log(f"drain failed: {exc}; going straight to compose down")
        stop_t = str(int(args.stop_timeout))
        log(f"compose down -t {stop_t}")
        try:
            down = subprocess.run(
                [*self.compose, "down", "-t", stop_t], capture_output=True, text=True, timeout=args.stop_timeout + 60
            )
            if down.returncode != 0:
                log(f"compose down failed ({down.returncode}): {down.stderr.strip()[-500:]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"compose down did not finish: {exc}")
        try:
            removed = remove_project(self.project)
            if removed:
                log(f"force-removed {removed} container(s) compose left behind")
            log(f"project {self.project}: no container left")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            log(f"cannot verify that {self.project} is gone ({exc}); the poststop task and the next start reap it")
        self._stop_child()

    def _drain(self) -> None:
        args = self.args
        running = containers(self.project, running_only=True)
        if not running:
            return
        log(f"sending {args.worker_stop_signal} to {len(running)} worker(s) (stop taking new work)")
        docker("kill", "--signal", args.worker_stop_signal, *[c["id"] for c in running])
        deadline = time.monotonic() + args.drain_timeout
        while running and time.monotonic() < deadline:
            time.sleep(POLL_S)
            running = containers(self.project, running_only=True)
        if running:
            log(f"{len(running)} worker(s) still busy after the {args.drain_timeout:g}s drain timeout")
        else:
            log("all workers finished their in-flight work")

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cleanup(args: argparse.Namespace) -> int:
    """Poststop: the main task is gone (or SIGKILLed); remove its containers, then reap other stale projects."""
    lock = ProjectLock(Path(args.lock_dir), args.project)
    if not lock.acquire(timeout=args.lock_timeout):
        log(f"project {args.project} is still locked after {args.lock_timeout:g}s; removing its containers anyway")
    try:
        count = remove_project(args.project)
        log(f"cleanup of {args.project}: removed {count} container(s)")
    finally:
        lock.release(unlink=True)
    reap(Path(args.lock_dir))
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    alloc = env.get("NOMAD_ALLOC_ID", "")
    default_project = f"fs-{alloc}" if alloc else None
    parser = argparse.ArgumentParser(prog="forescale-compose-entrypoint", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["run", "cleanup", "reap"])
    parser.add_argument("--project", default=default_project, help="compose project (default fs-$NOMAD_ALLOC_ID)")
    parser.add_argument("--file", "-f", default="local/docker-compose.yml", help="compose file")
    parser.add_argument("--workers", type=int, default=1, help="worker containers the compose file starts")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds for in-flight work")
    parser.add_argument("--stop-timeout", type=float, default=10.0, help="compose down -t (seconds)")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds until all workers run")
    parser.add_argument("--worker-stop-signal", default="SIGTERM", help="signal telling workers to stop")
    parser.add_argument("--lock-dir", default=env.get("FORESCALE_LOCK_DIR", "/run/forescale"))
    parser.add_argument("--lock-timeout", type=float, default=30.0, help="seconds to wait for the project lock")
    parser.add_argument("--compose", default=env.get("FORESCALE_COMPOSE"), help="compose CLI, e.g. 'docker compose'")
    parser.add_argument("--health-addr", default=None, help="serve /healthz on HOST:PORT")
    args = parser.parse_args(argv)
    if args.mode in ("run", "cleanup") and not args.project:
        parser.error("--project is required when NOMAD_ALLOC_ID is not set")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.mode == "run":
        return Runner(args).run()
    try:
        if args.mode == "cleanup":
            return cleanup(args)
        reaped = reap(Path(args.lock_dir))
        log(f"reaped {len(reaped)} stale project(s)")
        return 0
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log(f"{args.mode} failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
FORESCALE_EOF
      }

      # Secrets of the workers: keys of the Nomad Variable nomad/jobs/ml-workers, as env vars of the
      # entrypoint, passed to the containers by name (compose `environment: [NAME]`).
      template {
        destination = "secrets/workers.env"
        env         = true
        change_mode = "restart"
        data        = <<FORESCALE_EOF
{{ with nomadVar "nomad/jobs/ml-workers" }}
QUEUE_PASSWORD={{ .QUEUE_PASSWORD | toJSON }}
{{ end }}
FORESCALE_EOF
      }

      resources {
        # The entrypoint and compose CLI (200 MHz, 256 MiB) plus 4 workers × (1.5 CPU × 2500 MHz, 6144 MiB):
        # the containers run under dockerd, outside this task's cgroup, so Nomad must be told what they take,
        # or it would see the node as nearly empty and place other jobs on it. Only the entrypoint is limited.
        cpu    = 15200
        memory = 24832

        device "nvidia/gpu" {
          count = 1

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "15000 MiB"
          }
        }
      }

      service {
        provider = "nomad"
        name     = "ocr"
        port     = "health"
        tags     = ["forescale", "pool-ocr"]

        check {
          name     = "workers-running"
          type     = "http"
          path     = "/healthz"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }

    # Safety net: runs after "workers" stopped for any reason, even SIGKILL, and removes what is left.
    task "cleanup" {
      driver = "raw_exec"

      lifecycle {
        hook = "poststop"
      }

      config {
        command = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        args = [
          "cleanup",
          "--project", "ocr-${NOMAD_ALLOC_ID}",
          "--lock-dir", "/run/forescale",
        ]
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }

  # Pool "face-match": 2 worker(s) per GPU, 1..10 GPU nodes.
  group "face-match" {
    # Only the initial count: `forescale deploy` registers with PreserveCounts, forescale scales it afterwards.
    count = 1

    scaling {
      enabled = true
      min     = 1
      max     = 10
    }

    # One allocation per GPU node: the workers share that node's GPU through compose.
    constraint {
      distinct_hosts = true
    }

    spread {
      attribute = "${node.datacenter}"
      weight    = 100
    }

    # No deployments: every Job.Scale would otherwise open one and block the next scale for up to
    # progress_deadline (NOTES §C). Image rollouts then replace all allocations at once: roll off-peak.
    update {
      max_parallel = 0
    }

    # A worker dying makes the entrypoint exit 1: restart in place twice, then place it on another node.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    network {
      port "health" {
      }
    }

    task "workers" {
      driver = "raw_exec"

      config {
        command = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        args = [
          "run",
          "--project", "face-match-${NOMAD_ALLOC_ID}",
          "--file", "local/docker-compose.yml",
          "--workers", "2",
          "--drain-timeout", "60",
          "--stop-timeout", "10",
          "--start-timeout", "600",
          "--worker-stop-signal", "SIGTERM",
          "--lock-dir", "/run/forescale",
          "--health-addr", "${NOMAD_IP_health}:${NOMAD_PORT_health}",
        ]
      }

      # Teardown timeline: services deregistered → shutdown_delay → kill_signal to the entrypoint →
      # workers get SIGTERM and 60s to finish in-flight work → compose down -t 10 → exit 0.
      # kill_timeout = drain + stop + margin, and must stay ≤ the client's max_kill_timeout (300s).
      kill_signal    = "SIGTERM"
      kill_timeout   = "1m20s"
      shutdown_delay = "10s"

      template {
        destination = "local/docker-compose.yml"
        change_mode = "noop"
        data        = <<FORESCALE_EOF
# Rendered by forescale from forescale.jobspec-example.yaml (pool face-match); edit the config, not this file.
# Workers: 2 per GPU. Started by forescale-compose-entrypoint, one project per allocation.
services:
  worker-1:
    image: "registry.example.com/ml/face-match:2.0.1"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "face-match"
      io.forescale.pool: "face-match"
      io.forescale.worker: "1"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=1"
      - "FORESCALE_WORKERS=2"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
  worker-2:
    image: "registry.example.com/ml/face-match:2.0.1"
    pull_policy: if_not_present
    network_mode: host
    runtime: nvidia
    restart: "no"
    stop_signal: SIGTERM
    stop_grace_period: 10s
    labels:
      io.forescale.managed: "true"
      io.forescale.alloc: "$${NOMAD_ALLOC_ID:-none}"
      io.forescale.job: "ml-workers"
      io.forescale.group: "face-match"
      io.forescale.pool: "face-match"
      io.forescale.worker: "2"
    environment:
      - "NVIDIA_VISIBLE_DEVICES=$${NVIDIA_VISIBLE_DEVICES:?Nomad reserved no GPU for this task}"
      - "NVIDIA_DRIVER_CAPABILITIES=compute,utility"
      - "FORESCALE_WORKER_INDEX=2"
      - "FORESCALE_WORKERS=2"
      - "FORESCALE_DRAIN_TIMEOUT=60"
      - "NOMAD_ALLOC_ID=$${NOMAD_ALLOC_ID:-none}"
    logging:
      driver: json-file
      options:
        max-size: "20m"
        max-file: "3"
FORESCALE_EOF
      }

      # Rendered once into the allocation's shared directory: the poststop cleanup task runs the same file.
      template {
        destination = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        perms       = "0755"
        change_mode = "noop"
        data        = <<FORESCALE_EOF
#!/usr/bin/env python3
"""forescale-compose-entrypoint: run N docker compose workers under Nomad's raw_exec, and tear them down cleanly.

Nomad's raw_exec sends its kill_signal only to this process, then SIGKILLs the process group and the task
cgroup; the containers live under dockerd, so nothing but this script (and the poststop task) can stop them.

  run      reap stale projects, `compose up` in the foreground, watch the workers; on SIGTERM/SIGINT send
           the workers their stop signal, wait up to --drain-timeout, `compose down -t --stop-timeout`, exit 0;
           exit 1 (after removing every container) as soon as a worker dies.
  cleanup  remove every container of --project (the poststop task), then reap stale projects.
  reap     remove the containers of every forescale project whose owner is gone.

Liveness of a project = a lock: the `run` of a project holds an exclusive flock on <lock-dir>/<project>.lock
for its whole life. The kernel drops it when the process dies, even by SIGKILL, so a project whose lock can
be taken has no owner and is safe to remove. Containers carry the label io.forescale.managed=true.

Python 3 standard library only (Debian's docker-compose v1 needs python3 anyway). Works with compose v2
(`docker compose`) and v1 (`docker-compose`); pick one with --compose or FORESCALE_COMPOSE.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import http.server
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANAGED_LABEL = "io.forescale.managed=true"
PROJECT_LABEL = "com.docker.compose.project"
POLL_S = 0.25
DOCKER_GRACE_S = 10.0  # docker CLI failures tolerated while watching before the allocation is failed


def log(message: str) -> None:
    """One timestamped line on stderr (Nomad keeps the task's stderr as its log)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    sys.stderr.write(f"{stamp} forescale-entrypoint[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


def docker(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; never raises on a non-zero exit unless ``check``."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def compose_command(choice: str | None) -> list[str]:
    """The compose CLI: --compose/FORESCALE_COMPOSE, else `docker compose` (v2) if present, else `docker-compose`."""
    if choice:
        return shlex.split(choice)
    try:
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if v2.returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return ["docker-compose"]


def containers(project: str | None = None, running_only: bool = False) -> list[dict[str, str]]:
    """Containers managed by forescale (optionally of one project): id, name, state, project."""
    args = ["ps", "--no-trunc", "--filter", f"label={MANAGED_LABEL}"]
    if not running_only:
        args.append("-a")
    if project:
        args += ["--filter", f"label={PROJECT_LABEL}={project}"]
    args += ["--format", '{{"{{"}}.ID}}\t{{"{{"}}.Names}}\t{{"{{"}}.State}}\t{{"{{"}}.Label "' + PROJECT_LABEL + '"}}']
    proc = docker(*args, check=True)
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            out.append({"id": parts[0], "name": parts[1], "state": parts[2], "project": parts[3]})
    return out


def remove_project(project: str) -> int:
    """Force-remove every container of ``project`` (works without the compose file); returns how many."""
    ids = [c["id"] for c in containers(project)]
    if ids:
        proc = docker("rm", "-f", "-v", *ids)
        if proc.returncode != 0:
            log(f"docker rm -f failed for {project}: {proc.stderr.strip()}")
    return len(ids)


class ProjectLock:
    """Exclusive flock on <lock_dir>/<project>.lock: held by the project's `run` for its whole life."""

    def __init__(self, lock_dir: Path, project: str) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.path = lock_dir / f"{project}.lock"
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def release(self, unlink: bool = False) -> None:
        # Unlink only when the project is over for good (cleanup): a lock file unlinked while another process
        # has it open would let two processes each "hold" the lock of the same project.
        if self.fd is None:
            return
        if unlink:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def reap(lock_dir: Path, keep: str | None = None) -> list[str]:
    """Remove the containers of every forescale project on this node whose owner no longer holds its lock."""
    reaped = []
    for project in sorted({c["project"] for c in containers() if c["project"] and c["project"] != keep}):
        lock = ProjectLock(lock_dir, project)
        if not lock.try_acquire():
            continue  # its `run` is alive (on this node): not ours to touch
        try:
            count = remove_project(project)
            log(f"reaped stale project {project}: removed {count} container(s)")
            reaped.append(project)
        finally:
            lock.release()
    return reaped


class Health:
    """/healthz: 200 while all N workers run and no stop was requested, 503 otherwise."""

    def __init__(self) -> None:
        self.ok = False

    def serve(self, addr: str) -> http.server.ThreadingHTTPServer:
        host, _, port = addr.rpartition(":")
        health = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 200 if health.ok and self.path.split("?")[0] in ("/healthz", "/") else 503
                body = b"ok\n" if code == 200 else b"not ready\n"
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log(f"health endpoint on http://{host or '127.0.0.1'}:{server.server_address[1]}/healthz")
        return server


class Runner:
    """The `run` mode: one compose project in the foreground with graceful teardown."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.project: str = args.project
        self.compose = [*compose_command(args.compose), "-p", self.project, "-f", args.file]
        self.stop_requested: str | None = None
        self.health = Health()
        self.child: subprocess.Popen[bytes] | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop_requested is None:
            self.stop_requested = name
        else:
            log(f"received {name} again; teardown is already running")

    def run(self) -> int:
        args = self.args
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        lock = ProjectLock(Path(args.lock_dir), self.project)
        log(f"project {self.project}: waiting for its lock {lock.path}")
        if not lock.acquire(timeout=args.lock_timeout):
            log(f"project {self.project} is still owned by a live process (lock {lock.path}); exiting")
            return 1
        try:
            return self._run_locked()
        finally:
            lock.release()

    def _run_locked(self) -> int:
        args = self.args
        try:
            stale = reap(Path(args.lock_dir), keep=self.project)
            log(f"reaped {len(stale)} stale project(s)")
            leftover = remove_project(self.project)
            if leftover:
                log(f"removed {leftover} leftover container(s) of a previous run of {self.project}")
            if args.health_addr:
                self.health.serve(args.health_addr)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            log(f"cannot prepare the node: {exc}; exit 1")
            return 1
        if self.stop_requested:
            log(f"{self.stop_requested} before start; nothing to stop")
            return 0
        cmd = [*self.compose, "up", "--no-build", "--no-color"]
        log(f"starting {args.workers} worker(s): {shlex.join(cmd)}")
        code = 1
        try:
            # Own process group: a terminal's Ctrl-C reaches only us, so compose never starts its own teardown.
            self.child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
            code = self._watch()
        except Exception as exc:  # whatever went wrong, the containers must still go
            log(f"error while watching the workers: {exc}")
            code = 1
        finally:
            self.health.ok = False
            self._teardown(drain=code == 0)
        log(f"exit {code}")
        return code

    def _watch(self) -> int:
        """Wait for a stop signal (→ 0), a dead worker or compose exiting (→ 1), or a start timeout (→ 1)."""
        args = self.args
        started = time.monotonic()
        all_up = False
        failures = 0
        assert self.child is not None
        while True:
            if self.stop_requested:
                log(f"received {self.stop_requested}: stopping {args.workers} worker(s)")
                return 0
            try:
                state = containers(self.project)
                failures = 0
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                failures += 1
                if failures * POLL_S >= DOCKER_GRACE_S:
                    log(f"docker does not answer for {DOCKER_GRACE_S:g}s ({exc}); giving up")
                    return 1
                time.sleep(POLL_S)
                continue
            running = [c for c in state if c["state"] == "running"]
            dead = [c for c in state if c["state"] in ("exited", "dead")]
            if dead:
                names = ", ".join(c["name"] for c in dead)
                log(f"worker(s) stopped unexpectedly: {names}; tearing down so Nomad restarts the allocation")
                return 1
            if self.child.poll() is not None:
                log(f"compose exited with code {self.child.returncode} before a stop was requested")
                return 1
            if len(running) >= args.workers and not all_up:
                all_up = True
                log(f"all {len(running)} worker(s) running")
            self.health.ok = all_up and len(running) >= args.workers
            if not all_up and time.monotonic() - started > args.start_timeout:
                log(f"only {len(running)}/{args.workers} worker(s) running after {args.start_timeout:g}s")
                return 1
            time.sleep(POLL_S)

    def _teardown(self, drain: bool) -> None:
        """Drain (on a requested stop), `compose down`, force-remove leftovers; never raises."""
        args = self.args
        if drain:
            try:
                self._drain()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                log(f"drain failed: {exc}; going straight to compose down")
        stop_t = str(int(args.stop_timeout))
        log(f"compose down -t {stop_t}")
        try:
            down = subprocess.run(
                [*self.compose, "down", "-t", stop_t], capture_output=True, text=True, timeout=args.stop_timeout + 60
            )
            if down.returncode != 0:
                log(f"compose down failed ({down.returncode}): {down.stderr.strip()[-500:]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"compose down did not finish: {exc}")
        try:
            removed = remove_project(self.project)
            if removed:
                log(f"force-removed {removed} container(s) compose left behind")
            log(f"project {self.project}: no container left")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            log(f"cannot verify that {self.project} is gone ({exc}); the poststop task and the next start reap it")
        self._stop_child()

    def _drain(self) -> None:
        args = self.args
        running = containers(self.project, running_only=True)
        if not running:
            return
        log(f"sending {args.worker_stop_signal} to {len(running)} worker(s) (stop taking new work)")
        docker("kill", "--signal", args.worker_stop_signal, *[c["id"] for c in running])
        deadline = time.monotonic() + args.drain_timeout
        while running and time.monotonic() < deadline:
            time.sleep(POLL_S)
            running = containers(self.project, running_only=True)
        if running:
            log(f"{len(running)} worker(s) still busy after the {args.drain_timeout:g}s drain timeout")
        else:
            log("all workers finished their in-flight work")

    def _stop_child(self) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cleanup(args: argparse.Namespace) -> int:
    """Poststop: the main task is gone (or SIGKILLed); remove its containers, then reap other stale projects."""
    lock = ProjectLock(Path(args.lock_dir), args.project)
    if not lock.acquire(timeout=args.lock_timeout):
        log(f"project {args.project} is still locked after {args.lock_timeout:g}s; removing its containers anyway")
    try:
        count = remove_project(args.project)
        log(f"cleanup of {args.project}: removed {count} container(s)")
    finally:
        lock.release(unlink=True)
    reap(Path(args.lock_dir))
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    alloc = env.get("NOMAD_ALLOC_ID", "")
    default_project = f"fs-{alloc}" if alloc else None
    parser = argparse.ArgumentParser(prog="forescale-compose-entrypoint", description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["run", "cleanup", "reap"])
    parser.add_argument("--project", default=default_project, help="compose project (default fs-$NOMAD_ALLOC_ID)")
    parser.add_argument("--file", "-f", default="local/docker-compose.yml", help="compose file")
    parser.add_argument("--workers", type=int, default=1, help="worker containers the compose file starts")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds for in-flight work")
    parser.add_argument("--stop-timeout", type=float, default=10.0, help="compose down -t (seconds)")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds until all workers run")
    parser.add_argument("--worker-stop-signal", default="SIGTERM", help="signal telling workers to stop")
    parser.add_argument("--lock-dir", default=env.get("FORESCALE_LOCK_DIR", "/run/forescale"))
    parser.add_argument("--lock-timeout", type=float, default=30.0, help="seconds to wait for the project lock")
    parser.add_argument("--compose", default=env.get("FORESCALE_COMPOSE"), help="compose CLI, e.g. 'docker compose'")
    parser.add_argument("--health-addr", default=None, help="serve /healthz on HOST:PORT")
    args = parser.parse_args(argv)
    if args.mode in ("run", "cleanup") and not args.project:
        parser.error("--project is required when NOMAD_ALLOC_ID is not set")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.mode == "run":
        return Runner(args).run()
    try:
        if args.mode == "cleanup":
            return cleanup(args)
        reaped = reap(Path(args.lock_dir))
        log(f"reaped {len(reaped)} stale project(s)")
        return 0
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log(f"{args.mode} failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
FORESCALE_EOF
      }

      resources {
        # The entrypoint and the compose CLI only: the containers run under dockerd, outside this cgroup, and
        # their size is unknown (set jobspec.worker_cpus and worker_memory to reserve them here).
        cpu    = 200
        memory = 256

        device "nvidia/gpu" {
          count = 1
        }
      }

      service {
        provider = "nomad"
        name     = "face-match"
        port     = "health"
        tags     = ["forescale", "pool-face-match"]

        check {
          name     = "workers-running"
          type     = "http"
          path     = "/healthz"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }

    # Safety net: runs after "workers" stopped for any reason, even SIGKILL, and removes what is left.
    task "cleanup" {
      driver = "raw_exec"

      lifecycle {
        hook = "poststop"
      }

      config {
        command = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        args = [
          "cleanup",
          "--project", "face-match-${NOMAD_ALLOC_ID}",
          "--lock-dir", "/run/forescale",
        ]
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
