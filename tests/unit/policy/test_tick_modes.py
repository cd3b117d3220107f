"""Pool modes (active / shadow / off, `run --dry-run`), plan's estimate when the count is unknown, and cooldowns
rebuilt from the target's own history (Nomad's scaling events)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision, PastAction, PoolState
from autoscaler.core.errors import NomadUnavailable, TargetError
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.notify.audit import AuditLog
from autoscaler.policy.tick import run_tick, write_gate
from autoscaler.targets.simulated import SimulatedCluster
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict


class CountingCluster(SimulatedCluster):
    """A simulated cluster that counts every write (scale) it is asked for."""

    def __init__(self, clock: ManualClock, initial: dict[str, int]) -> None:
        super().__init__(clock, initial)
        self.writes: list[tuple[str, int]] = []

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        self.writes.append((pool.name, decision.desired))
        return super().scale(pool, decision)


def modes_config(**modes: str):  # type: ignore[no-untyped-def]
    return make_config(*(pool_dict(name, mode=mode) for name, mode in modes.items()))


def test_shadow_decides_audits_and_notifies_but_never_writes(tmp_path: Path) -> None:
    cfg = modes_config(ocr="shadow", asr="active")
    clock = ManualClock(T0)
    target = CountingCluster(clock, {"ocr": 2, "asr": 2})
    audit = AuditLog(tmp_path / "audit.jsonl")
    seen = []

    class Recorder:
        def notify(self, report: object) -> None:
            seen.append(report)

        def announce(self, event: object) -> None:
            return None

    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 100.0})
    deps = make_deps(cfg, metrics, target=target, clock=clock, audit=audit, notifiers=[Recorder()])
    report = run_tick(deps)
    by_pool = {o.pool: o for o in report.outcomes}
    shadow = by_pool["ocr"]
    assert shadow.status == "shadow" and shadow.decision is not None
    assert (shadow.decision.current, shadow.decision.desired) == (2, 13)
    assert shadow.note == "shadow (mode: shadow): would scale 2 → 13; Nomad not changed"
    assert target.writes == [("asr", 13)]  # only the active pool was written
    assert target.status(cfg.pool("ocr")).desired == 2
    assert [a.pool for a in deps.history.actions] == ["asr"]  # a wish is not a change: no cooldown starts
    assert report.would_scale == [shadow] and seen == [report]
    statuses = {r["pool"]: r["status"] for r in audit.records()}
    assert statuses == {"ocr": "shadow", "asr": "applied"}
    assert [a.pool for a in audit.recent_actions(T0 - timedelta(hours=1))] == ["asr"]


def test_run_dry_run_puts_every_pool_in_shadow() -> None:
    cfg = modes_config(ocr="active", asr="active")
    clock = ManualClock(T0)
    target = CountingCluster(clock, {"ocr": 2, "asr": 2})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 100.0})
    deps = make_deps(cfg, metrics, target=target, clock=clock, shadow=True)
    report = run_tick(deps)
    assert [o.status for o in report.outcomes] == ["shadow", "shadow"]
    assert all("forescale run --dry-run" in o.note for o in report.outcomes)
    assert target.writes == []
    assert write_gate(deps, cfg.pool("ocr")) == "shadow (forescale run --dry-run)"


def test_an_unchanged_shadow_pool_is_unchanged_not_shadow() -> None:
    cfg = modes_config(ocr="shadow")
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 15.0}))
    assert run_tick(deps).outcomes[0].status == "unchanged"


def test_off_pools_are_not_evaluated_and_not_audited(tmp_path: Path) -> None:
    cfg = modes_config(ocr="off", asr="active")
    metrics = FlatMetrics({cfg.pool("asr").query: 100.0})  # ocr's query would raise KeyError if it were read
    audit = AuditLog(tmp_path / "audit.jsonl")
    report = run_tick(make_deps(cfg, metrics, audit=audit))
    off = report.outcomes[0]
    assert (off.pool, off.status, off.decision, off.note) == ("ocr", "off", None, "mode: off (not evaluated)")
    assert metrics.calls == [cfg.pool("asr").query]
    assert [r["pool"] for r in audit.records()] == ["asr"]


def test_mode_is_validated_with_the_choices() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'active', 'shadow' or 'off'"):
        make_config(pool_dict("ocr", mode="paused"))


class Unreachable(SimulatedCluster):
    def status(self, pool: PoolConfig) -> PoolState:
        raise NomadUnavailable("cannot reach Nomad at http://127.0.0.1:1 (from $NOMAD_ADDR)")


def test_a_pool_whose_count_is_unknown_still_shows_its_forecast() -> None:
    cfg = make_config(pool_dict("ocr"))
    clock = ManualClock(T0)
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), target=Unreachable(clock), clock=clock)
    (outcome,) = run_tick(deps, dry_run=True).outcomes
    assert outcome.status == "failed" and outcome.decision is None
    assert "cannot reach Nomad" in (outcome.error or "") and "$NOMAD_ADDR" in (outcome.error or "")
    estimate = outcome.estimate
    assert estimate is not None and (estimate.forecast_nodes, estimate.need) == (13, 13)
    assert estimate.observed_rps == 100.0


class WithHistory(SimulatedCluster):
    """A target that remembers changes (like Nomad's scaling events) and counts how often it is asked."""

    def __init__(self, clock: ManualClock, initial: dict[str, int], changes: list[PastAction]) -> None:
        super().__init__(clock, initial)
        self.changes = changes
        self.asked: list[tuple[str, datetime, datetime]] = []
        self.fail: TargetError | None = None

    def recent_changes(self, pool: PoolConfig, since: datetime, until: datetime) -> Sequence[PastAction]:
        self.asked.append((pool.name, since, until))
        if self.fail is not None:
            raise self.fail
        return [a for a in self.changes if a.pool == pool.name and since <= a.at <= until]


def test_cooldown_survives_a_lost_audit_log_through_the_targets_history(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr", scale_in_cooldown="30m"), audit_log=str(tmp_path / "gone.jsonl"))
    clock = ManualClock(T0)
    changed = PastAction(T0 - timedelta(minutes=10), "ocr", 2, 13)
    target = WithHistory(clock, {"ocr": 13}, [changed, PastAction(T0 - timedelta(hours=2), "ocr", 20, 2)])
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 10.0}), target=target, clock=clock)
    decision = run_tick(deps).outcomes[0].decision
    assert decision is not None and decision.desired == 13
    assert "cooldown" in decision.reason_codes()
    assert target.asked == [("ocr", T0 - timedelta(minutes=30), T0)]
    clock.advance(timedelta(minutes=25))  # 35 minutes after the change: scale-in (25 % of 13 per tick)
    later = run_tick(deps).outcomes[0].decision
    assert later is not None and later.desired == 9
    assert len(target.asked) == 1  # read once per process and pool


