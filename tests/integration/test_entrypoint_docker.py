"""The raw_exec entrypoint against a real Docker daemon and the real compose CLI.

Each test renders the compose file through the real template (test image, ``network_mode: none``,
``pull_policy: never``), runs ``scripts/forescale-compose-entrypoint`` the way Nomad does (env
NOMAD_ALLOC_ID and NVIDIA_VISIBLE_DEVICES, signals to its PID only) and waits on conditions: container
counts and the workers' marker files. Timeouts are short (drain 2-5 s, stop 2 s) to keep this fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autoscaler.config import parse_config
from autoscaler.jobspec.workers import render_compose
from tests import REPO
from tests.fixtures.docker import project_containers, wait_for

pytestmark = pytest.mark.docker

ENTRYPOINT = REPO / "scripts" / "forescale-compose-entrypoint"
GPU = "GPU-8c2b7f3e-test"


@dataclass
class Alloc:
    """One simulated Nomad allocation running the entrypoint."""

    project: str
    alloc_id: str
    work: Path
    proc: subprocess.Popen[bytes]
    log: Path
    workers: int
    health_url: str | None

    def marker(self, i: int, kind: str) -> Path:
        return self.work / f"w{i}.{kind}"

    def lines(self, i: int, kind: str) -> list[str]:
        path = self.marker(i, kind)
        return path.read_text().split() if path.exists() else []

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config_text(image: str, work: Path, workers: int, drain: int, stop: int, env: dict[str, str]) -> str:
    jobspec: dict[str, Any] = {
        "image": image,
        "workers_per_gpu": workers,
        "network_mode": "none",
        "pull_policy": "never",
        "gpu_runtime": "none",
        "volumes": [f"{work}:/work"],
        "env": {"WORK_S": "1.5", **env},
        "drain_timeout": f"{drain}s",
        "stop_timeout": f"{stop}s",
        "kill_margin": "5s",
        "max_kill_timeout": "5m",
    }
    pool = {
        "name": "test",
        "query": "up",
        "nomad": {"job": "ml-test", "group": "test"},
        "capacity_per_node": 1,
        "min": 1,
        "max": 3,
        "jobspec": jobspec,
    }
    return json.dumps({"pools": [pool]})


def start_alloc(
    tmp_path: Path,
    docker_env: dict[str, str],
    image: str,
    projects: list[str],
    *,
    name: str = "a",
    workers: int = 4,
    drain: int = 5,
    stop: int = 2,
    env: dict[str, str] | None = None,
    health: bool = False,
) -> Alloc:
    """Render the compose file and start the entrypoint like Nomad's raw_exec would."""
    base = tmp_path / name
    work = base / "work"
    work.mkdir(parents=True)
    work.chmod(0o777)
    cfg_path = base / "forescale.yaml"
    cfg_path.write_text(_config_text(image, work, workers, drain, stop, env or {}))
    config = parse_config(cfg_path.read_text(), cfg_path)
    compose = base / "docker-compose.yml"
    compose.write_text(render_compose(config, config.pools[0]))
    alloc_id = str(uuid.uuid4())
    project = f"fstest-{alloc_id[:12]}"
    projects.append(project)
    health_url = None
    args = [
        str(ENTRYPOINT),
        "run",
        "--project",
        project,
        "--file",
        str(compose),
        "--workers",
        str(workers),
        "--drain-timeout",
        str(drain),
        "--stop-timeout",
        str(stop),
        "--start-timeout",
        "60",
        "--lock-dir",
        str(tmp_path / "locks"),
    ]
    if health:
        port = _free_port()
        args += ["--health-addr", f"127.0.0.1:{port}"]
        health_url = f"http://127.0.0.1:{port}/healthz"
    log = base / "entrypoint.log"
    proc_env = {**docker_env, "NOMAD_ALLOC_ID": alloc_id, "NVIDIA_VISIBLE_DEVICES": GPU}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=proc_env, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    return Alloc(project, alloc_id, work, proc, log, workers, health_url)


