"""The daemon: scheduler options, metrics and health over HTTP, clean stop, extra ticks at rule boundaries."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.report import TickReport
from autoscaler.daemon.service import Daemon
from tests import REPO
from tests.helpers import T0, FlatMetrics, http_get, make_config, make_deps, pool_dict


def daemon_for(**daemon_over: object) -> tuple[Daemon, FlatMetrics]:
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0, "interval": "20m", **daemon_over})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    return Daemon(make_deps(cfg, metrics)), metrics


def test_tick_updates_metrics_and_health_over_http() -> None:
    daemon, _ = daemon_for()
    daemon.server.start()
    try:
        base = f"http://127.0.0.1:{daemon.server.port}"
        status, _ = http_get(base + "/healthz")
        assert status == 503  # no tick has finished yet and the scheduler is not running
        daemon.scheduler.start(paused=True)
        report = daemon.tick()
        assert report is not None and report.outcomes[0].status == "applied"
        status, body = http_get(base + "/healthz")
        assert status == 200 and '"ocr"' in body
        status, text = http_get(base + "/metrics")
        assert status == 200
        assert 'forescale_desired_nodes{pool="ocr"} 13.0' in text
        # what the tick read from the (simulated) cluster before scaling 2 → 13
        assert 'forescale_pool_nodes{pool="ocr",state="desired"} 2.0' in text
        assert 'forescale_pool_nodes{pool="ocr",state="placed"} 2.0' in text
        assert 'forescale_pool_nodes{pool="ocr",state="queued"} 0.0' in text
        daemon.deps.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        daemon.tick()  # the 11 new nodes are still booting (lead time 10m): queued
        text = http_get(base + "/metrics")[1]
        assert 'forescale_pool_nodes{pool="ocr",state="desired"} 13.0' in text
        assert 'forescale_pool_nodes{pool="ocr",state="placed"} 2.0' in text
        assert 'forescale_pool_nodes{pool="ocr",state="queued"} 11.0' in text
        assert 'forescale_applied_nodes{pool="ocr"} 13.0' in text
        assert 'forescale_ticks_total{trigger="interval"} 2.0' in text
        assert "forescale_tick_duration_seconds_count 2.0" in text
        # Two intervals and a bit without a tick: unhealthy.
        daemon.deps.clock.advance(timedelta(minutes=42))  # type: ignore[attr-defined]
        assert http_get(base + "/healthz")[0] == 503
        assert http_get(base + "/nope")[0] == 404
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

    import autoscaler.daemon.service as mod

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


def test_guard_jobs_run_between_ticks_through_the_same_entry() -> None:
    """One guard job per distinct guard interval; each goes through Daemon.tick (the tick's gate and lock)."""
    cfg = make_config(
        pool_dict("ocr"),
        pool_dict("asr", guard={"interval": "5m"}),
        pool_dict("tts", guard={"enabled": False}),
        daemon={"listen_port": 0, "interval": "20m"},
    )
    metrics = FlatMetrics({p.query: 10.0 for p in cfg.pools})
    daemon = Daemon(make_deps(cfg, metrics))
    try:
        assert daemon.guard_groups() == {timedelta(minutes=2): ["ocr"], timedelta(minutes=5): ["asr"]}
        daemon.schedule_jobs()
        daemon.scheduler.start(paused=True)
        two = daemon.scheduler.get_job("guard-120s")
        assert two.func == daemon.tick
        assert two.kwargs == {"trigger": "guard", "guard": True, "only": ["ocr"]}
        assert two.trigger.interval == timedelta(minutes=2) and two.next_run_time == T0 + timedelta(minutes=2)
        assert daemon.scheduler.get_job("guard-300s").kwargs["only"] == ["asr"]
        # A burst between ticks: the guard check scales ocr up at once, and only ocr.
        assert daemon.tick() is not None  # the first tick (10 rps → 2 nodes)
        metrics.rates[cfg.pool("ocr").query] = 100.0
        metrics.rates[cfg.pool("tts").query] = 100.0
        daemon.deps.clock.advance(timedelta(minutes=2))  # type: ignore[attr-defined]
        finished = daemon.last_finished
        report = daemon.tick(**two.kwargs)
        assert report is not None and [(o.pool, o.decision.desired) for o in report.outcomes] == [("ocr", 13)]  # type: ignore[union-attr]
        assert daemon.last_finished == finished  # health follows ticks, not guard checks
        assert daemon.metrics.ticks.labels("guard")._value.get() == 1  # type: ignore[attr-defined]
        # The dashboard's "tick vs guard" panel: the guard's scale-up is counted as the guard's.
        sample = daemon.metrics.registry.get_sample_value
        assert sample("forescale_scale_actions_total", {"pool": "ocr", "by": "guard"}) == 1
        assert sample("forescale_scale_actions_total", {"pool": "asr", "by": "guard"}) == 0  # present, at zero
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


class HeldTickMetrics(FlatMetrics):
    """The tick's fetch (made on ``tick_thread``) waits until ``release`` is set; the guard's fetches do not."""

    def __init__(self, rates: dict[str, float]) -> None:
        super().__init__(rates)
        self.tick_thread: threading.Thread | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.waited_out = False

    def fetch(self, query: str, start: Any, end: Any, step_s: float) -> Any:
        if threading.current_thread() is self.tick_thread:
            self.entered.set()
            self.waited_out = not self.release.wait(30)  # 30 s only if the guard wrongly waited for the tick
        return super().fetch(query, start, end, step_s)


def test_the_guard_never_waits_behind_a_running_tick() -> None:
    """A guard check runs while a tick is still deciding (its own lock and thread): it scales the pools the tick
    does not hold at that moment, and the scheduler runs guard jobs on an executor of their own."""
    cfg = make_config(
        pool_dict("ocr"), pool_dict("asr", guard={"interval": "2m"}), daemon={"listen_port": 0, "interval": "20m"}
    )
    metrics = HeldTickMetrics({p.query: 100.0 for p in cfg.pools})
    daemon = Daemon(make_deps(cfg, metrics))
    try:
        daemon.schedule_jobs()
        daemon.scheduler.start(paused=True)
        assert daemon.scheduler.get_job("guard-120s").executor == "guard"
        assert daemon.scheduler.get_job("tick").executor == "default"
        tick = threading.Thread(target=daemon.tick)
        metrics.tick_thread = tick
        tick.start()
        assert metrics.entered.wait(30)  # the tick is inside its first pool's fetch, holding it
        assert daemon.running is not None and daemon.running.trigger == "interval"
        report = daemon.tick(trigger="guard", guard=True, only=["ocr", "asr"])
        assert not metrics.release.is_set() and tick.is_alive()  # the tick still runs: the guard did not wait
        assert report is not None and [(o.pool, o.status) for o in report.outcomes] == [("asr", "applied")]
        assert daemon.guarding is None and daemon.running is not None
        metrics.release.set()
        tick.join(30)
        assert not metrics.waited_out and daemon.last_report is not None
        assert {o.pool for o in daemon.last_report.outcomes} == {"ocr", "asr"}
    finally:
        metrics.release.set()
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


@pytest.mark.parametrize("interval", ["0s"])
def test_interval_must_be_positive(interval: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_config(pool_dict("ocr"), daemon={"interval": interval})


def test_build_daemon_wires_schedule_ticks_and_notifier_metrics(tmp_path: Path) -> None:
    """`forescale run` ticks at rule boundaries and serves the Slack notifier's metrics too."""
    from autoscaler.config import load_config
    from autoscaler.core.clock import ManualClock
    from autoscaler.notify import metrics as notify_metrics
    from autoscaler.wiring import build_daemon

    rules = tmp_path / "schedule.yaml"
    rules.write_text((REPO / "overrides" / "schedule.yaml").read_text())
    cfg_path = tmp_path / "forescale.yaml"
    cfg_path.write_text(
        (REPO / "forescale.example.yaml")
        .read_text()
        .replace("  # schedule_file: schedule.yaml", f"  schedule_file: {rules}")
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


def test_draining_pools_get_a_follow_up_tick_and_node_metrics() -> None:
    from tests.node_doubles import NODES, Directory, Provider, alloc, node, reconciler

    cfg = make_config(pool_dict("ocr", nodes=NODES), daemon={"listen_port": 0, "interval": "20m"})
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 15.0}))  # 15 rps → 2 nodes
    prov = Provider(4)
    busy = alloc(job="exporter")  # every node also runs another service: its drain takes a while
    nomad = Directory([node(i, busy) for i in range(1, 5)])
    deps.nodes = reconciler(prov, nomad)
    daemon = Daemon(deps)
    daemon.scheduler.start(paused=True)
    try:
        report = daemon.tick()
        assert report is not None
        (outcome,) = report.outcomes
        assert outcome.nodes is not None and outcome.nodes.draining == 2  # busy nodes: drains take a while
        job = daemon.scheduler.get_job("nodes-follow-up")
        assert job is not None and job.kwargs == {"trigger": "nodes", "only": ["ocr"]}
        assert job.trigger.run_date == T0 + timedelta(minutes=2)
        text = daemon.metrics.registry
        from prometheus_client import generate_latest

        body = generate_latest(text).decode()
        assert 'forescale_pool_machines{pool="ocr",state="draining"} 2.0' in body
        assert 'forescale_node_actions_total{kind="drain",pool="ocr",result="done"} 2.0' in body
        assert 'forescale_pool_lead_time_seconds{pool="ocr"} 600.0' in body
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_metrics_describe_capacity_interval_and_the_reasons_of_the_last_decision() -> None:
    from autoscaler.core.decision import Decision, Reason
    from autoscaler.core.report import PoolOutcome
    from autoscaler.daemon.metrics import DaemonMetrics

    cfg = make_config(pool_dict("ocr", capacity_per_node=10.0, target_utilization=0.8))
    metrics = DaemonMetrics()
    metrics.describe(cfg.pools, timedelta(minutes=20))
    value = metrics.registry.get_sample_value
    assert value("forescale_node_capacity_rps", {"pool": "ocr"}) == 8.0
    assert value("forescale_tick_interval_seconds") == 1200.0

    def report(*codes: str) -> TickReport:
        reasons = tuple(Reason(code, code) for code in codes)
        decision = Decision(pool="ocr", at=T0, current=4, desired=6, reasons=reasons)
        return TickReport(at=T0, outcomes=(PoolOutcome("ocr", "applied", decision),))

    metrics.observe(report("forecast", "schedule_floor"), "interval")
    assert value("forescale_decision_reason", {"pool": "ocr", "reason": "schedule_floor"}) == 1.0
    metrics.observe(report("forecast", "manual_pin"), "interval")
    # Only the last decision's reasons: the floor that no longer shaped the count is gone, not stale.
    assert value("forescale_decision_reason", {"pool": "ocr", "reason": "schedule_floor"}) is None
    assert value("forescale_decision_reason", {"pool": "ocr", "reason": "manual_pin"}) == 1.0
    assert value("forescale_decision_reason", {"pool": "ocr", "reason": "forecast"}) == 1.0


