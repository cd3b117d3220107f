"""contrib/systemd/forescale.service: systemd accepts it, it is hardened, and its commands work as written
(the config check before start; the daemon stops cleanly with exit 0 on the unit's KillSignal)."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import pytest
import yaml

from tests import REPO
from tests.conftest import require_service
from tests.helpers import free_port, http_get, pool_dict

UNIT = REPO / "contrib" / "systemd" / "forescale.service"
INSTALLED = "/opt/forescale/bin/forescale"
FORESCALE = str(Path(sys.executable).parent / "forescale")


def service_section() -> dict[str, list[str]]:
    """The [Service] keys; systemd allows repeated keys (SystemCallFilter=), so every value is kept."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        require_service("systemd-analyze", "apt-get install systemd (scripts/ci/setup.sh does)")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with the install path pointing at this checkout's forescale (verify checks it exists)."""
    path = tmp_path / "forescale.service"
    path.write_text(UNIT.read_text().replace(INSTALLED, FORESCALE))
    return path


def test_systemd_verifies_the_unit(unit_here: Path) -> None:
    result = analyze("verify", f"./{unit_here.name}", cwd=unit_here.parent)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_unit_is_hardened(unit_here: Path) -> None:
    """systemd's own exposure score (0 = locked down, 10 = unprotected; --threshold counts tenths); a plain
    unit scores ~9.6."""
    result = analyze("security", "--offline=true", "--threshold=20", f"./{unit_here.name}", cwd=unit_here.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    score = re.search(r"Overall exposure level for forescale.service: ([0-9.]+) (\w+)", result.stdout)
    assert score and float(score[1]) <= 2.0 and score[2] == "OK", result.stdout[-500:]


def test_unit_commands_check_the_config_and_stop_cleanly_on_its_kill_signal(tmp_path: Path) -> None:
    service = service_section()
    assert service["ExecStart"][0].startswith(INSTALLED)
    config = tmp_path / "forescale.yaml"
    port, dead = free_port(), free_port()
    config.write_text(
        yaml.safe_dump(
            {
                "prometheus": {"url": f"http://127.0.0.1:{dead}", "timeout": "2s"},
                "nomad": {"address": f"http://127.0.0.1:{dead}", "retries": 0, "timeout": "2s"},
                # as the unit's header says: writable files in the state directory, not next to the config
                "audit_log": str(tmp_path / "state" / "forescale-audit.jsonl"),
                "overrides": {"path": str(tmp_path / "state" / "forescale-overrides.json")},
                "daemon": {"listen_port": port},
                "pools": [pool_dict("ocr")],
            }
        )
    )
    (tmp_path / "state").mkdir()

    def command(key: str) -> list[str]:
        text = service[key][0].replace(INSTALLED, FORESCALE).replace("/etc/forescale/forescale.yaml", str(config))
        return shlex.split(text)

    pre = subprocess.run(command("ExecStartPre"), capture_output=True, text=True, timeout=60)
    assert pre.returncode == 0 and "is valid" in " ".join(pre.stdout.split()), pre.stdout + pre.stderr
    config.write_text(config.read_text().replace("capacity_per_node: 10.0", "capacity_per_node: -1"))
    bad = subprocess.run(command("ExecStartPre"), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "capacity_per_node" in "".join((bad.stdout + bad.stderr).split())  # named
    config.write_text(config.read_text().replace("capacity_per_node: -1", "capacity_per_node: 10.0"))

    kill_signal = getattr(signal, service["KillSignal"][0])
    stop_timeout = float(service["TimeoutStopSec"][0])
    proc = subprocess.Popen(command("ExecStart"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = None
        for _ in range(300):  # bounded: the first tick finishes within seconds (each wait ≤ 0.1 s)
            try:
                status, _body = http_get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert status == 200, proc.stdout.read() if proc.poll() is not None and proc.stdout else "never healthy"
        proc.send_signal(kill_signal)
        out, _ = proc.communicate(timeout=stop_timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Exit 0 on stop: Restart=on-failure does not restart a deliberate stop.
    assert proc.returncode == 0, out
    assert service["Restart"] == ["on-failure"]
