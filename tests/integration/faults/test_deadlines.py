"""Fault class 3: no server can stretch a call, a tick or a shutdown, nor blow up memory.

Servers on 127.0.0.1 drip their whole answer one byte per second (never slower than a read timeout, so only a
total deadline stops them), send nothing, or stream 200 MB. Every server stops by itself after 60 s; every
forescale process is killed at the test's timeout (then the case failed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import REPO
from tests.fakes.hostile import Answer, HostileServer, huge_prometheus_body
from tests.fakes.slack import FakeSlack
from tests.fixtures.faults import FaultWorld, run_forescale, run_forescale_measured
from tests.helpers import free_port, http_get

DRIP = Answer(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, drip_s=1.0)


def tick(world: FaultWorld, cfg: dict[str, Any] | None = None, timeout: float = 45) -> Any:
    return run_forescale(["tick", "-c", str(world.write(cfg)), "--json"], timeout=timeout)


def pool_of(run: Any) -> dict[str, Any]:
    (pool,) = json.loads(run.out)["pools"]
    return pool  # type: ignore[no-any-return]


def test_a_dripping_prometheus_cannot_stretch_a_tick(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda _req: DRIP
    run = tick(fault_world)
    assert run.code == 0, run.text
    assert run.seconds < 25, f"tick took {run.seconds:.1f}s with a 3s Prometheus timeout"
    pool = pool_of(run)
    assert pool["decision"]["held"] is True and fault_world.scale_calls() == []


def test_a_silent_prometheus_times_out(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda _req: Answer(hang=True)
    run = tick(fault_world)
    assert run.code == 0, run.text
    assert run.seconds < 25
    assert pool_of(run)["decision"]["held"] is True


def test_a_dripping_nomad_cannot_stretch_a_tick(fault_world: FaultWorld) -> None:
    with HostileServer(lambda _req: Answer(200, {"ID": "ml-ocr"}, drip_s=1.0)) as nomad:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = nomad.url
        cfg["leader"] = {"enabled": False}  # the tick's own Nomad calls (the leader lock's: see below)
        run = tick(fault_world, cfg)
    assert run.code == 1, run.text
    assert run.seconds < 25, f"tick took {run.seconds:.1f}s with a 3s Nomad timeout"
    assert pool_of(run)["status"] == "failed"


def test_nomad_retries_stop_at_the_tick_deadline(fault_world: FaultWorld) -> None:
    fault_world.nomad.fail_next(503, 1000, body="rpc error: No cluster leader")
    cfg = fault_world.base_config()
    cfg["nomad"].update(retries=10, retry_backoff="2s")
    cfg["daemon"] = {"interval": "8s"}  # the tick deadline is half the interval by default
    cfg["leader"] = {"enabled": False}  # the tick's own Nomad calls (the leader lock's: see below)
    run = tick(fault_world, cfg)
    assert run.code == 1, run.text
    assert run.seconds < 25, f"tick took {run.seconds:.1f}s with a 4s tick deadline"
    assert "deadline" in run.text


def test_a_dripping_slack_cannot_stretch_notify_test(tmp_path: Path, fake_slack: FakeSlack) -> None:
    with HostileServer(lambda _req: Answer(200, {"ok": True}, drip_s=1.0)) as slack:
        cfg = {
            "slack": {"channel": "C0123OPS", "base_url": slack.url + "/api/", "timeout": "2s", "max_retry_time": "4s"},
            "pools": [
                {
                    "name": "ocr",
                    "query": "q",
                    "nomad": {"job": "ml-ocr", "group": "w"},
                    "capacity_per_node": 1,
                    "max": 3,
                }
            ],
        }
        path = tmp_path / "forescale.yaml"
        path.write_text(yaml.safe_dump(cfg))
        run = run_forescale(["notify", "test", "-c", str(path)], env={"SLACK_BOT_TOKEN": fake_slack.token}, timeout=60)
    assert run.code == 1, run.text
    assert run.seconds < 20, f"notify test took {run.seconds:.1f}s with a 2s Slack timeout"
    assert "timeout" in run.text


def test_a_200_mb_prometheus_answer_is_refused_without_using_the_memory(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda _req: Answer(200, huge_prometheus_body(200 * 2**20), content_length=False)
    run = run_forescale_measured(["tick", "-c", str(fault_world.write()), "--json"], timeout=90)
    assert run.code == 0, run.text
    assert run.maxrss_mb < 400, f"peak memory {run.maxrss_mb:.0f} MB for a 200 MB answer"
    pool = pool_of(run)
    assert pool["decision"]["held"] is True
    assert "large" in pool["decision"]["hold_cause"]


def test_a_declared_200_mb_prometheus_answer_is_refused_up_front(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda _req: Answer(
        200, huge_prometheus_body(200 * 2**20), headers={"Content-Length": str(200 * 2**20 + 80)}, content_length=False
    )
    run = run_forescale_measured(["tick", "-c", str(fault_world.write()), "--json"], timeout=90)
    assert run.code == 0, run.text
    assert run.maxrss_mb < 400
    assert "large" in pool_of(run)["decision"]["hold_cause"]


def test_a_huge_nomad_answer_fails_the_pool_without_using_the_memory(fault_world: FaultWorld) -> None:
    def respond(req: Any) -> Answer:
        if req.path.endswith("/allocations"):
            return Answer(200, _huge_list(200 * 2**20), content_length=False)
        job = fault_world.nomad.job("ml-ocr")
        return Answer(200, job)

    with HostileServer(respond) as nomad:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = nomad.url
        cfg["leader"] = {"enabled": False}  # the tick's own Nomad calls (the leader lock's: see below)
        run = run_forescale_measured(["tick", "-c", str(fault_world.write(cfg)), "--json"], timeout=90)
    assert run.code == 1, run.text
    assert run.maxrss_mb < 400, f"peak memory {run.maxrss_mb:.0f} MB for a 200 MB answer"
    assert "large" in pool_of(run)["error"]


@pytest.mark.parametrize(
    "answer",
    [
        Answer(200, {"Lock": {"ID": "x"}}, drip_s=1.0),
        Answer(503, "rpc error: No cluster leader", content_type="text/plain"),
        Answer(200, lambda: _huge_list(200 * 2**20), content_length=False),
    ],
    ids=["drip", "503", "huge"],
)
def test_a_hostile_nomad_at_the_leader_lock_scales_nothing_quickly(fault_world: FaultWorld, answer: Answer) -> None:
    """Added after the 'before' run (main had no leader lock): the lock's calls are bounded like every other."""
    if callable(answer.body):
        answer = Answer(200, answer.body(), content_length=False)
    with HostileServer(lambda _req: answer) as nomad:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = nomad.url
        run = run_forescale_measured(["tick", "-c", str(fault_world.write(cfg))], timeout=60)
    assert run.code == 1, run.text
    assert run.seconds < 25 and run.maxrss_mb < 400, (run.seconds, run.maxrss_mb)
    assert "leader lock" in run.text and "nothing was scaled" in run.text
    assert fault_world.scale_calls() == []