def test_unplaceable_follows_forescales_own_warning_and_clears_when_placed() -> None:
    from autoscaler.core.decision import Decision
    from autoscaler.core.report import Event, PoolOutcome
    from autoscaler.daemon.metrics import DaemonMetrics
    from autoscaler.policy.placement import PLACED, UNPLACEABLE

    cfg = make_config(pool_dict("ocr"))
    metrics = DaemonMetrics()
    metrics.describe(cfg.pools, timedelta(minutes=20))

    def unplaceable() -> float | None:
        return metrics.registry.get_sample_value("forescale_pool_unplaceable", {"pool": "ocr"})

    def report(queued: int, *kinds: str) -> TickReport:
        decision = Decision(pool="ocr", at=T0, current=6, desired=6, reasons=(), placed=6 - queued, queued=queued)
        events = tuple(Event(kind, "ocr", kind, T0) for kind in kinds)
        return TickReport(at=T0, outcomes=(PoolOutcome("ocr", "unchanged", decision),), events=events)

    assert unplaceable() == 0.0  # exported from the start, so the alert's series exists
    metrics.observe(report(2), "interval")
    assert unplaceable() == 0.0  # queued, but not yet for longer than queued_warning_after
    metrics.observe(report(2, UNPLACEABLE), "interval")
    assert unplaceable() == 1.0
    metrics.observe(report(1), "interval")
    assert unplaceable() == 1.0  # still queued: the warning holds
    metrics.observe(report(0, PLACED), "interval")
    assert unplaceable() == 0.0


