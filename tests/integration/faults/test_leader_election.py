"""Fault class 4: two daemons, or overlapping cron ticks, never both act.

Real processes (`forescale run`, `forescale tick`) against the fake Nomad (its Variables lock API) and a hostile
Prometheus. Every process is stopped by the test (SIGTERM, then SIGKILL) and every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests import REPO
from tests.fakes.hostile import Answer, prometheus_matrix
from tests.fixtures.faults import GROUP, JOB, FaultWorld, run_forescale
from tests.helpers import free_port, http_get


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(step)
    return False


class Daemon:
    def __init__(self, world: FaultWorld, name: str, cfg: dict[str, Any]) -> None:
        self.port = free_port()
        cfg.setdefault("daemon", {}).update(listen_port=self.port)
        self.path = world.write(cfg, f"{name}.yaml")
        self.log = world.tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run", "-c", str(self.path)], stdout=out, stderr=out, env=env
            )
        return self

    def leader(self) -> int | None:
        """forescale_leader from /metrics (None: not serving, or no such metric)."""
        try:
            status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        except (urllib.error.URLError, OSError):
            return None
        match = re.search(r"^forescale_leader (\S+)$", body, re.MULTILINE)
        return int(float(match.group(1))) if status == 200 and match else None

    def health(self) -> tuple[int, str] | None:
        try:
            return http_get(f"http://127.0.0.1:{self.port}/healthz")
        except (urllib.error.URLError, OSError):
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")


@contextmanager
def daemons(*ds: Daemon) -> Iterator[tuple[Daemon, ...]]:
    try:
        for d in ds:
            d.start()
        yield ds
    finally:
        for d in ds:
            d.stop()


def daemon_config(world: FaultWorld, capacity: float = 10, **leader: Any) -> dict[str, Any]:
    cfg = world.base_config()
    cfg["pools"][0]["capacity_per_node"] = capacity
    cfg["pools"][0]["max_step_down"] = None  # one step to the target: a second count can only come from a fight
    cfg["daemon"] = {"interval": "1s"}
    if leader:
        cfg["leader"] = leader
    return cfg


def counts(world: FaultWorld) -> list[int]:
    return [r.body["Count"] for r in world.scale_calls()]


def test_two_daemons_with_different_configs_do_not_fight(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 180.0  # capacity 10 → 18 nodes; capacity 20 → 9 nodes
    a = Daemon(fault_world, "a", daemon_config(fault_world, 10))
    b = Daemon(fault_world, "b", daemon_config(fault_world, 20))
    with daemons(a, b):
        assert wait_until(lambda: len(fault_world.scale_calls()) >= 1, 30), a.output() + b.output()
        threading.Event().wait(6)  # six more ticks each
        roles = sorted([a.leader(), b.leader()], key=lambda r: -1 if r is None else r)
        health = [a.health(), b.health()]
    assert len(set(counts(fault_world))) == 1, f"the daemons fought: scale calls {counts(fault_world)}"
    assert len(counts(fault_world)) == 1, f"duplicated scale calls: {counts(fault_world)}"
    assert roles == [0, 1], f"expected one leader and one follower, /metrics say {roles}"
    assert all(h is not None and h[0] == 200 for h in health), health
    assert any(h is not None and "standby" in h[1] for h in health), health


def test_overlapping_cron_ticks_on_one_host_act_once(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda req: Answer(200, prometheus_matrix(req, lambda t, e: 150.0), delay_s=6.0)
    cfg = fault_world.base_config()
    cfg["prometheus"]["timeout"] = "30s"  # slow, not broken: both runs get their answer
    path = fault_world.write(cfg)
    runs: list[Any] = [None, None]

    def one(i: int) -> None:
        runs[i] = run_forescale(["tick", "-c", str(path)], timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(r is not None and r.code == 0 for r in runs), [r.text for r in runs if r]
    assert counts(fault_world) == [15], f"scale calls: {counts(fault_world)}"
    assert any("another" in r.text for r in runs), [r.text for r in runs]


def test_overlapping_cron_ticks_on_two_hosts_act_once(fault_world: FaultWorld) -> None:
    """Two hosts (their own audit logs and lock files) share only Nomad: the Variables lock decides."""
    fault_world.script.answer = lambda req: Answer(200, prometheus_matrix(req, lambda t, e: 150.0), delay_s=6.0)
    paths = []
    for host in ("host-a", "host-b"):
        (fault_world.tmp / host).mkdir()
        cfg = fault_world.base_config()
        cfg["prometheus"]["timeout"] = "30s"
        cfg["audit_log"] = str(fault_world.tmp / host / "audit.jsonl")
        cfg["overrides"]["path"] = str(fault_world.tmp / host / "overrides.json")
        paths.append(fault_world.write(cfg, f"{host}.yaml"))
    runs: list[Any] = [None, None]

    def one(i: int) -> None:
        runs[i] = run_forescale(["tick", "-c", str(paths[i])], timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(r is not None and r.code == 0 for r in runs), [r.text for r in runs if r]
    assert counts(fault_world) == [15], f"scale calls: {counts(fault_world)}"


def test_a_cron_tick_stands_by_while_a_daemon_leads(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 180.0
    cfg = daemon_config(fault_world, 10)
    cfg["daemon"]["interval"] = "20m"
    with daemons(Daemon(fault_world, "a", cfg)) as (a,):
        assert wait_until(lambda: counts(fault_world) == [18], 30), a.output()
        other = fault_world.base_config()
        other["pools"][0]["capacity_per_node"] = 20  # would want 9
        other["audit_log"] = str(fault_world.tmp / "cron-audit.jsonl")
        run = run_forescale(["tick", "-c", str(fault_world.write(other, "cron.yaml"))], timeout=60)
    assert run.code == 0, run.text
    assert counts(fault_world) == [18], f"scale calls: {counts(fault_world)}"
    assert "leader" in run.text


def test_failover_after_the_leader_is_killed(fault_world: FaultWorld) -> None:
    """Leader SIGKILLed → the follower leads within 2×TTL + lock delay (+ one retry), one leader at a time,
    and no scale call is ever sent twice."""
    fault_world.script.value = lambda t, end: 150.0
    a = Daemon(fault_world, "a", daemon_config(fault_world, 10, ttl="10s", lock_delay="1s"))
    b = Daemon(fault_world, "b", daemon_config(fault_world, 10, ttl="10s", lock_delay="1s"))
    samples: list[tuple[float, int | None, int | None]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), a.leader(), b.leader()))
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    with daemons(a, b):
        watcher.start()
        try:
            assert wait_until(lambda: counts(fault_world) == [15], 30), a.output() + b.output()
            assert wait_until(lambda: {a.leader(), b.leader()} == {0, 1}, 30), (a.leader(), b.leader())
            leader, follower = (a, b) if a.leader() == 1 else (b, a)
            leader.kill()
            killed = time.monotonic()
            fault_world.script.value = lambda t, end: 250.0  # the new leader has work to do
            took_over = wait_until(lambda: follower.leader() == 1, 40)
            took = time.monotonic() - killed
            assert took_over, f"no takeover within 40 s:\n{follower.output()}"
            assert wait_until(lambda: counts(fault_world) == [15, 25], 15), counts(fault_world)
            threading.Event().wait(3)
        finally:
            stop.set()
            watcher.join(timeout=5)
    assert took <= 2 * 10 + 1 + 5 + 2, f"takeover took {took:.1f}s (2×TTL + delay + retry = 26 s)"
    both = [s for s in samples if s[1] == 1 and s[2] == 1]
    assert both == [], f"two leaders at once: {both[:3]}"
    assert counts(fault_world) == [15, 25], f"scale calls: {counts(fault_world)}"
    assert fault_world.nomad.group_count(JOB, GROUP) == 25


def test_a_leader_that_loses_its_lock_stops_acting_at_once(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 150.0
    frozen = [time.monotonic()]
    fault_world.nomad.clock = lambda: frozen[0]  # the stolen lock below never expires
    cfg = daemon_config(fault_world, 10, ttl="10s", lock_delay="1s")
    with daemons(Daemon(fault_world, "a", cfg)) as (a,):
        assert wait_until(lambda: counts(fault_world) == [15], 30), a.output()
        with fault_world.nomad._cond:  # someone else holds it now (as after a server-side expiry)
            for key, var in fault_world.nomad.variables.items():
                if var.get("Lock"):
                    var["Lock"]["ID"] = "00000000-0000-4000-8000-000000000000"
                    state = fault_world.nomad._locks.get(key)
                    if state is not None:
                        state["id"] = var["Lock"]["ID"]
        fault_world.nomad.wait_for_request(lambda r: "lock-renew" in r.query and r.status == 409, timeout=20)
        fault_world.script.value = lambda t, end: 250.0
        threading.Event().wait(4)  # four interval ticks
        leader = a.leader()
    assert counts(fault_world) == [15], f"scaled after losing the lock: {counts(fault_world)}"
    assert leader == 0


def test_leader_election_can_be_turned_off_for_a_single_node(fault_world: FaultWorld) -> None:
    fault_world.nomad.enable_acl("management")
    fault_world.nomad.add_token("no-variables", jobs={"default": ["read-job", "scale-job", "submit-job"]})
    fault_world.script.value = lambda t, end: 150.0
    cfg = fault_world.base_config()
    cfg["leader"] = {"enabled": False}
    run = run_forescale(["tick", "-c", str(fault_world.write(cfg))], env={"FAULT_NOMAD_TOKEN": "no-variables"})
    assert run.code == 0, run.text
    assert counts(fault_world) == [15]


def test_a_lock_nomad_refuses_means_no_scaling_and_one_clear_line(fault_world: FaultWorld) -> None:
    fault_world.nomad.enable_acl("management")
    fault_world.nomad.add_token("no-variables", jobs={"default": ["read-job", "scale-job", "submit-job"]})
    run = run_forescale(["tick", "-c", str(fault_world.write())], env={"FAULT_NOMAD_TOKEN": "no-variables"})
    assert run.code == 1, run.text
    assert counts(fault_world) == []
    assert "leader" in run.text and "enabled: false" in run.text and "Traceback" not in run.text
