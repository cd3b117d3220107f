"""pytest fixtures for the docker tests (loaded by tests/conftest.py).

``docker_env`` finds a Docker daemon (``$DOCKER_HOST``, else the one scripts/ci/start-dockerd.sh recorded in
``.run/env.sh``). ``worker_image`` builds a tiny test image with ``docker import`` (no registry): busybox plus
``/worker.sh``, a worker that simulates in-flight work and reports what it saw as marker files in ``/work``
(bind-mounted from the test's tmp dir):

- ``w<i>.ready``    the SIGTERM trap is installed and the first work item starts;
- ``w<i>.started``  number of the work item in flight; ``w<i>.done`` lines: items finished;
- ``w<i>.term``     the worker received SIGTERM; ``w<i>.drained`` it then finished its item and exited 0.

Env knobs: ``WORK_S`` (seconds per item), ``IGNORE_TERM`` (worker indexes that ignore SIGTERM); a file
``/work/crash-<i>`` makes worker i exit 3.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[1]
IMAGE_REPO = "forescale-test-worker"

WORKER_SH = r"""#!/bin/sh
# forescale test worker: work items of WORK_S seconds; on SIGTERM finish the item in flight, then exit 0.
i="${FORESCALE_WORKER_INDEX:-0}"
name="/work/w$i"
stopping=0
ignore=0
for n in ${IGNORE_TERM:-}; do [ "$n" = "$i" ] && ignore=1; done
if [ "$ignore" = 1 ]; then
  trap 'echo term >> "$name.term"' TERM
else
  trap 'stopping=1; echo term >> "$name.term"' TERM
fi
echo "gpu=$NVIDIA_VISIBLE_DEVICES alloc=$NOMAD_ALLOC_ID" > "$name.ready"
item=0
while [ "$stopping" = 0 ]; do
  if [ -e "/work/crash-$i" ]; then echo "worker $i crashing"; exit 3; fi
  item=$((item + 1))
  echo "$item" > "$name.started"
  sleep "${WORK_S:-1}" &
  pid=$!
  # `wait` returns early when the trap runs: keep waiting until the item is really finished.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  echo "$item" >> "$name.done"
done
echo drained > "$name.drained"
exit 0
"""


def _docker_host() -> str | None:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    env_sh = REPO / ".run" / "env.sh"
    if env_sh.exists():
        match = re.search(r"^export DOCKER_HOST=(\S+)$", env_sh.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def _answers(env: dict[str, str]) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


@pytest.fixture(scope="session")
def docker_env() -> dict[str, str]:
    """Environment for docker/compose subprocesses, pointing at a daemon that answers (or fail/skip)."""
    env = dict(os.environ)
    host = _docker_host()
    if host:
        env["DOCKER_HOST"] = host
    if not _answers(env):
        require_service("docker", "no Docker daemon answers (scripts/ci/start-dockerd.sh starts one)")
    if (
        shutil.which("docker-compose") is None
        and subprocess.run(["docker", "compose", "version"], env=env, capture_output=True).returncode != 0
    ):
        require_service("docker", "neither `docker compose` nor `docker-compose` is installed")
    return env


def _rootfs_tar() -> bytes:
    """A rootfs with a static busybox (Debian busybox-static) and /worker.sh."""
    path = Path(shutil.which("busybox") or "/bin/busybox")
    data = path.read_bytes() if path.exists() else b""
    if not data or b"ld-linux" in data[:4096]:  # a dynamic binary names its loader in the first page
        require_service("docker", "a static busybox is needed to build the test image (apt-get install busybox-static)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)

        def add_file(name: str, content: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = mode
            tar.addfile(info, io.BytesIO(content))

        for d in ("bin", "tmp", "work", "proc", "sys", "dev", "etc"):
            add_dir(d)
        add_file("bin/busybox", data, 0o755)
        for applet in ("sh", "sleep", "echo", "cat", "kill", "touch", "ls", "date", "true", "false"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        add_file("worker.sh", WORKER_SH.encode(), 0o755)
    return buf.getvalue()


@pytest.fixture(scope="session")
def worker_image(docker_env: dict[str, str]) -> str:
    """The test worker image, built once per content with `docker import` (no registry involved)."""
    tar = _rootfs_tar()
    tag = f"{IMAGE_REPO}:{hashlib.sha256(tar).hexdigest()[:12]}"
    have = subprocess.run(["docker", "image", "inspect", tag], env=docker_env, capture_output=True)
    if have.returncode != 0:
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["/worker.sh"]', "-", tag],
            input=tar,
            env=docker_env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    return tag


def project_containers(env: dict[str, str], project: str, running_only: bool = False) -> list[str]:
    """IDs of the containers of a compose project."""
    args = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"]
    if not running_only:
        args.insert(2, "-a")
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> float:
    """Poll ``condition`` until true (returns seconds waited) or fail after ``timeout`` seconds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - start


@pytest.fixture
def docker_projects(docker_env: dict[str, str]) -> Iterator[list[str]]:
    """Projects a test creates; whatever the outcome, their containers are force-removed afterwards."""
    projects: list[str] = []
    yield projects
    for project in projects:
        ids = project_containers(docker_env, project)
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], env=docker_env, capture_output=True)
