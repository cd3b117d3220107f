"""A queue-fed pool end to end: real RabbitMQ (rabbitmq_prometheus) scraped by a real Prometheus, the real tick
and guard (policy/tick.py) against the fake Nomad, and pika consumers as the pool's nodes, each serving a fixed
5 messages per second, following the group's count in Nomad (lead time 0: a node is a consumer started at once).

A burst of 1,000 messages lands on one node (200 s of work; the SLO allows 3 s = 15 messages). The guard scales
out on the backlog; the pool is clamped at its max of 4 (20 msg/s); once the burst's rate has left the rate
window, a tick wants to scale in but holds while the backlog exceeds what the SLO allows; when the backlog is
within the SLO again, the next tick scales in, and a request published then waits less than the SLO.

Real time must pass here (RabbitMQ drains at its own pace): every wait is a bounded poll of Prometheus, with
deadlines generous enough for a loaded 2-core machine. The policy's own clocks are out of the way
(scale_in_cooldown and scale_in_window 0), so nothing waits for a cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.clock import SystemClock
from autoscaler.core.decision import Decision
from autoscaler.core.errors import MetricsUnavailable
from autoscaler.core.ports import NoOverrides
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import Config, NomadSettings
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.targets.nomad import NomadTarget
from predictor.factory import make_predictor
from tests.fakes.nomad import FakeNomad
from tests.fixtures.rabbitmq import ConsumerFleet, Publisher, RabbitWithPrometheus, new_queue

pytestmark = [pytest.mark.rabbitmq, pytest.mark.prometheus]

JOB, GROUP = "ml-ocr", "workers"
RATE = 5.0  # messages per second one node serves
MAX = 4
BURST = 1000
SLO_S = 3.0
DEADLINE_S = 180.0  # any one wait for RabbitMQ/Prometheus (the drain itself takes ~50 s)


def config(prom_url: str, queue: str) -> Config:
    return Config.model_validate(
        {
            "prometheus": {"url": prom_url, "step": "2s", "timeout": "10s"},
            "daemon": {"interval": "20s"},
            "predictor": {"model": "trend_lr", "trend_window": "6s"},
            "pools": [
                {
                    "name": "ocr",
                    "query": f'sum(rate(rabbitmq_queue_messages_published_total{{queue="{queue}"}}[15s]))',
                    "nomad": {"job": JOB, "group": GROUP},
                    "capacity_per_node": RATE,
                    "min": 1,
                    "max": MAX,
                    "lead_time": "1s",
                    "max_step_down": None,
                    "scale_in_cooldown": "0s",
                    "scale_in_window": "0s",
                    "queue": {
                        "backlog_query": f'sum(rabbitmq_queue_messages_ready{{queue="{queue}"}})',
                        "in_flight_query": f'sum(rabbitmq_queue_messages_unacked{{queue="{queue}"}})',
                        "latency_slo": f"{SLO_S:g}s",
                        "drain_time": "60s",
                    },
                }
            ],
        }
    )


def poll(what: str, check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    """Wait (bounded) for RabbitMQ's state to reach Prometheus; fail with ``what`` when it does not."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"not seen within {deadline_s:.0f}s: {what}", pytrace=False)
        pause.wait(0.5)


@pytest.fixture
def fleet_and_queue(rabbit_prometheus: RabbitWithPrometheus) -> Iterator[tuple[ConsumerFleet, str, Publisher]]:
    queue = new_queue(rabbit_prometheus.rabbit)
    fleet = ConsumerFleet(rabbit_prometheus.rabbit, queue, RATE)
    publisher = Publisher(rabbit_prometheus.rabbit, queue)
    try:
        yield fleet, queue, publisher
    finally:
        fleet.close()
        publisher.close()


def decision(report: TickReport) -> Decision:
    (outcome,) = report.outcomes
    assert outcome.decision is not None, outcome.error
    return outcome.decision


