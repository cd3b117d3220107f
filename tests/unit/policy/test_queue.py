"""Queue-fed pools (policy/queue.py): the backlog need, the drain hold, bad backlogs holding, one alert per
episode at max — through decide and the real tick with in-memory metrics."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import PastNeed, PoolState
from autoscaler.core.series import RateSeries
from autoscaler.policy.decide import decide
from autoscaler.policy.queue import AT_MAX, DRAINED, QueueReading
from autoscaler.policy.tick import run_tick
from predictor.base import Forecast
from predictor.factory import policy_shape
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict

BACKLOG = 'sum(rabbitmq_queue_messages_ready{queue="ocr"})'
UNACKED = 'sum(rabbitmq_queue_messages_unacked{queue="ocr"})'


def queue_pool(**over: Any) -> dict[str, Any]:
    """10 rps per node at 100 %, SLO 3 s, drain within 10 minutes."""
    queue = {"backlog_query": BACKLOG, "latency_slo": "3s", "drain_time": "10m", **over.pop("queue", {})}
    return pool_dict("ocr", target_utilization=1.0, queue=queue, **over)


def forecast(rps: float) -> Forecast:
    return Forecast(peak_rps=rps, observed_rps=rps, horizon_s=1800.0, model="test")


def test_within_the_slo_the_backlog_is_reported_and_changes_nothing() -> None:
    pool = make_config(queue_pool()).pools[0]
    plain = make_config(pool_dict("ocr", target_utilization=1.0)).pools[0]
    state = PoolState(desired=5, placed=5)
    with_queue = decide(pool, T0, state, forecast(42.0), queue=QueueReading(100.0))
    without = decide(plain, T0, state, forecast(42.0))
    assert with_queue.desired == without.desired == 5 and with_queue.need == without.need
    assert with_queue.reason_codes() == [*without.reason_codes(), "queue"]
    # 5 ready nodes serve 50 rps: 100 messages are 2 s of work, within 3 s (up to 150 messages)
    assert with_queue.backlog == 100.0 and with_queue.backlog_wait_s == pytest.approx(2.0)
    assert not with_queue.backlog_beyond_slo and with_queue.queue_nodes is None
    assert "within the SLO 3s (up to 150 messages)" in with_queue.reasons[-1].message
    assert without.backlog is None and "backlog" not in without.to_dict()  # a plain pool's record is unchanged


def test_beyond_the_slo_need_is_rate_plus_backlog_over_drain_time() -> None:
    pool = make_config(queue_pool()).pools[0]
    # 12,400 messages at 5 ready nodes (50 rps) = 248 s of work; drained in 600 s: +20.67 rps
    d = decide(pool, T0, PoolState(desired=5, placed=5), forecast(42.0), queue=QueueReading(12_400.0))
    assert d.backlog_beyond_slo and d.queue_nodes == math.ceil((42.0 + 12_400 / 600) / 10) == 7
    assert d.desired == 7 and d.need == 7 and d.rate_need == 5
    text = next(r.message for r in d.reasons if r.code == "queue_backlog")
    assert text.startswith("backlog 12,400 messages = 248 s of work at 50 rps (5 ready nodes); SLO 3s")
    assert "drain it within 10m: forecast 42 + 20.7 rps → 7 nodes" in text


def test_in_flight_counts_as_waiting_and_the_ready_fleet_is_what_serves() -> None:
    pool = make_config(queue_pool()).pools[0]
    # desired 5 but only 2 placed: 2 × 10 rps × 3 s = 60 messages allowed; 50 ready + 20 unacked exceed it
    d = decide(pool, T0, PoolState(desired=5, placed=2, queued=3), forecast(10.0), queue=QueueReading(50.0, 20.0))
    assert d.backlog == 70.0 and d.backlog_beyond_slo and d.backlog_wait_s == pytest.approx(3.5)
    assert "(50 ready + 20 unacked)" in next(r.message for r in d.reasons if r.code == "queue_backlog")
    assert d.desired == 5  # (10 + 70/600) rps needs 2 nodes: scale-in is held for the drain
    assert "queue_drain" in d.reason_codes()


def test_no_scale_in_while_the_backlog_exceeds_the_slo_then_scale_in() -> None:
    pool = make_config(queue_pool(max_step_down=None, scale_in_window="0s")).pools[0]
    state = PoolState(desired=10, placed=10)
    held = decide(pool, T0, state, forecast(20.0), queue=QueueReading(400.0))  # 4 s of work at 100 rps
    assert held.desired == 10 and held.need == 3 and held.rate_need == 2
    drain = next(r for r in held.reasons if r.code == "queue_drain")
    assert drain.nodes == 10 and "no scale-in while the backlog (400 messages, 4 s of work)" in drain.message
    assert "allows (300); held at 10 (wanted 3)" in drain.message
    free = decide(pool, T0, state, forecast(20.0), queue=QueueReading(300.0))  # exactly what the SLO allows
    assert free.desired == 2 and "queue_drain" not in free.reason_codes()


def test_no_ready_node_means_an_unbounded_wait() -> None:
    pool = make_config(queue_pool()).pools[0]
    d = decide(pool, T0, PoolState(desired=1, placed=0, queued=1), forecast(5.0), queue=QueueReading(30.0))
    assert d.backlog_beyond_slo and d.backlog_wait_s is None and d.desired == 1
    assert "no ready node serves it" in next(r.message for r in d.reasons if r.code == "queue_backlog")


def test_the_guard_scales_up_on_a_backlog_beyond_the_slo_only() -> None:
    pool = make_config(queue_pool()).pools[0]
    state = PoolState(desired=4, placed=4)
    quiet = decide(pool, T0, state, forecast(30.0), guard=True, queue=QueueReading(100.0))
    assert quiet.desired == 4 and quiet.reason_codes() == ["guard", "queue"]
    same = decide(pool, T0, state, forecast(30.0), guard=True, queue=QueueReading(6_000.0))
    assert same.backlog_beyond_slo and same.desired == math.ceil((30.0 + 10.0) / 10) == 4  # the fleet suffices
    up = decide(pool, T0, state, forecast(30.0), guard=True, queue=QueueReading(60_000.0))
    assert up.desired == math.ceil((30 + 100) / 10) == 13 and up.rate_need == 3 and up.reactive_nodes == 3
    assert up.reasons[0].message.startswith("guard: the backlog needs more than capacity 40 rps")


def test_settings_errors_name_the_key() -> None:
    with pytest.raises(ValidationError) as err:
        make_config(queue_pool(queue={"latency_slo": "soon"}))
    assert "pools.0.queue.latency_slo" in str(err.value)
    with pytest.raises(ValidationError) as err:
        make_config(pool_dict("ocr", queue={"latency_slo": "3s"}))
    assert "pools.0.queue.backlog_query" in str(err.value)
    with pytest.raises(ValidationError) as err:
        make_config(queue_pool(queue={"drain_time": "0s"}))
    assert "drain_time must be at least 1s" in str(err.value)
    pool = make_config(queue_pool(queue={"drain_time": None}, lead_time="7m")).pools[0]
    assert pool.queue is not None and pool.queue.drain_seconds(pool.lead_time) == 420.0
    with pytest.raises(ValidationError) as err:
        make_config(queue_pool(queue={"wait_percentile": 100}))
    assert "pools.0.queue.wait_percentile" in str(err.value)


def test_the_predictor_of_a_queue_fed_pool_calibrates_for_its_wait_slo() -> None:
    """The pool's latency SLO, percentile and drain time reach the headroom calibration (predictor/factory.py)."""
    cfg = make_config(queue_pool(queue={"wait_percentile": 90}))
    shape = policy_shape(cfg.pools[0])
    assert (shape.wait_slo_s, shape.wait_beyond_pct, shape.drain_s) == (3.0, 10.0, 600.0)
    plain = policy_shape(make_config(pool_dict("ocr")).pools[0])
    assert plain.wait_slo_s is None and plain.drain_s is None


