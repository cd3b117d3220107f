"""Fault class 4b (issue 22, item 3): a shadow trial never silences production on the same host.

`forescale run --dry-run` (and a config whose pools are all in shadow) writes nothing, so it holds no leader
lock of any kind — not even the local flock on ``<audit_log>.lock``. A real `tick` or daemon with the same
config beside it leads and scales; the shadow run exports ``forescale_leader 0`` and ``forescale_shadow 1``, so
the "no leader" alert is never hidden by it; a standby says since when in /healthz.
"""

from __future__ import annotations

import json
import re
import urllib.error

from tests.fixtures.faults import FaultWorld, run_forescale
from tests.helpers import http_get
from tests.integration.faults.test_leader_election import Daemon, counts, daemon_config, daemons, wait_until


def metric(d: Daemon, name: str) -> float | None:
    try:
        status, body = http_get(f"http://127.0.0.1:{d.port}/metrics")
    except (urllib.error.URLError, OSError):
        return None
    match = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if status == 200 and match else None


def healthz(d: Daemon) -> dict[str, object]:
    health = d.health()
    assert health is not None
    return dict(json.loads(health[1]))


class DryRun(Daemon):
    def start(self) -> Daemon:
        import subprocess
        import sys

        from tests import REPO

        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run", "--dry-run", "-c", str(self.path)],
                stdout=out,
                stderr=out,
                env=env,
            )
        return self


def test_a_cron_tick_beside_a_dry_run_daemon_scales(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 180.0  # 18 nodes
    cfg = daemon_config(fault_world, 10)
    cfg["daemon"]["interval"] = "20m"
    shadow = DryRun(fault_world, "shadow", cfg)
    with daemons(shadow):
        assert wait_until(lambda: "pools" in (shadow.health() or (0, ""))[1], 60), shadow.output()
        assert not (fault_world.tmp / "audit.jsonl.lock").exists(), "the shadow run created the local lock file"
        real = run_forescale(["tick", "-c", str(fault_world.write(fault_world.base_config(), "real.yaml"))])
        shadow_health = healthz(shadow)
        shadow_leader, shadow_flag = metric(shadow, "forescale_leader"), metric(shadow, "forescale_shadow")
    assert real.code == 0, real.text
    assert "standby" not in real.text, real.text
    assert counts(fault_world) == [18], f"the real tick did not scale beside the shadow run: {real.text}"
    assert shadow_health["role"] == "shadow", shadow_health
    assert (shadow_leader, shadow_flag) == (0.0, 1.0)


def test_a_real_daemon_beside_a_shadow_config_daemon_leads(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 180.0
    trial = daemon_config(fault_world, 10)
    trial["pools"][0]["mode"] = "shadow"
    trial["daemon"]["interval"] = "20m"
    real = daemon_config(fault_world, 10)
    real["daemon"]["interval"] = "20m"
    a, b = Daemon(fault_world, "trial", trial), Daemon(fault_world, "real", real)
    with daemons(a):
        assert wait_until(lambda: "pools" in (a.health() or (0, ""))[1], 60), a.output()
        with daemons(b):
            assert wait_until(lambda: b.leader() == 1, 60), b.output()
            assert wait_until(lambda: counts(fault_world) == [18], 30), b.output()
            trial_health = healthz(a)
    assert a.leader() is None or a.leader() == 0
    assert trial_health["role"] == "shadow"


def test_a_standby_says_since_when(fault_world: FaultWorld) -> None:
    """Two real daemons on one host: the one behind the local lock says it stands by, and since when."""
    fault_world.script.value = lambda t, end: 150.0
    cfg = daemon_config(fault_world, 10)
    cfg["daemon"]["interval"] = "20m"
    a, b = Daemon(fault_world, "a", cfg), Daemon(fault_world, "b", dict(cfg))
    with daemons(a, b):
        assert wait_until(lambda: {a.leader(), b.leader()} == {0, 1}, 60), a.output() + b.output()
        standby = a if a.leader() == 0 else b
        health = healthz(standby)
    assert health["role"] == "standby" and health["ok"] is True
    assert isinstance(health["standby_since"], str) and "T" in health["standby_since"]
    assert "since" in str(health["standby"]) and float(str(health["standby_for_s"])) >= 0
