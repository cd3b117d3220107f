"""run_tick with in-memory doubles: the straight line, pool isolation, dry runs, audit and history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import DeploymentActive, NomadUnavailable
from autoscaler.core.report import TickReport
from autoscaler.notify.audit import AuditLog
from autoscaler.policy.tick import run_tick
from autoscaler.targets.simulated import SimulatedCluster
from autoscaler.wiring import build_deps
from tests.helpers import T0, FailingTarget, FlatMetrics, make_config, make_deps, pool_dict


def two_pools():
    return make_config(pool_dict("ocr"), pool_dict("asr"))


def q(cfg, name: str) -> str:
    return cfg.pool(name).query


def test_scales_up_with_reasons_and_audits(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"))
    audit = AuditLog(tmp_path / "audit.jsonl")
    deps = make_deps(cfg, FlatMetrics({q(cfg, "ocr"): 100.0}), audit=audit)
    report = run_tick(deps)
    (outcome,) = report.outcomes
    assert outcome.status == "applied"
    d = outcome.decision
    assert d is not None
    # 100 rps at 10 rps/node × 0.8 → 13 nodes (ceil(12.5)).
    assert (d.current, d.desired) == (2, 13)
    assert d.reason_codes()[:2] == ["forecast", "observed"]
    assert deps.target.status(cfg.pool("ocr")).desired == 13
    (record,) = list(audit.records())
    assert record["status"] == "applied" and record["decision"]["desired"] == 13
    assert [a.count for a in deps.history.for_pool("ocr")] == [13]


def test_broken_metrics_hold_one_pool_while_the_other_scales() -> None:
    cfg = two_pools()
    metrics = FlatMetrics({q(cfg, "ocr"): 100.0, q(cfg, "asr"): 100.0}, broken={q(cfg, "asr")})
    deps = make_deps(cfg, metrics)
    report = run_tick(deps)
    by_pool = {o.pool: o for o in report.outcomes}
    held = by_pool["asr"].decision
    assert held is not None and held.held
    assert held.desired == held.current == 2
    assert held.reason_codes() == ["metrics_unavailable"]
    assert "connection refused" in (held.hold_cause or "")
    assert by_pool["ocr"].status == "applied"


def test_stale_metrics_hold() -> None:
    cfg = make_config(pool_dict("ocr"))

    class Stale(FlatMetrics):
        def fetch(self, query, start, end, step_s):  # type: ignore[no-untyped-def]
            series = super().fetch(query, start, end, step_s)
            return series.before(end.timestamp() - 600)  # last sample 10 minutes old

    deps = make_deps(cfg, Stale({q(cfg, "ocr"): 100.0}))
    (outcome,) = run_tick(deps).outcomes
    assert outcome.decision is not None and outcome.decision.held
    assert "stale" in (outcome.decision.hold_cause or "")


def test_target_errors_are_reported_per_pool() -> None:
    cfg = two_pools()
    clock = ManualClock(T0)
    target = FailingTarget(
        clock,
        {"ocr": 2, "asr": 2},
        {"ocr": DeploymentActive("job scaling blocked due to active deployment"), "asr": NomadUnavailable("500")},
    )
    deps = make_deps(cfg, FlatMetrics({q(cfg, "ocr"): 100.0, q(cfg, "asr"): 100.0}), target=target, clock=clock)
    by_pool = {o.pool: o for o in run_tick(deps).outcomes}
    assert by_pool["ocr"].status == "deferred" and "retry next tick" in (by_pool["ocr"].error or "")
    assert by_pool["asr"].status == "failed"
    assert deps.history.actions == []  # nothing was applied, so no cooldown starts


def test_unexpected_exception_in_one_pool_does_not_stop_the_tick() -> None:
    cfg = two_pools()

    class Exploding(FlatMetrics):
        def fetch(self, query, start, end, step_s):  # type: ignore[no-untyped-def]
            if query == q(cfg, "ocr"):
                raise RuntimeError("bug")
            return super().fetch(query, start, end, step_s)

    deps = make_deps(cfg, Exploding({q(cfg, "asr"): 100.0}))
    by_pool = {o.pool: o for o in run_tick(deps).outcomes}
    assert by_pool["ocr"].status == "failed" and "RuntimeError" in (by_pool["ocr"].error or "")
    assert by_pool["asr"].status == "applied"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"))
    audit = AuditLog(tmp_path / "audit.jsonl")
    deps = make_deps(cfg, FlatMetrics({q(cfg, "ocr"): 100.0}), audit=audit)
    report = run_tick(deps, dry_run=True)
    assert report.outcomes[0].status == "dry_run"
    assert deps.target.status(cfg.pool("ocr")).desired == 2
    assert not audit.path.exists()


def test_a_failing_notifier_never_fails_the_tick() -> None:
    cfg = make_config(pool_dict("ocr"))
    seen: list[TickReport] = []

    class Broken:
        def notify(self, report: TickReport) -> None:
            raise ConnectionError("slack down")

        def announce(self, event: object) -> None:
            raise ConnectionError("slack down")

    class Recorder:
        def notify(self, report: TickReport) -> None:
            seen.append(report)

        def announce(self, event: object) -> None:
            return None

    deps = make_deps(cfg, FlatMetrics({q(cfg, "ocr"): 100.0}), notifiers=[Broken(), Recorder()])
    report = run_tick(deps)
    assert report.outcomes[0].status == "applied"
    assert seen == [report]


def test_cooldown_survives_between_cron_runs_via_the_audit_log(tmp_path: Path) -> None:
    cfg = make_config(
        pool_dict("ocr", scale_in_cooldown="30m", scale_in_window="0s"), audit_log=str(tmp_path / "audit.jsonl")
    )
    clock = ManualClock(T0)
    target = SimulatedCluster(clock, {"ocr": 2})
    first = make_deps(
        cfg, FlatMetrics({q(cfg, "ocr"): 100.0}), target=target, clock=clock, audit=AuditLog(cfg.audit_log)
    )
    assert run_tick(first).outcomes[0].decision.desired == 13  # type: ignore[union-attr]

    # A new process 20 minutes later (cron): the rate fell, but the audit log remembers the change.
    clock.advance(timedelta(minutes=20))
    second = build_deps(cfg, clock=clock, notifiers=[])
    second.metrics = FlatMetrics({q(cfg, "ocr"): 10.0})
    second.target = target
    outcome = run_tick(second).outcomes[0]
    assert outcome.decision is not None
    assert outcome.decision.desired == 13
    assert "cooldown" in outcome.decision.reason_codes()

    clock.advance(timedelta(minutes=20))  # 40 minutes after the change: scale-in allowed (25 % of 13 per tick)
    third = build_deps(cfg, clock=clock, notifiers=[])
    third.metrics = FlatMetrics({q(cfg, "ocr"): 10.0})
    third.target = target
    decision = run_tick(third).outcomes[0].decision
    assert decision is not None and decision.desired == 9
    assert decision.reason_codes()[2:] == ["step_down"]


def test_scale_in_window_survives_between_cron_runs_via_the_audit_log(tmp_path: Path) -> None:
    """The needs of earlier runs are read back from the audit log: a cron `tick` stabilises like the daemon."""
    cfg = make_config(
        pool_dict("ocr", scale_in_cooldown="0s", scale_in_window="1h", max_step_down=None),
        audit_log=str(tmp_path / "audit.jsonl"),
    )
    clock = ManualClock(T0)
    target = SimulatedCluster(clock, {"ocr": 2})
    rates = {0: 100.0, 20: 60.0, 40: 10.0, 80: 10.0}  # minutes after T0 → the rate then
    desired = {}
    for minute, rate in rates.items():
        clock.set(T0 + timedelta(minutes=minute))
        deps = build_deps(cfg, clock=clock, notifiers=[])  # a new process each time
        deps.metrics = FlatMetrics({q(cfg, "ocr"): rate})
        deps.target = target
        decision = run_tick(deps).outcomes[0].decision
        assert decision is not None
        desired[minute] = (decision.need, decision.desired, decision.reason_codes())
    assert desired[0][:2] == (13, 13)
    # 20 min later the rate needs 8, but 13 were needed within the hour: held at 13.
    assert desired[20][:2] == (8, 13) and "scale_in_window" in desired[20][2]
    # 40 min: needs 2; the highest need within the hour is still 13 (at T0).
    assert desired[40][:2] == (2, 13)
    # 80 min: T0 left the window; the 60-rps need (8, at +20) left it too; +40's need (2) is the highest.
    assert desired[80][:2] == (2, 2)


def test_guard_scales_up_between_ticks_and_reports_only_when_it_acts(tmp_path: Path) -> None:
    cfg = make_config(pool_dict("ocr"), audit_log=str(tmp_path / "audit.jsonl"))
    audit = AuditLog(cfg.audit_log)
    seen: list[TickReport] = []

    class Recorder:
        def notify(self, report: TickReport) -> None:
            seen.append(report)

        def announce(self, event: object) -> None:
            return None

    metrics = FlatMetrics({q(cfg, "ocr"): 15.0})
    deps = make_deps(cfg, metrics, audit=audit, notifiers=[Recorder()])
    # 2 nodes × 10 rps × 0.8 = 16 rps ≥ 15 observed: the guard is quiet (no report, no audit line).
    quiet = run_tick(deps, guard=True)
    assert quiet.outcomes == () and seen == [] and list(audit.records()) == []
    metrics.rates[q(cfg, "ocr")] = 100.0
    report = run_tick(deps, guard=True)
    (outcome,) = report.outcomes
    d = outcome.decision
    assert d is not None and outcome.status == "applied"
    assert (d.guard, d.current, d.desired, d.need) == (True, 2, 13, 13)
    assert d.reasons[0].message.startswith("guard: observed 100.0 rps > capacity 16 rps (2 nodes × 8 rps)")
    assert seen == [report] and report.guard
    (record,) = list(audit.records())
    assert record["decision"]["guard"] is True
    # The guard's need is remembered: the next tick cannot scale in below it within the window.
    metrics.rates[q(cfg, "ocr")] = 10.0
    tick = run_tick(deps).outcomes[0].decision
    assert tick is not None and tick.desired == 13
    assert "cooldown" in tick.reason_codes()


def test_guard_never_scales_down_and_skips_disabled_pools() -> None:
    cfg = make_config(pool_dict("ocr"), pool_dict("asr", guard={"enabled": False}))
    metrics = FlatMetrics({q(cfg, "ocr"): 1.0, q(cfg, "asr"): 100.0})
    deps = make_deps(cfg, metrics, target=SimulatedCluster(ManualClock(T0), {"ocr": 20, "asr": 2}))
    assert run_tick(deps, guard=True).outcomes == ()
    assert deps.target.desired_count("ocr") == 20
    assert deps.target.desired_count("asr") == 2


def test_guard_does_nothing_when_metrics_are_missing() -> None:
    cfg = make_config(pool_dict("ocr"))
    deps = make_deps(cfg, FlatMetrics({q(cfg, "ocr"): 100.0}, broken={q(cfg, "ocr")}))
    assert run_tick(deps, guard=True).outcomes == ()
    assert deps.target.desired_count("ocr") == 2