class QueueMetrics(FlatMetrics):
    """FlatMetrics whose backlog answer can be NaN, negative, missing (empty) or old."""

    def __init__(self, rates: dict[str, float], empty: set[str] | None = None, age_s: float = 0.0) -> None:
        super().__init__(rates)
        self.empty = empty or set()
        self.age_s = age_s

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        if query in self.empty:
            self.calls.append(query)
            return RateSeries.from_lists([], [], step_s)
        if query in (BACKLOG, UNACKED) and self.age_s:
            t = end.timestamp() - self.age_s
            return RateSeries.from_lists([t], [self.rates[query]], step_s)
        return super().fetch(query, start, end, step_s)


@pytest.mark.parametrize(
    ("value", "empty", "age_s", "cause"),
    [
        (math.nan, False, 0.0, "backlog query: the latest sample is nan (not a number of messages)"),
        (-3.0, False, 0.0, "backlog query: the latest sample is negative (-3 messages)"),
        (0.0, True, 0.0, "backlog query: no samples (empty result)"),
        (5.0, False, 600.0, "backlog query: stale: last sample is 600s old (more than 2 steps)"),
    ],
)
def test_a_bad_backlog_holds_the_pool_with_a_reason(value: float, empty: bool, age_s: float, cause: str) -> None:
    cfg = make_config(queue_pool())
    pool = cfg.pools[0]
    metrics = QueueMetrics({pool.query: 5.0, BACKLOG: value}, {BACKLOG} if empty else set(), age_s)
    deps = make_deps(cfg, metrics)
    d = run_tick(deps).outcomes[0].decision
    assert d is not None and d.held and d.desired == d.current == 2
    assert d.hold_cause == cause and d.reason_codes()[0] == "metrics_unavailable"
    assert run_tick(deps, guard=True).outcomes == ()  # the guard does nothing on a bad backlog


