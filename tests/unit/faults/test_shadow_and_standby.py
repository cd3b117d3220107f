"""Fault class 4b (issue 22, item 3), in-process: shadow holds no lock; a standby says since when, and after
longer than a takeover takes it says so (ManualClock: nothing sleeps). Processes: tests/integration/faults/
test_shadow_never_silences.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import generate_latest

from autoscaler.daemon.leader import LocalLock
from autoscaler.daemon.service import Daemon
from autoscaler.wiring import build_leadership
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict


def test_shadow_runs_hold_no_lock_of_any_kind(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"), audit_log=str(tmp_path / "audit.jsonl"))
    shadow = build_leadership(cfg, shadow=True)
    all_shadow = build_leadership(make_config(pool_dict("ocr", mode="shadow"), audit_log=str(tmp_path / "a.jsonl")))
    for leadership in (shadow, all_shadow):
        assert leadership.locks == [] and leadership.shadow
        leadership.step()
        assert leadership.leading()
    assert not (tmp_path / "audit.jsonl.lock").exists()
    real = LocalLock(tmp_path / "audit.jsonl.lock")
    assert real.acquire(), "the shadow run must leave the local lock to the real forescale"
    real.release()


def test_a_standby_says_since_when_and_that_it_is_too_long(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"), audit_log=str(tmp_path / "audit.jsonl"), daemon={"listen_port": 0})
    cfg.leader.enabled = False
    holder = LocalLock(tmp_path / "audit.jsonl.lock")
    assert holder.acquire()  # another process on this host holds the local lock, and never lets go
    leadership = build_leadership(cfg)
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), may_act=leadership.may_act)
    daemon = Daemon(deps, leadership=leadership)
    daemon.started_at = deps.clock.now()
    daemon.standby_since = deps.clock.now()
    assert daemon.leadership is not None
    try:
        daemon.leadership.step()
        _ok, detail = daemon.health()
        assert detail["role"] == "standby" and detail["standby_since"] == deps.clock.now().isoformat()
        assert str(detail["standby"]).startswith("healthy standby since")
        deps.clock.advance(daemon.takeover + timedelta(minutes=1))  # type: ignore[attr-defined]
        daemon.leadership.step()
        _ok, detail = daemon.health()
        assert "longer than a takeover takes" in str(detail["standby"])
        assert "ForescaleLeaderMissing" in str(detail["standby"])
        assert detail["standby_for_s"] == (daemon.takeover + timedelta(minutes=1)).total_seconds()
    finally:
        holder.release()
        daemon.server.httpd.server_close()


def test_a_shadow_daemon_is_no_leader_in_its_metrics(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"), audit_log=str(tmp_path / "audit.jsonl"), daemon={"listen_port": 0})
    leadership = build_leadership(cfg, shadow=True)
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), shadow=True, may_act=leadership.may_act)
    daemon = Daemon(deps, leadership=leadership)
    try:
        assert daemon.leadership is not None
        daemon.leadership.step()
        assert daemon.tick() is not None  # a shadow run decides (and writes nothing)
        _ok, detail = daemon.health()
        exported = generate_latest(daemon.metrics.registry).decode()
        assert "forescale_leader 0.0" in exported and "forescale_shadow 1.0" in exported
        assert detail["role"] == "shadow"
    finally:
        daemon.server.httpd.server_close()