def _huge_list(total: int) -> Any:
    yield b"["
    item = b'{"ID":"x","TaskGroup":"workers","DesiredStatus":"run","ClientStatus":"running"},' * 4096
    sent = 0
    while sent < total:
        yield item
        sent += len(item)
    yield b'{"ID":"y"}]'


def _daemon(world: FaultWorld, cfg: dict[str, Any], port: int) -> subprocess.Popen[str]:
    cfg.setdefault("daemon", {}).update(listen_port=port)
    path = world.write(cfg, "daemon.yaml")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.1)
    return False


def test_sigterm_is_honoured_promptly_while_a_tick_is_stuck(fault_world: FaultWorld) -> None:
    fault_world.script.answer = lambda _req: DRIP
    cfg = fault_world.base_config()
    cfg["prometheus"]["timeout"] = "50s"
    port = free_port()
    proc = _daemon(fault_world, cfg, port)
    try:
        assert _wait(lambda: len(fault_world.prometheus.requests) > 0, 30), "the first tick never queried Prometheus"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError("the daemon did not stop within 30 s of SIGTERM") from None
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert took < 12, f"SIGTERM took {took:.1f}s"
    assert fault_world.scale_calls() == []


def test_healthz_fails_while_a_tick_is_stuck_past_its_deadline(fault_world: FaultWorld) -> None:
    """A tick that cannot be cut (here: every call takes the whole 50 s Prometheus timeout) must not look healthy."""
    fault_world.script.answer = lambda _req: DRIP
    cfg = fault_world.base_config()
    cfg["prometheus"]["timeout"] = "50s"
    cfg["daemon"] = {"interval": "4s"}  # tick deadline: half the interval
    port = free_port()
    proc = _daemon(fault_world, cfg, port)
    try:
        assert _wait(lambda: len(fault_world.prometheus.requests) > 0, 30)

        # Either the deadline cut the tick (healthy afterwards, the pool reported held), or /healthz says 503.
        def settled() -> bool:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                return False
            return status == 503 or '"held": true' in body

        assert _wait(settled, 10), "a stuck tick was reported healthy"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