def test_an_unreadable_in_flight_query_holds_too() -> None:
    cfg = make_config(queue_pool(queue={"in_flight_query": UNACKED}))
    metrics = QueueMetrics({cfg.pools[0].query: 5.0, BACKLOG: 1.0}, {UNACKED})
    d = run_tick(make_deps(cfg, metrics)).outcomes[0].decision
    assert d is not None and d.held and d.hold_cause == "in-flight query: no samples (empty result)"


def test_the_scale_in_window_keeps_the_rate_need_not_the_backlog_need() -> None:
    cfg = make_config(queue_pool())
    pool = cfg.pools[0]
    metrics = FlatMetrics({pool.query: 20.0, BACKLOG: 60_000.0})
    deps = make_deps(cfg, metrics)
    report = run_tick(deps)
    d = report.outcomes[0].decision
    assert d is not None and d.need == math.ceil((20 + 100) / 10) and d.rate_need == 2
    assert deps.history.needs_for("ocr") == [PastNeed(T0, "ocr", 2)]


def test_a_backlog_growing_at_max_alerts_once_per_episode() -> None:
    cfg = make_config(queue_pool(max=3, min=1))
    pool = cfg.pools[0]
    clock = ManualClock(T0)
    metrics = FlatMetrics({pool.query: 30.0, BACKLOG: 1_000.0})
    deps = make_deps(cfg, metrics, clock=clock)
    deps.target.set_ready("ocr", 3)  # type: ignore[attr-defined]
    kinds = []
    for backlog in (1_000.0, 2_000.0, 3_000.0, 2_500.0, 4_000.0, 50.0, 60.0, 900.0, 1_200.0):
        metrics.rates[BACKLOG] = backlog
        clock.set(clock.now() + timedelta(minutes=20))
        report = run_tick(deps)
        kinds.append([e.kind for e in report.events])
    # first reading: growth unknown; 1,000 → 2,000 at max: one alert; still growing or shrinking: silent;
    # within the SLO (up to 90 messages at 3 nodes): drained; the next growth beyond it alerts once more
    assert kinds == [[], [AT_MAX], [], [], [], [DRAINED], [], [AT_MAX], []]
    assert deps.backlog.episodes["ocr"].warned


