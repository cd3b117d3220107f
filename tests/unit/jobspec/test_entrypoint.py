"""The entrypoint without Docker: lint/type checks of the shipped scripts, CLI defaults, compose selection, lock."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from autoscaler.core.resources import bundled
from tests import REPO

ENTRYPOINT = REPO / "scripts" / "forescale-compose-entrypoint"
VENV_BIN = Path(sys.executable).parent


def load_entrypoint() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("forescale_compose_entrypoint", str(ENTRYPOINT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_entrypoint_is_bundled_executable_python3_stdlib_only() -> None:
    assert bundled("scripts", "forescale-compose-entrypoint").resolve() == ENTRYPOINT.resolve()
    assert ENTRYPOINT.stat().st_mode & 0o111, "executable bit (raw_exec runs it directly)"
    assert ENTRYPOINT.read_text().startswith("#!/usr/bin/env python3\n")
    out = subprocess.run([str(ENTRYPOINT), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "run" in out.stdout and "cleanup" in out.stdout




def test_start_dockerd_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck", pytrace=False)
    out = subprocess.run(
        ["shellcheck", str(REPO / "scripts" / "ci" / "start-dockerd.sh")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout


def test_project_defaults_to_the_allocation_id(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = load_entrypoint()
    monkeypatch.setenv("NOMAD_ALLOC_ID", "5b3c6f2e-1111-2222-3333-444455556666")
    args = ep.parse_args(["run", "--workers", "4"])
    assert args.project == "fs-5b3c6f2e-1111-2222-3333-444455556666"
    assert args.workers == 4 and args.drain_timeout == 60.0 and args.stop_timeout == 10.0
    monkeypatch.delenv("NOMAD_ALLOC_ID")
    with pytest.raises(SystemExit):
        ep.parse_args(["run"])


def test_compose_choice_explicit_v2_or_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = load_entrypoint()
    assert ep.compose_command("docker compose") == ["docker", "compose"]
    assert ep.compose_command("docker-compose") == ["docker-compose"]

    class Done:
        def __init__(self, code: int) -> None:
            self.returncode = code

    monkeypatch.setattr(ep.subprocess, "run", lambda *a, **k: Done(0))
    assert ep.compose_command(None) == ["docker", "compose"], "v2 plugin answers → docker compose"
    monkeypatch.setattr(ep.subprocess, "run", lambda *a, **k: Done(1))
    assert ep.compose_command(None) == ["docker-compose"], "no v2 plugin → Debian's docker-compose v1"


def test_project_lock_is_exclusive_and_released_on_process_death(tmp_path: Path) -> None:
    ep = load_entrypoint()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX);"
         " print('locked', flush=True); sys.stdin.read()",
         str(tmp_path / "p.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        lock = ep.ProjectLock(tmp_path, "p")
        assert lock.try_acquire() is False, "a live owner keeps its project"
        holder.kill()  # SIGKILL: the kernel drops the flock
        holder.wait(timeout=10)
        assert lock.acquire(timeout=5) is True
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_docker_failing_means_exit_1_with_a_readable_line(tmp_path: Path) -> None:
    """A docker CLI that cannot reach its daemon: `run` and `cleanup` fail fast with one log line each."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "NOMAD_ALLOC_ID": "abc"}
    common = ["--lock-dir", str(tmp_path / "locks"), "--lock-timeout", "1"]
    run = subprocess.run(
        [str(ENTRYPOINT), "run", "--file", "x.yml", "--compose", "docker-compose", *common],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    assert "cannot prepare the node" in run.stderr and "Cannot connect to the Docker daemon" in run.stderr
    assert "Traceback" not in run.stderr
    cleanup = subprocess.run([str(ENTRYPOINT), "cleanup", *common], env=env, capture_output=True, text=True, timeout=60)
    assert cleanup.returncode == 1 and "cleanup failed" in cleanup.stderr and "Traceback" not in cleanup.stderr
