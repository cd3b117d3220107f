"""The daemon: scheduler options, metrics and health over HTTP, clean stop, extra ticks at rule boundaries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from autoscaler.daemon import Daemon
from autoscaler.interfaces import TickReport
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict


def daemon_for(**daemon_over: object) -> tuple[Daemon, FlatMetrics]:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0, "interval": "20m", **daemon_over})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    return Daemon(make_deps(cfg, metrics)), metrics


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_tick_updates_metrics_and_health_over_http() -> None:
    daemon, _ = daemon_for()
    daemon.server.start()
    try:
        base = f"http://127.0.0.1:{daemon.server.port}"
        status, _ = get(base + "/healthz")
        assert status == 503  # no tick has finished yet and the scheduler is not running
        daemon.scheduler.start(paused=True)
        report = daemon.tick()
        assert report is not None and report.outcomes[0].status == "applied"
        status, body = get(base + "/healthz")
        assert status == 200 and '"ocr"' in body
        status, text = get(base + "/metrics")
        assert status == 200
        assert 'forescale_desired_nodes{pool="ocr"} 13.0' in text
        assert 'forescale_applied_nodes{pool="ocr"} 13.0' in text
        assert 'forescale_ticks_total{trigger="interval"} 1.0' in text
        assert "forescale_tick_duration_seconds_count 1.0" in text
        # Two intervals and a bit without a tick: unhealthy.
        daemon.deps.clock.advance(timedelta(minutes=42))  # type: ignore[attr-defined]
        assert get(base + "/healthz")[0] == 503
        assert get(base + "/nope")[0] == 404
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.stop()


def test_status_server_listens_on_loopback_only() -> None:
    daemon, _ = daemon_for()
    try:
        assert daemon.server.httpd.server_address[0] == "127.0.0.1"
    finally:
        daemon.server.httpd.server_close()


def test_a_crashing_tick_is_counted_not_fatal() -> None:
    daemon, _ = daemon_for()

    def boom(*_a: object, **_k: object) -> TickReport:
        raise RuntimeError("notifier construction bug")

    import autoscaler.daemon as mod

    original = mod.run_tick
    mod.run_tick = boom  # type: ignore[assignment]
    try:
        assert daemon.tick() is None
    finally:
        mod.run_tick = original
        daemon.server.httpd.server_close()
    assert daemon.metrics.crashes._value.get() == 1  # type: ignore[attr-defined]


def test_scheduler_never_overlaps_and_coalesces() -> None:
    daemon, _ = daemon_for()
    try:
        daemon.schedule_jobs()
        daemon.scheduler.start(paused=True)  # job defaults are applied when the scheduler starts
        job = daemon.scheduler.get_job("tick")
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.trigger.interval == timedelta(minutes=20)
        assert job.next_run_time == T0  # the first tick runs at start
        assert daemon.scheduler._lookup_executor("default")._pool._max_workers == 1  # type: ignore[attr-defined]
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_run_forever_stops_after_the_running_tick() -> None:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    started = threading.Event()
    release = threading.Event()
    finished: list[TickReport] = []

    class SlowNotifier:
        def notify(self, report: TickReport) -> None:
            started.set()
            release.wait(timeout=10)
            finished.append(report)

        def announce(self, event: object) -> None:
            return None

    daemon = Daemon(make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 50.0}), notifiers=[SlowNotifier()]))
    runner = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    runner.start()
    assert started.wait(timeout=10), "the first tick did not start"
    daemon.stop()
    runner.join(timeout=0.5)
    assert runner.is_alive(), "run_forever must wait for the running tick"
    release.set()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert len(finished) == 1
    assert not daemon.scheduler.running


def test_schedule_transitions_add_one_shot_ticks() -> None:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    wanted = [T0 + timedelta(minutes=5), T0 + timedelta(minutes=50), T0 - timedelta(minutes=1)]
    daemon = Daemon(make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 50.0})), transitions=lambda s, e: wanted)
    try:
        times = daemon.refresh_transitions()
        assert times == wanted[:2]  # past instants are not scheduled
        ids = {j.id for j in daemon.scheduler.get_jobs()}
        assert {f"transition-{t.isoformat()}" for t in times} <= ids
    finally:
        daemon.server.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_forescale_run_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The real CLI daemon: Prometheus and Nomad unreachable, it still ticks, serves health and exits 0."""
    port = _free_port()
    dead = _free_port()
    cfg = {
        "prometheus": {"url": f"http://127.0.0.1:{dead}", "timeout": "2s"},
        "nomad": {"address": f"http://127.0.0.1:{dead}", "retries": 0, "timeout": "2s"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "daemon": {"listen_port": port, "interval": "20m"},
        "overrides": {"path": str(tmp_path / "overrides.json")},
        "pools": [pool_dict("ocr")],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NOMAD_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        status = None
        for _ in range(300):  # bounded wait for the first tick to finish (each attempt waits ≤ 0.1 s)
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert status == 200, (
            f"daemon never became healthy; output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
        )
        assert '"status": "failed"' in body  # Nomad unreachable is reported, not fatal
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopping after the running tick" in out
    assert "forescale daemon stopped" in out


@pytest.mark.parametrize("interval", ["0s"])
def test_interval_must_be_positive(interval: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_config(pool_dict("ocr"), daemon={"interval": interval})


def test_build_daemon_wires_schedule_ticks_and_notifier_metrics(tmp_path: Path) -> None:
    """`forescale run` ticks at rule boundaries and serves the Slack notifier's metrics too."""
    from autoscaler import notify_metrics
    from autoscaler.clock import ManualClock
    from autoscaler.config import load_config
    from autoscaler.wiring import build_daemon

    rules = tmp_path / "schedule.yaml"
    rules.write_text((Path(__file__).resolve().parent.parent / "overrides" / "schedule.yaml").read_text())
    cfg_path = tmp_path / "forescale.yaml"
    cfg_path.write_text(
        (Path(__file__).resolve().parent.parent / "forescale.example.yaml")
        .read_text()
        .replace("schedule_file: overrides/schedule.yaml", f"schedule_file: {rules}")
        .replace("listen_port: 9464", "listen_port: 0")
    )
    cfg = load_config(cfg_path)
    assert cfg.overrides.schedule_file == rules
    daemon = build_daemon(cfg, clock=ManualClock(T0))
    try:
        assert daemon.transitions is not None
        assert notify_metrics.REGISTRY in daemon.server.registries
        # Over a week, business rules start and end: the look-ahead finds instants to tick at.
        assert list(daemon.transitions(T0, T0 + timedelta(days=7)))
    finally:
        daemon.server.httpd.server_close()