def test_healthz_fails_while_a_tick_runs_past_its_deadline() -> None:
    """A tick that cannot be cut (here: work blocked on an event) is stuck: /healthz says so, then recovers."""
    daemon, _ = daemon_for(interval="20m")  # tick deadline 10m, stop grace 5s
    daemon.scheduler.start(paused=True)
    release = threading.Event()
    started = threading.Event()

    def stuck(_deadline: object) -> str:
        started.set()
        release.wait(10)
        return "done"

    worker = threading.Thread(target=daemon.act, args=("interval", stuck), daemon=True)
    try:
        assert daemon.tick() is not None  # one finished tick: healthy
        worker.start()
        assert started.wait(5)
        assert daemon.health()[0] is True  # busy, not stuck
        daemon.deps.clock.advance(timedelta(minutes=10, seconds=6))  # type: ignore[attr-defined]
        ok, detail = daemon.health()
        assert ok is False and "stuck" in detail["error"] and detail["running"]["trigger"] == "interval"
        release.set()
        worker.join(5)
        daemon.tick()
        assert daemon.health()[0] is True
    finally:
        release.set()
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()


def test_stop_shortens_the_running_ticks_deadline_and_no_new_work_starts() -> None:
    daemon, _ = daemon_for()
    started = threading.Event()
    seen: list[float] = []

    def work(deadline: object) -> None:
        started.set()
        daemon.stop()  # SIGTERM arrives mid-tick
        seen.append(deadline.remaining())  # type: ignore[attr-defined]

    try:
        daemon.act("interval", work)
        assert started.is_set() and seen and seen[0] <= 5.0  # daemon.stop_grace
        assert daemon.act("interval", lambda _d: "never") is None
    finally:
        daemon.server.httpd.server_close()


def test_a_degraded_forecast_is_exported_and_cleared_by_the_next_whole_one() -> None:
    from autoscaler.core.decision import Decision, Reason
    from autoscaler.core.report import PoolOutcome
    from autoscaler.daemon.metrics import DaemonMetrics

    metrics = DaemonMetrics()
    value = metrics.registry.get_sample_value

    def report(degraded: str | None, guard: bool = False) -> TickReport:
        d = Decision("ocr", T0, 4, 4, (Reason("forecast", "f"),), forecast_rps=30.0, degraded=degraded, guard=guard)
        return TickReport(at=T0, outcomes=(PoolOutcome("ocr", "unchanged", d),), guard=guard)

    metrics.observe(report("a gap in the metrics …"), "interval")
    assert value("forescale_pool_forecast_degraded", {"pool": "ocr"}) == 1.0
    metrics.observe(report(None, guard=True), "guard")  # a guard check reads no forecast: it changes nothing
    assert value("forescale_pool_forecast_degraded", {"pool": "ocr"}) == 1.0
    metrics.observe(report(None), "interval")
    assert value("forescale_pool_forecast_degraded", {"pool": "ocr"}) == 0.0
