"""A pool's ``queue:`` section: workers that consume a queue (RabbitMQ …), where a shortfall waits (docs/queues.md).

pools:
  - name: ocr
    query: sum(rate(rabbitmq_queue_messages_published_total{queue="ocr"}[5m]))
    queue:
      backlog_query: sum(rabbitmq_queue_messages_ready{queue="ocr"})
      in_flight_query: sum(rabbitmq_queue_messages_unacked{queue="ocr"})   # optional
      latency_slo: 3s            # the time a request may wait in the queue
      wait_percentile: 95        # optional; p95 wait ≤ latency_slo (the headroom is calibrated for it)
      drain_time: 10m            # optional; default: the pool's lead_time
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import StrictModel


class QueueSettings(StrictModel):
    """The pool's workers consume a queue: scale on its backlog as well as on the request rate."""

    backlog_query: str = Field(
        ...,
        min_length=1,
        description="PromQL giving the messages waiting in the queue, e.g. "
        'sum(rabbitmq_queue_messages_ready{queue="ocr"}) (RabbitMQ\'s rabbitmq_prometheus plugin)',
    )
    in_flight_query: str | None = Field(
        None,
        min_length=1,
        description="optional PromQL giving the messages delivered but not yet acknowledged, e.g. "
        'sum(rabbitmq_queue_messages_unacked{queue="ocr"}); counted as waiting too (as KEDA\'s queue length)',
    )
    latency_slo: Duration = Field(
        ...,
        description="how long a request may wait in the queue, e.g. 3s: a backlog larger than the ready "
        "fleet serves in this time is a breach (the guard scales up; the pool never scales in)",
    )
    wait_percentile: float = Field(
        95.0,
        gt=50.0,
        lt=100.0,
        description="the SLO's percentile: this share of requests waits at most latency_slo (95: p95 wait ≤ "
        "latency_slo); the predictor's headroom is calibrated for it on the pool's own history",
    )
    drain_time: Duration | None = Field(
        None,
        description="time allowed to drain a backlog beyond the SLO: need = (forecast rate + backlog ÷ "
        "drain_time) ÷ capacity per node (default: the pool's lead_time, the time new nodes need to come)",
    )

    @field_validator("latency_slo")
    @classmethod
    def _slo_positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0.001:
            raise ValueError("latency_slo must be at least 1ms (e.g. 3s)")
        return v

    @field_validator("drain_time")
    @classmethod
    def _drain_positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v.total_seconds() < 1:
            raise ValueError("drain_time must be at least 1s (e.g. 10m), or left out for the pool's lead_time")
        return v

    def drain_seconds(self, lead_time: timedelta) -> float:
        """The time allowed to drain a backlog: ``drain_time``, else the pool's lead time (at least 1 s)."""
        drain = self.drain_time if self.drain_time is not None else lead_time
        return max(drain.total_seconds(), 1.0)
