"""Queue-fed pools (DESIGN.md "Queue-fed pools", docs/queues.md): the backlog as well as the request rate.

Where workers consume a queue, a shortfall is a wait, not a loss. A pool with a ``queue:`` section reads its
backlog (messages ready, plus unacknowledged ones when ``in_flight_query`` is set) every tick and guard check:

- the backlog the *ready* fleet serves within ``latency_slo`` is what the SLO allows
  (``placed × capacity_per_node × latency_slo``); its estimated wait is ``backlog ÷ (placed × capacity)``;
- beyond that, need = (rate + backlog ÷ drain time) ÷ capacity per node (the rate: the forecast in a tick,
  the observed rate in the guard), so the backlog is gone within ``drain_time`` once the nodes are ready;
- while the backlog exceeds what the SLO allows, the pool never scales in (the drain needs the fleet);
- a backlog within the SLO is reported and changes nothing (a busy queue always holds a few messages).

The backlog need is transient: the scale-in window keeps the *rate* need (``Decision.rate_need``), so the
nodes a drain needed go as soon as the backlog is within the SLO again.

A backlog query that answers nothing, NaN, a negative value or a stale sample holds the pool (``read_queue``
gives the cause), exactly as a missing rate does. ``BacklogWatch`` raises one ``queue_backlog_at_max`` event
per episode while the backlog grows beyond the SLO with the pool at its max, and ``queue_backlog_drained``
when it is back within the SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from autoscaler.core.decision import Decision, Reason
from autoscaler.core.durations import format_duration
from autoscaler.core.errors import MetricsUnavailable
from autoscaler.core.ports import MetricsSource
from autoscaler.core.report import Event
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.queue import QueueSettings
from predictor.capacity import nodes_for

AT_MAX = "queue_backlog_at_max"
DRAINED = "queue_backlog_drained"


@dataclass(frozen=True)
class QueueReading:
    """The queue's latest gauges: messages ready (``backlog``) and, when queried, delivered but unacked."""

    backlog: float
    in_flight: float | None = None

    @property
    def waiting(self) -> float:
        """Messages not yet done: ready + unacknowledged (as KEDA's RabbitMQ queue length)."""
        return self.backlog + (self.in_flight or 0.0)


class QueueRead(NamedTuple):
    """A pool's queue reading, or why there is none (the pool then holds)."""

    reading: QueueReading | None
    cause: str | None = None


def read_queue(metrics: MetricsSource, queue: QueueSettings, now: datetime, step_s: float) -> QueueRead:
    """The latest backlog (and in-flight) sample; a missing, stale, NaN or negative answer is a cause to hold."""
    backlog, cause = _latest(metrics, queue.backlog_query, "backlog", now, step_s)
    if backlog is None:
        return QueueRead(None, cause)
    in_flight = None
    if queue.in_flight_query is not None:
        in_flight, cause = _latest(metrics, queue.in_flight_query, "in-flight", now, step_s)
        if in_flight is None:
            return QueueRead(None, cause)
    return QueueRead(QueueReading(backlog, in_flight))


def _latest(
    metrics: MetricsSource, query: str, what: str, now: datetime, step_s: float
) -> tuple[float | None, str | None]:
    try:
        series = metrics.fetch(query, now - timedelta(seconds=2 * step_s), now, step_s)
    except MetricsUnavailable as exc:
        return None, f"{what} query: {exc}"
    if len(series) == 0:
        return None, f"{what} query: no samples (empty result)"
    value = series.last_rps
    if not math.isfinite(value):
        return None, f"{what} query: the latest sample is {value} (not a number of messages)"
    if value < 0:
        return None, f"{what} query: the latest sample is negative ({value:g} messages)"
    stale = series.stale(now.timestamp(), step_s)
    if stale is not None:
        return None, f"{what} query: {stale}"
    return float(value), None


@dataclass(frozen=True)
class QueueNeed:
    """What the backlog says: the nodes rate + backlog need (``nodes``, counted only ``beyond_slo``)."""

    nodes: int
    waiting: float
    wait_s: float  # estimated wait of a request arriving now: waiting ÷ the ready fleet's capacity (inf: none)
    allowed: float  # the backlog the ready fleet serves within the SLO
    beyond_slo: bool
    reason: Reason


