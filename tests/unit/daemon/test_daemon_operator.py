"""The daemon for operators: shadow metrics, /healthz right after a tick, a clear error for a taken port,
JSON logs, and overrides that act now (store watch → a tick of the affected pool; expiries on time)."""

from __future__ import annotations

import json
import logging
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import StartupError
from autoscaler.core.report import TickReport
from autoscaler.daemon.service import Daemon, TickRecorder
from autoscaler.daemon.watch import OverrideWatcher
from autoscaler.targets.simulated import SimulatedCluster
from overrides.manual import make_override
from overrides.provider import Overrides
from overrides.schedule import Schedule
from overrides.store import FileStore
from tests.helpers import T0, FlatMetrics, http_get, make_config, make_deps, pool_dict


def two_pool_daemon(tmp_path: Path, **modes: str) -> tuple[Daemon, FileStore, ManualClock, SimulatedCluster]:
    cfg = make_config(
        pool_dict("ocr", mode=modes.get("ocr", "active")),
        pool_dict("asr", mode=modes.get("asr", "active")),
        daemon={"listen_port": 0},
    )
    clock = ManualClock(T0)
    store = FileStore(tmp_path / "overrides.json")
    target = SimulatedCluster(clock, {"ocr": 2, "asr": 2})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 100.0})
    provider = Overrides(Schedule(), store, ["ocr", "asr"])
    deps = make_deps(cfg, metrics, target=target, clock=clock, overrides=provider)
    watcher = OverrideWatcher(store, ["ocr", "asr"], clock)
    return Daemon(deps, watcher=watcher), store, clock, target


def pin(store: FileStore, pool: str, value: int, now: Any, hours: float = 1.0) -> str:
    ov = make_override(
        pool=pool,
        kind="pin",
        value=value,
        reason="Diwali campaign",
        author="alice",
        now=now,
        expires_at=now + timedelta(hours=hours),
        max_duration=timedelta(days=7),
    )
    store.modify(pool, lambda r: r.active.append(ov))
    return ov.id


def run_pending(daemon: Daemon) -> list[str]:
    """Run the one-shot jobs due now, as the scheduler would (no waiting); returns their ids."""
    ran = []
    for job in daemon.scheduler.get_jobs():
        if job.id.startswith("override-"):
            job.func(*job.args, **job.kwargs)
            daemon.scheduler.remove_job(job.id)
            ran.append(job.id)
    return ran


def test_a_changed_override_ticks_only_its_pool_at_once(tmp_path: Path) -> None:
    daemon, store, clock, target = two_pool_daemon(tmp_path)
    try:
        daemon.scheduler.start(paused=True)
        daemon.tick()  # both pools: 2 → 13
        assert daemon.watcher is not None and daemon.watcher.check() == []  # nothing changed yet
        clock.advance(timedelta(minutes=1))
        pin(store, "ocr", 40, clock.now())
        assert daemon.watcher.check() == ["ocr"]
        job = daemon.scheduler.get_job("override-ocr-1")
        assert job.kwargs == {"trigger": "override", "only": ["ocr"]}
        assert job.trigger.run_date == clock.now()  # due at once, not at the next interval
        assert run_pending(daemon) == ["override-ocr-1"]
        assert target.status(make_config(pool_dict("ocr")).pool("ocr")).desired == 40
        report = daemon.last_report
        assert report is not None and [o.pool for o in report.outcomes] == ["ocr"]
        _ok, health = daemon.health()
        assert health["pools"]["ocr"]["trigger"] == "override" and health["pools"]["ocr"]["desired"] == 40
        assert health["pools"]["asr"]["trigger"] == "interval"
        assert health["overrides"]["last_change_pools"] == ["ocr"]
        assert health["overrides"]["store"] == store.location
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_clearing_the_pin_returns_to_the_forecast_without_the_cooldown(tmp_path: Path) -> None:
    from overrides.operations import clear_overrides

    daemon, store, clock, _target = two_pool_daemon(tmp_path)
    try:
        daemon.scheduler.start(paused=True)
        daemon.tick()
        clock.advance(timedelta(minutes=1))
        pin(store, "ocr", 40, clock.now())
        assert daemon.watcher is not None and daemon.watcher.check() == ["ocr"]
        run_pending(daemon)
        clock.advance(timedelta(minutes=2))  # well inside the 15-minute scale-in cooldown
        clear_overrides(store, ["ocr", "asr"], "ocr", "bob", clock.now())
        assert daemon.watcher.check() == ["ocr"]
        run_pending(daemon)
        report = daemon.last_report
        assert report is not None
        decision = report.outcomes[0].decision
        assert decision is not None and (decision.current, decision.desired) == (40, 30)  # 25 % step, no cooldown
        assert decision.reason_codes()[2:] == ["pin_ended", "step_down"]
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_the_daemons_own_bookkeeping_does_not_tick_again(tmp_path: Path) -> None:
    """An expired override moved to history by a tick changes the file, not what is in force: no extra tick."""
    daemon, store, clock, _ = two_pool_daemon(tmp_path)
    try:
        daemon.scheduler.start(paused=True)
        ident = pin(store, "ocr", 40, clock.now(), hours=1)
        assert daemon.watcher is not None and daemon.watcher.check() == ["ocr"]
        run_pending(daemon)
        # The expiry is scheduled: a tick just after it, so the pin ends on time.
        job = daemon.scheduler.get_job(f"expiry-{ident}")
        assert job.trigger.run_date == T0 + timedelta(hours=1, seconds=1)
        assert job.kwargs == {"trigger": "override_expiry", "only": ["ocr"]}
        clock.set(job.trigger.run_date)
        job.func(*job.args, **job.kwargs)  # the tick moves the expired pin to history (a store write)
        assert store.read(["ocr"])["ocr"].history[0].ended == "expired"
        assert daemon.watcher.check() == []
        assert [j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("override-")] == []
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_an_unreadable_store_is_retried_not_fatal(tmp_path: Path) -> None:
    import threading

    daemon, store, _clock, _ = two_pool_daemon(tmp_path)
    try:
        store.path.write_text("{ not json")
        watcher = daemon.watcher
        assert watcher is not None
        with pytest.raises(Exception, match="unreadable"):
            watcher.check()
        stop = threading.Event()
        stop.set()
        watcher.run(stop)  # returns at once: the loop checks stop before anything else
    finally:
        daemon.server.httpd.server_close()