def test_burst_scales_out_on_the_backlog_and_scale_in_waits_for_the_drain(
    rabbit_prometheus: RabbitWithPrometheus,
    fleet_and_queue: tuple[ConsumerFleet, str, Publisher],
    fake_nomad: FakeNomad,
    nomad_settings: NomadSettings,
) -> None:
    fleet, queue, publisher = fleet_and_queue
    cfg = config(rabbit_prometheus.prometheus_url, queue)
    pool = cfg.pools[0]
    fake_nomad.add_job(JOB, groups={GROUP: 1}, scaling={GROUP: (1, MAX)})
    source = PrometheusSource(cfg.prometheus)
    deps = TickDeps(
        config=cfg,
        metrics=source,
        predictor_for=lambda p: make_predictor(cfg.predictor, p),
        target=NomadTarget(nomad_settings, sleep=lambda _s: None),
        overrides=NoOverrides(),
        clock=SystemClock(),
    )

    def follow() -> int:
        """Machines follow the count (lead time 0): one consumer per node Nomad's group asks for."""
        count = fake_nomad.group_count(JOB, GROUP)
        fleet.resize(count)
        return count

    def latest(query: str) -> float | None:
        now = datetime.now(UTC)
        try:
            series = source.fetch(query, now - timedelta(seconds=6), now, 2.0).finite()
        except MetricsUnavailable:  # not scraped yet
            return None
        return series.last_rps if len(series) else None

    assert pool.queue is not None
    backlog_query = pool.queue.backlog_query
    follow()
    publisher.burst(1)  # the publish counter exists (and is scraped) before the burst: its rate sees the burst
    counter = f'sum(rabbitmq_queue_messages_published_total{{queue="{queue}"}})'
    poll("the publish counter in Prometheus", lambda: latest(counter) is not None)
    publisher.burst(BURST)
    poll("the burst's backlog in Prometheus", lambda: (latest(backlog_query) or 0) >= BURST / 2)
    poll("the burst's rate in Prometheus", lambda: (latest(pool.query) or 0) > 0)

    # The guard sees the backlog beyond the SLO and scales out at once (clamped at the pool's max).
    up = decision(run_tick(deps, guard=True))
    assert up.guard and up.action == "up" and up.current == 1
    assert "queue_backlog" in up.reason_codes(), up.explain()
    assert up.backlog is not None and up.backlog > SLO_S * RATE and up.backlog_beyond_slo
    assert up.queue_nodes is not None and up.queue_nodes > up.rate_need  # type: ignore[operator]
    backlog_reason = next(r for r in up.reasons if r.code == "queue_backlog")
    assert "messages" in backlog_reason.message and "SLO 3s" in backlog_reason.message
    assert follow() == up.desired == MAX, up.explain()

    # Once the burst has left the 15 s rate window, rate + backlog ÷ drain time need fewer nodes than MAX: ticks
    # want to scale in, but the backlog still exceeds what the SLO allows with MAX nodes (60 messages).
    allowed = MAX * RATE * SLO_S
    poll("the burst's rate leaving the rate window", lambda: (latest(pool.query) or 0) < RATE / 2)
    held: Decision | None = None
    end = time.monotonic() + DEADLINE_S
    while held is None and time.monotonic() < end:
        tick = decision(run_tick(deps))
        assert tick.desired == MAX and not tick.held, tick.explain()  # never a scale-in during the drain
        if not tick.backlog_beyond_slo:
            pytest.fail(f"drained before a tick wanted to scale in (machine too slow?): {tick.explain()}")
        if "queue_drain" in tick.reason_codes():
            held = tick
        else:
            threading.Event().wait(1.0)
    assert held is not None, "no tick wanted to scale in during the drain"
    assert held.rate_need is not None and held.rate_need < MAX and (held.need or 0) < MAX, held.explain()
    drain_reason = next(r for r in held.reasons if r.code == "queue_drain")
    assert "no scale-in while the backlog" in drain_reason.message
    assert fake_nomad.group_count(JOB, GROUP) == MAX

    # The fleet drains the backlog; when it is within the SLO again, the next tick scales in.
    poll("the backlog within the SLO", lambda: (latest(backlog_query) or 0) <= allowed / 2)
    down = decision(run_tick(deps))
    assert not down.held and not down.backlog_beyond_slo, down.explain()
    assert down.action == "down" and down.desired < MAX, down.explain()
    assert "queue_drain" not in down.reason_codes() and "queue" in down.reason_codes()
    follow()

    # A request published now waits less than the SLO (the queue is drained); the burst's waited long.
    probe_at = time.time()
    publisher.burst(1)
    poll("the probe consumed", lambda: any(t >= probe_at for t, _ in list(fleet.waits)), deadline_s=60)
    probe_wait = max(w for t, w in list(fleet.waits) if t >= probe_at)
    assert probe_wait < SLO_S
    assert max(w for _, w in fleet.waits) > SLO_S  # the burst itself did wait beyond the SLO
    assert fleet.errors == []