def test_the_alert_names_the_fix() -> None:
    cfg = make_config(queue_pool(max=3, min=1))
    pool = cfg.pools[0]
    clock = ManualClock(T0)
    metrics = FlatMetrics({pool.query: 30.0, BACKLOG: 1_000.0})
    deps = make_deps(cfg, metrics, clock=clock)
    deps.target.set_ready("ocr", 3)  # type: ignore[attr-defined]
    run_tick(deps)
    metrics.rates[BACKLOG] = 1_500.0
    (event,) = run_tick(deps).events
    assert event.kind == AT_MAX and event.pool == "ocr"
    assert event.message.startswith("the backlog grows at the pool's max (3 nodes): 1,000 → 1,500 messages")
    assert "raise pools[ocr].max" in event.message and event.details["backlog"] == 1_500.0


def test_slack_announces_the_backlog_episode() -> None:
    from autoscaler.core.report import Event
    from autoscaler.notify.slack.messages import MessageFormatter

    formatter = MessageFormatter(make_config(queue_pool()))
    alert = formatter.event(Event(AT_MAX, "ocr", "the backlog grows at the pool's max (3 nodes)", T0))
    assert alert.text.startswith("forescale: queue backlog at max (ocr): the backlog grows")
    assert ":rotating_light:" in str(alert.blocks[0])
    drained = formatter.event(Event(DRAINED, "ocr", "the backlog is within the SLO again", T0))
    assert ":white_check_mark:" in str(drained.blocks[0])


def test_the_daemon_exports_backlog_wait_slo_and_the_episode() -> None:
    from prometheus_client import generate_latest

    from autoscaler.daemon.metrics import DaemonMetrics

    cfg = make_config(queue_pool(max=3, min=1), pool_dict("web"))
    clock = ManualClock(T0)
    metrics = FlatMetrics({cfg.pools[0].query: 30.0, cfg.pools[1].query: 5.0, BACKLOG: 1_000.0})
    deps = make_deps(cfg, metrics, clock=clock)
    deps.target.set_ready("ocr", 3)  # type: ignore[attr-defined]
    exported = DaemonMetrics()
    exported.describe(cfg.pools, cfg.daemon.interval)
    exported.observe(run_tick(deps), "interval")
    metrics.rates[BACKLOG] = 2_000.0
    exported.observe(run_tick(deps), "interval")
    text = generate_latest(exported.registry).decode()
    assert 'forescale_queue_backlog_messages{pool="ocr"} 2000.0' in text
    assert 'forescale_queue_wait_seconds{pool="ocr"} 66.66666666666667' in text  # 2,000 ÷ (3 × 10 rps)
    assert 'forescale_queue_latency_slo_seconds{pool="ocr"} 3.0' in text
    assert 'forescale_queue_backlog_at_max{pool="ocr"} 1.0' in text
    assert 'pool="web"' not in "".join(line for line in text.splitlines() if line.startswith("forescale_queue_"))


def test_a_one_shot_tick_reads_the_rate_need_back_from_the_audit_log(tmp_path: Any) -> None:
    from autoscaler.notify.audit import AuditLog

    cfg = make_config(queue_pool(), pool_dict("web", target_utilization=1.0))
    metrics = FlatMetrics({cfg.pools[0].query: 20.0, cfg.pools[1].query: 20.0, BACKLOG: 60_000.0})
    audit = AuditLog(tmp_path / "audit.jsonl")
    run_tick(make_deps(cfg, metrics, audit=audit))
    needs = {n.pool: n.nodes for n in audit.recent_needs(T0 - timedelta(minutes=1))}
    assert needs == {"ocr": 2, "web": 2}  # ocr's decision needed 12 nodes for its backlog; the window keeps 2