def wait_ready(alloc: Alloc, env: dict[str, str], timeout: float = 60) -> None:
    """All workers run and installed their SIGTERM trap."""
    wait_for(
        lambda: (
            all(alloc.marker(i, "ready").exists() for i in range(1, alloc.workers + 1))
            and len(project_containers(env, alloc.project, running_only=True)) == alloc.workers
        ),
        timeout,
        f"{alloc.workers} workers of {alloc.project} to be ready\n{alloc.log_text()}",
    )


def wait_exit(alloc: Alloc, timeout: float) -> int:
    try:
        return alloc.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        alloc.proc.kill()
        raise AssertionError(f"entrypoint did not exit within {timeout}s\n{alloc.log_text()}") from None


def _health(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_four_workers_come_up_and_sigterm_drains_in_flight_work(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    alloc = start_alloc(tmp_path, docker_env, worker_image, docker_projects, workers=4, drain=5, health=True)
    wait_ready(alloc, docker_env)
    assert alloc.health_url is not None
    wait_for(lambda: _health(alloc.health_url or "") == 200, 10, "/healthz to answer 200")

    # Each container carries the allocation ID and sees the GPU Nomad reserved.
    ids = project_containers(docker_env, alloc.project)
    labels = subprocess.run(
        ["docker", "inspect", "--format", '{{index .Config.Labels "io.forescale.alloc"}}', *ids],
        env=docker_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert labels == [alloc.alloc_id] * 4
    for i in range(1, 5):
        assert alloc.marker(i, "ready").read_text().strip() == f"gpu={GPU} alloc={alloc.alloc_id}"

    in_flight = {i: int(alloc.lines(i, "started")[-1]) for i in range(1, 5)}
    t0 = time.monotonic()
    alloc.proc.send_signal(signal.SIGTERM)
    code = wait_exit(alloc, timeout=5 + 2 + 20)
    elapsed = time.monotonic() - t0

    assert code == 0, alloc.log_text()
    for i in range(1, 5):
        assert alloc.lines(i, "term") == ["term"], f"worker {i} got its stop signal exactly once"
        assert alloc.marker(i, "drained").exists(), f"worker {i} exited on its own after draining"
        done = [int(x) for x in alloc.lines(i, "done")]
        assert done and done[-1] >= in_flight[i], f"worker {i}: item {in_flight[i]} in flight at SIGTERM finished"
    assert elapsed < 5 + 2 + 10, f"teardown took {elapsed:.1f}s"
    assert project_containers(docker_env, alloc.project) == []
    log = alloc.log_text()
    assert "sending SIGTERM to 4 worker(s)" in log
    assert "all workers finished their in-flight work" in log
    assert "exit 0" in log
    stamped = [line for line in log.splitlines() if "forescale-entrypoint[" in line]
    assert stamped and all(line[:4].isdigit() and line[10] == "T" for line in stamped)


def test_worker_ignoring_sigterm_is_killed_at_the_timeout_and_removed(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    drain, stop = 2, 2
    alloc = start_alloc(
        tmp_path,
        docker_env,
        worker_image,
        docker_projects,
        workers=2,
        drain=drain,
        stop=stop,
        env={"IGNORE_TERM": "2"},
    )
    wait_ready(alloc, docker_env)
    t0 = time.monotonic()
    alloc.proc.send_signal(signal.SIGTERM)
    code = wait_exit(alloc, timeout=drain + stop + 20)
    elapsed = time.monotonic() - t0

    assert code == 0, alloc.log_text()
    assert alloc.marker(1, "drained").exists()
    assert alloc.lines(2, "term"), "the stubborn worker did receive its stop signal"
    assert not alloc.marker(2, "drained").exists()
    assert elapsed >= drain, "the entrypoint waited the drain timeout for the stubborn worker"
    assert elapsed < drain + stop + 15
    assert "1 worker(s) still busy after the 2s drain timeout" in alloc.log_text()
    assert project_containers(docker_env, alloc.project) == []


def test_crashing_worker_exits_non_zero_and_leaves_no_container(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    alloc = start_alloc(tmp_path, docker_env, worker_image, docker_projects, workers=3, drain=5, stop=2)
    wait_ready(alloc, docker_env)
    (alloc.work / "crash-2").touch()
    code = wait_exit(alloc, timeout=60)  # a bound, not a timing claim: compose v1 is slow on a loaded machine
    assert code != 0
    assert "stopped unexpectedly" in alloc.log_text()
    assert project_containers(docker_env, alloc.project) == []


def test_missing_image_fails_fast_without_leftovers(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    """pull_policy never + an image the node does not have: compose fails, the entrypoint exits 1 at once."""
    alloc = start_alloc(tmp_path, docker_env, "forescale-test-absent:0", docker_projects, workers=2)
    code = wait_exit(alloc, timeout=60)
    assert code == 1
    assert "compose exited with code" in alloc.log_text()
    assert project_containers(docker_env, alloc.project) == []


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _sigkill_like_nomad(alloc: Alloc) -> None:
    """SIGKILL the entrypoint and everything it started (what Nomad's process-group/cgroup kill does)."""
    victims = [alloc.proc.pid]
    for pid in list(victims):
        victims += _children(pid)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    alloc.proc.wait(timeout=10)


def test_sigkilled_entrypoint_leaks_and_poststop_cleanup_removes_everything(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    alloc = start_alloc(tmp_path, docker_env, worker_image, docker_projects, workers=2)
    wait_ready(alloc, docker_env)
    _sigkill_like_nomad(alloc)
    # The containers are not children of the task: they survive the kill (NOTES §A).
    assert len(project_containers(docker_env, alloc.project, running_only=True)) == 2

    cleanup = subprocess.run(
        [
            str(ENTRYPOINT),
            "cleanup",
            "--project",
            alloc.project,
            "--lock-dir",
            str(tmp_path / "locks"),
            "--lock-timeout",
            "5",
        ],
        env={**docker_env, "NOMAD_ALLOC_ID": alloc.alloc_id},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"cleanup of {alloc.project}: removed 2 container(s)" in cleanup.stderr
    assert project_containers(docker_env, alloc.project) == []


def test_next_start_reaps_stale_projects_but_not_live_ones(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    live = start_alloc(tmp_path, docker_env, worker_image, docker_projects, name="live", workers=1)
    stale = start_alloc(tmp_path, docker_env, worker_image, docker_projects, name="stale", workers=2)
    wait_ready(live, docker_env)
    wait_ready(stale, docker_env)
    _sigkill_like_nomad(stale)
    assert len(project_containers(docker_env, stale.project)) == 2

    fresh = start_alloc(tmp_path, docker_env, worker_image, docker_projects, name="fresh", workers=1)
    wait_ready(fresh, docker_env)
    assert project_containers(docker_env, stale.project) == []
    assert len(project_containers(docker_env, live.project, running_only=True)) == 1
    assert f"reaped stale project {stale.project}: removed 2 container(s)" in fresh.log_text()

    for alloc in (live, fresh):
        alloc.proc.send_signal(signal.SIGTERM)
    for alloc in (live, fresh):
        assert wait_exit(alloc, timeout=30) == 0, alloc.log_text()
        assert project_containers(docker_env, alloc.project) == []


def test_second_run_of_a_live_project_refuses_to_start(
    tmp_path: Path, docker_env: dict[str, str], worker_image: str, docker_projects: list[str]
) -> None:
    alloc = start_alloc(tmp_path, docker_env, worker_image, docker_projects, workers=1)
    wait_ready(alloc, docker_env)
    twin = subprocess.run(
        [
            str(ENTRYPOINT),
            "run",
            "--project",
            alloc.project,
            "--file",
            "/nonexistent.yml",
            "--lock-dir",
            str(tmp_path / "locks"),
            "--lock-timeout",
            "0.5",
        ],
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert twin.returncode == 1
    assert "still owned by a live process" in twin.stderr
    assert len(project_containers(docker_env, alloc.project, running_only=True)) == 1
    alloc.proc.send_signal(signal.SIGTERM)
    assert wait_exit(alloc, timeout=30) == 0