def test_an_unreadable_history_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config(pool_dict("ocr"))
    clock = ManualClock(T0)
    target = WithHistory(clock, {"ocr": 13}, [])
    target.fail = NomadUnavailable("503")
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 10.0}), target=target, clock=clock)
    assert run_tick(deps).outcomes[0].status == "applied"
    assert "cannot read recent scaling events" in caplog.text


def test_the_same_change_from_audit_and_nomad_is_kept_once() -> None:
    cfg = make_config(pool_dict("ocr"))
    clock = ManualClock(T0)
    at = T0 - timedelta(minutes=5)
    target = WithHistory(clock, {"ocr": 13}, [PastAction(at + timedelta(seconds=1), "ocr", 2, 13)])
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), target=target, clock=clock)
    deps.history.add(PastAction(at, "ocr", 2, 13, pinned=True))
    run_tick(deps)
    assert deps.history.for_pool("ocr") == [PastAction(at, "ocr", 2, 13, pinned=True)]


def test_a_pinned_change_is_remembered_as_pinned(tmp_path: Path) -> None:
    from autoscaler.core.effects import OverrideEffect

    class Pin:
        def effects(self, pool: str, now: datetime) -> list[OverrideEffect]:
            return [OverrideEffect("pin", 40, "manual", "ov-1", "pinned to 40 by alice", now + timedelta(hours=1))]

        def drain_events(self, now: datetime) -> list[object]:
            return []

        def warnings(self) -> list[object]:
            return []

    cfg = make_config(pool_dict("ocr"))
    audit = AuditLog(tmp_path / "audit.jsonl")
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 10.0}), overrides=Pin(), audit=audit)
    run_tick(deps)
    assert deps.history.for_pool("ocr")[0].pinned is True
    assert audit.recent_actions(T0 - timedelta(hours=1))[0].pinned is True


def test_the_guard_goes_through_the_same_write_gate() -> None:
    """Shadow pools: the guard says what it would do and writes nothing; off pools: not even checked."""
    cfg = modes_config(ocr="shadow", asr="active", tts="off")
    clock = ManualClock(T0)
    target = CountingCluster(clock, {"ocr": 2, "asr": 2, "tts": 2})
    metrics = FlatMetrics({p.query: 100.0 for p in cfg.pools})
    report = run_tick(make_deps(cfg, metrics, target=target, clock=clock), guard=True)
    by_pool = {o.pool: o for o in report.outcomes}
    assert set(by_pool) == {"ocr", "asr"}
    assert by_pool["ocr"].status == "shadow" and by_pool["ocr"].decision.guard  # type: ignore[union-attr]
    assert by_pool["asr"].status == "applied"
    assert target.writes == [("asr", 13)]