def queue_need(pool: PoolConfig, rate_rps: float, reading: QueueReading, serving: int, rate_name: str) -> QueueNeed:
    """The backlog's share of the need (pool must have a ``queue:`` section).

    ``serving`` is the ready fleet (placed nodes), ``rate_rps`` the rate the rest of the decision plans for
    (``rate_name`` says which: "forecast" or "observed").
    """
    assert pool.queue is not None
    slo_s = pool.queue.latency_slo.total_seconds()
    drain_s = pool.queue.drain_seconds(pool.lead_time)
    capacity = serving * pool.capacity_per_node
    waiting = reading.waiting
    wait_s = waiting / capacity if capacity > 0 else (0.0 if waiting <= 0 else math.inf)
    allowed = capacity * slo_s
    beyond = waiting > allowed and waiting > 0
    what = _messages(reading)
    work = (
        f"{_seconds(wait_s)} of work at {_rps(capacity)} rps ({serving} ready nodes)"
        if capacity > 0
        else ("no ready node serves it")
    )
    slo = format_duration(pool.queue.latency_slo)
    if not beyond:
        nodes = 0
        text = f"{what} = {work}: within the SLO {slo} (up to {allowed:,.0f} messages)"
        if waiting <= 0:
            text = f"queue empty: within the SLO {slo}"
        return QueueNeed(nodes, waiting, wait_s, allowed, False, Reason("queue", text))
    drain_rps = waiting / drain_s
    nodes = nodes_for(rate_rps + drain_rps, pool.capacity_per_node, pool.target_utilization)
    drain = format_duration(timedelta(seconds=drain_s))
    text = (
        f"{what} = {work}; SLO {slo} → drain it within {drain}: {rate_name} {_rps(rate_rps)} + "
        f"{_rps(drain_rps)} rps → {nodes} nodes"
    )
    return QueueNeed(nodes, waiting, wait_s, allowed, True, Reason("queue_backlog", text, nodes))


def hold_for_drain(need: QueueNeed, current: int, wanted: int, slo: timedelta) -> Reason | None:
    """The reason to keep ``current`` when a scale-in to ``wanted`` would come while the backlog exceeds
    the SLO (None: scale-in may go on)."""
    if not need.beyond_slo or wanted >= current:
        return None
    return Reason(
        "queue_drain",
        f"no scale-in while the backlog ({need.waiting:,.0f} messages, {_seconds(need.wait_s)} of work) exceeds "
        f"what the SLO {format_duration(slo)} allows ({need.allowed:,.0f}); held at {current} (wanted {wanted})",
        current,
    )


def _messages(reading: QueueReading) -> str:
    if reading.in_flight is None:
        return f"backlog {reading.backlog:,.0f} messages"
    return f"backlog {reading.waiting:,.0f} messages ({reading.backlog:,.0f} ready + {reading.in_flight:,.0f} unacked)"


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "∞ s"
    return f"{value:,.0f} s" if value >= 10 else f"{value:.2g} s"


def _rps(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass
class _Episode:
    since: datetime
    last: float
    warned: bool = False


class BacklogWatch:
    """One ``queue_backlog_at_max`` event per episode: the backlog beyond the SLO grows while the pool is at its
    max (forescale can do nothing more: raise max, or find why the workers are slow); ``queue_backlog_drained``
    once it is within the SLO again. Kept in memory by the daemon (a one-shot tick has no earlier reading, so
    it sees no growth)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.episodes: dict[str, _Episode] = {}

    def observe(self, pool: PoolConfig, decision: Decision, now: datetime) -> Event | None:
        if decision.backlog is None:
            return None
        waiting = decision.backlog
        before = self.last.get(pool.name)
        self.last[pool.name] = waiting
        episode = self.episodes.get(pool.name)
        if not decision.backlog_beyond_slo:
            if episode is None:
                return None
            del self.episodes[pool.name]
            if not episode.warned:
                return None
            return Event(
                DRAINED,
                pool.name,
                f"the backlog is within the SLO again ({waiting:,.0f} messages) after "
                f"{format_duration(_minutes(now - episode.since))} beyond it at the pool's max",
                now,
                {"backlog": waiting, "since": episode.since.isoformat()},
            )
        at_max = decision.desired >= pool.max
        if episode is not None and episode.warned:
            episode.last = waiting
            return None
        if not at_max or before is None or waiting <= before:
            return None
        if episode is None:
            episode = self.episodes[pool.name] = _Episode(now, waiting)
        episode.warned = True
        wait = f", ~{_seconds(decision.backlog_wait_s)} of work" if decision.backlog_wait_s is not None else ""
        return Event(
            AT_MAX,
            pool.name,
            f"the backlog grows at the pool's max ({pool.max} nodes): {before:,.0f} → {waiting:,.0f} messages"
            f"{wait}, beyond the SLO; raise pools[{pool.name}].max or find why the workers are slow",
            now,
            {"backlog": waiting, "previous": before, "max": pool.max},
        )


def _minutes(delta: timedelta) -> timedelta:
    return timedelta(seconds=max(60, round(delta.total_seconds() / 60) * 60))