def test_a_recorder_must_be_the_ticks_first_notifier() -> None:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    recorder = TickRecorder()
    with pytest.raises(ValueError, match="first of the tick's notifiers"):
        Daemon(make_deps(cfg, FlatMetrics({}), notifiers=[]), recorder=recorder)


def test_health_shows_the_tick_before_slow_notifiers_finish(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    seen: list[dict[str, Any]] = []
    holder: list[Daemon] = []

    class SlowSlack:
        def notify(self, report: TickReport) -> None:
            seen.append(holder[0].health()[1])  # what /healthz says while Slack is still posting

        def announce(self, event: object) -> None:
            return None

    recorder = TickRecorder()  # first of the tick's notifiers, as the wiring puts it
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), notifiers=[recorder, SlowSlack()])
    daemon = Daemon(deps, recorder=recorder)
    assert daemon.deps.notifiers == [recorder, deps.notifiers[1]]  # the daemon did not rewrite them
    holder.append(daemon)
    try:
        daemon.scheduler.start(paused=True)
        report = daemon.tick()
        assert report is not None
        (during,) = seen
        assert during["last_tick"] == T0.isoformat() and during["last_tick_trigger"] == "interval"
        assert during["pools"]["ocr"] == {
            "mode": "active",
            "status": "applied",
            "held": False,
            "hold_cause": None,
            "current": 2,
            "desired": 13,
            "placed": 2,
            "queued": 0,
            "error": None,
            "last_tick": T0.isoformat(),
            "trigger": "interval",
        }
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_shadow_pools_are_exported_as_would_scale(tmp_path: Path) -> None:
    daemon, _store, _clock, _target = two_pool_daemon(tmp_path, ocr="shadow")
    daemon.server.start()
    try:
        daemon.scheduler.start(paused=True)
        daemon.tick()
        status, text = http_get(f"http://127.0.0.1:{daemon.server.port}/metrics")
        assert status == 200
        assert 'forescale_pool_shadow{pool="ocr"} 1.0' in text
        assert 'forescale_pool_shadow{pool="asr"} 0.0' in text
        assert 'forescale_would_scale_nodes{pool="ocr"} 13.0' in text
        assert 'forescale_would_scale_total{action="up",pool="ocr"} 1.0' in text
        assert 'forescale_applied_nodes{pool="ocr"}' not in text
        assert 'forescale_applied_nodes{pool="asr"} 13.0' in text
        health = json.loads(http_get(f"http://127.0.0.1:{daemon.server.port}/healthz")[1])
        assert health["pools"]["ocr"]["status"] == "shadow" and health["pools"]["ocr"]["mode"] == "shadow"
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.stop()


def test_a_taken_port_is_one_clear_error_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = make_config(pool_dict("ocr"), daemon={"listen_port": port})
        cfg.source = tmp_path / "forescale.yaml"
        with pytest.raises(StartupError) as info:
            Daemon(make_deps(cfg, FlatMetrics({})))
    message = str(info.value)
    where = tmp_path / "forescale.yaml"
    assert message.startswith(f"daemon.listen_port in {where}: 127.0.0.1:{port} is already in use")
    assert "set daemon.listen_port to a free port (0 picks one)" in message


def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    from autoscaler.cli.main import _json_logging
    from autoscaler.notify.log import LogNotifier

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        _json_logging(debug=False)
        logging.getLogger("forescale").setLevel(logging.INFO)
        cfg = make_config(pool_dict("ocr", mode="shadow"), pool_dict("asr"), pool_dict("off", mode="off"))
        metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 1.0})
        from autoscaler.policy.tick import run_tick

        run_tick(make_deps(cfg, metrics, notifiers=[LogNotifier()]))
        logging.getLogger("forescale.daemon").warning("a\nmulti-line message")
        lines = capsys.readouterr().out.splitlines()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("forescale").setLevel(logging.NOTSET)
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert len(records) == 3
    ocr, asr, warning = records
    assert ocr["event"] == "decision" and ocr["pool"] == "ocr" and ocr["status"] == "shadow"
    assert (ocr["current"], ocr["desired"], ocr["action"]) == (2, 13, "up")
    assert ocr["reasons"] == ["forecast", "observed"] and "would scale 2 → 13" in ocr["message"]
    assert {"time", "level", "logger"} <= set(ocr) and ocr["logger"] == "forescale.decision"
    assert asr["status"] == "applied" and asr["desired"] == 1
    assert warning["message"] == "a\nmulti-line message" and warning["level"] == "WARNING"


def test_two_quick_changes_are_two_jobs_so_neither_is_skipped(tmp_path: Path) -> None:
    """APScheduler skips a job whose previous run (same id) is still running: each change gets its own id."""
    daemon, _store, _clock, _ = two_pool_daemon(tmp_path)
    try:
        daemon.scheduler.start(paused=True)
        daemon.on_overrides_changed(["ocr"])
        daemon.on_overrides_changed(["ocr"])
        ids = sorted(j.id for j in daemon.scheduler.get_jobs() if j.id.startswith("override-"))
        assert ids == ["override-ocr-1", "override-ocr-2"]
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()
