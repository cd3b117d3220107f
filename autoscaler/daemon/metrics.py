"""The daemon's own Prometheus metrics (prometheus-client): what it forecast, wanted and applied."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler.core.nodes import NodeReport
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes.events import PROBLEMS, problem_kind
from autoscaler.policy.placement import PLACED, UNPLACEABLE
from autoscaler.policy.queue import AT_MAX, DRAINED


class DaemonMetrics:
    """One registry per daemon (tests create several daemons in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.forecast = Gauge(
            "forescale_forecast_rps", "Forecast peak request rate over the horizon", ["pool"], registry=r
        )
        self.observed = Gauge("forescale_observed_rps", "Latest observed request rate", ["pool"], registry=r)
        self.pool_nodes = Gauge(
            "forescale_pool_nodes",
            "The pool's task group in Nomad as the last tick read it: desired (its count), placed (running + "
            "pending allocations), queued (allocations Nomad cannot place yet)",
            ["pool", "state"],
            registry=r,
        )
        self.desired = Gauge("forescale_desired_nodes", "Node count decided by the last tick", ["pool"], registry=r)
        self.applied = Gauge("forescale_applied_nodes", "Node count last applied to Nomad", ["pool"], registry=r)
        self.held = Gauge("forescale_pool_held", "1 when the pool is held (metrics unavailable)", ["pool"], registry=r)
        self.degraded = Gauge(
            "forescale_pool_forecast_degraded",
            "1 when the pool's last forecast is degraded (a gap, a warming rate(), an unconfirmed sample): no scale-in",
            ["pool"],
            registry=r,
        )
        self.tick_duration = Histogram(
            "forescale_tick_duration_seconds",
            "Wall time of one tick",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.ticks = Counter(
            "forescale_ticks_total", 'Ticks run (trigger="guard": fast guard checks)', ["trigger"], registry=r
        )
        self.errors = Counter("forescale_tick_errors_total", "Per-pool tick problems", ["pool", "status"], registry=r)
        self.crashes = Counter("forescale_tick_crashes_total", "Ticks that raised unexpectedly", registry=r)
        self.leader = Gauge("forescale_leader", "1 while this forescale holds the leader lock and acts", registry=r)
        self.shadow_run = Gauge(
            "forescale_shadow",
            "1 while this forescale runs every pool in shadow (run --dry-run or mode: shadow): it holds no lock "
            "and never leads",
            registry=r,
        )
        self.leader_changes = Counter(
            "forescale_leader_changes_total", "Times this forescale became leader or stood down", ["to"], registry=r
        )
        self.leader_lock_error = Gauge(
            "forescale_leader_lock_error",
            "1 while the leader lock cannot even be tried (Nomad unreachable or the token refused)",
            registry=r,
        )
        self.standby = Counter(
            "forescale_standby_ticks_total", "Ticks skipped because another forescale leads", ["trigger"], registry=r
        )
        self.last_tick = Gauge(
            "forescale_last_tick_timestamp_seconds", "UNIX time of the last finished tick", registry=r
        )
        self.skipped = Gauge(
            "forescale_tick_skipped_pools",
            "Pools the last tick did not decide before its deadline (they go first in the next tick)",
            registry=r,
        )
        # Node pools (pools with nodes.provider): docs/nodes.md.
        self.machines = Gauge(
            "forescale_pool_machines",
            "Machines of the pool's provider by state: capacity (asked for), machines (existing), ready (serving: "
            "a ready, eligible node of the pool), booting, draining, unregistered (no node after boot_timeout), "
            "down, foreign (another node pool's), other; after the step's own actions",
            ["pool", "state"],
            registry=r,
        )
        self.node_actions = Counter(
            "forescale_node_actions_total",
            "Node step actions by kind (scale_out, drain, terminate, reclaim, purge, problem) and result",
            ["pool", "kind", "result"],
            registry=r,
        )
        self.node_problems = Counter(
            "forescale_node_problems_total",
            "Node problems and warnings reported (once each): launch_failed, no_node, node_down, drain_timeout, "
            "ambiguous, unreadable, no_attribute (problems); foreign, az_rebalance (warnings)",
            ["pool", "problem"],
            registry=r,
        )
        self.backoff = Gauge(
            "forescale_pool_scale_out_backoff_until_seconds",
            "UNIX time until which scale-out backs off after failed launches (0: none)",
            ["pool"],
            registry=r,
        )
        buckets = (60, 120, 180, 300, 420, 600, 900, 1200, 1800, 3600)
        self.boot = Histogram(
            "forescale_node_boot_seconds",
            "Ask for a machine → its allocation running",
            ["pool"],
            buckets=buckets,
            registry=r,
        )
        self.drain = Histogram(
            "forescale_node_drain_seconds", "Drain start → machine terminated", ["pool"], buckets=buckets, registry=r
        )
        self.lead_time = Gauge(
            "forescale_pool_lead_time_seconds",
            "Lead time the pool plans with (configured or learned)",
            ["pool"],
            registry=r,
        )
        self.interval = Gauge(
            "forescale_tick_interval_seconds", "Configured time between ticks (daemon.interval)", registry=r
        )
        self.node_capacity = Gauge(
            "forescale_node_capacity_rps",
            "Request rate one node is planned for: capacity_per_node × target_utilization",
            ["pool"],
            registry=r,
        )
        self.reasons = Gauge(
            "forescale_decision_reason",
            "1 for each reason code that shaped the pool's last decision (manual_pin, schedule_floor, "
            "step_down, pool_max, metrics_unavailable, …)",
            ["pool", "reason"],
            registry=r,
        )
        self._reason_codes: dict[str, set[str]] = {}
        self.unplaceable = Gauge(
            "forescale_pool_unplaceable",
            "1 from forescale's 'workers cannot be placed' warning (queued longer than queued_warning_after) "
            "until they are placed again",
            ["pool"],
            registry=r,
        )
        self.shadow = Gauge(
            "forescale_pool_shadow",
            "1 while the pool is in shadow (mode: shadow or run --dry-run): decided, never applied",
            ["pool"],
            registry=r,
        )
        self.would_scale = Gauge(
            "forescale_would_scale_nodes",
            "Shadow pools: the count forescale would have applied in the last tick (absent for active pools)",
            ["pool"],
            registry=r,
        )
        self.would_scale_total = Counter(
            "forescale_would_scale_total",
            "Shadow pools: ticks that would have scaled, by direction",
            ["pool", "action"],
            registry=r,
        )
        self.scale_actions = Counter(
            "forescale_scale_actions_total",
            'Counts applied to Nomad, by who decided them: by="tick" (the forecast) or by="guard" (the fast '
            "guard between ticks)",
            ["pool", "by"],
            registry=r,
        )

        # Queue-fed pools (pools with queue:): docs/queues.md.
        self.queue_backlog = Gauge(
            "forescale_queue_backlog_messages",
            "Messages waiting in the pool's queue as the last tick or guard read them (ready + unacked)",
            ["pool"],
            registry=r,
        )
        self.queue_wait = Gauge(
            "forescale_queue_wait_seconds",
            "Estimated wait of a request queued now: backlog ÷ the ready nodes' capacity (+Inf: none ready)",
            ["pool"],
            registry=r,
        )
        self.queue_slo = Gauge(
            "forescale_queue_latency_slo_seconds",
            "The pool's queue.latency_slo: how long a request may wait",
            ["pool"],
            registry=r,
        )
        self.queue_at_max = Gauge(
            "forescale_queue_backlog_at_max",
            "1 from forescale's 'backlog grows at the pool's max' event until the backlog is within the SLO again",
            ["pool"],
            registry=r,
        )

    def describe(self, pools: Iterable[PoolConfig], interval: timedelta) -> None:
        """The config-derived gauges (capacity lines on the dashboard, the overdue alert's interval)."""
        self.interval.set(interval.total_seconds())
        for pool in pools:
            self.node_capacity.labels(pool.name).set(pool.capacity_per_node * pool.target_utilization)
            for by in ("tick", "guard"):  # present from the start: "no guard action" is a 0, not a missing series
                self.scale_actions.labels(pool.name, by)
            self.unplaceable.labels(pool.name).set(0)
            if pool.nodes.enabled:  # a first problem must be an increase from 0 for the alert rules to see it
                for problem in PROBLEMS:
                    self.node_problems.labels(pool.name, problem)
                for kind in ("terminate", "reap", "cancel"):
                    self.node_actions.labels(pool.name, kind, "failed")
                self.backoff.labels(pool.name).set(0)
                self.boot.labels(pool.name)  # histograms present (empty) before the first boot and drain
                self.drain.labels(pool.name)
            if pool.queue is not None:
                self.queue_slo.labels(pool.name).set(pool.queue.latency_slo.total_seconds())
                self.queue_at_max.labels(pool.name).set(0)

    def set_shadow(self, pools: dict[str, bool]) -> None:
        """Which pools are in shadow (mode: shadow, or every pool under run --dry-run)."""
        for pool, shadow in pools.items():
            self.shadow.labels(pool).set(1 if shadow else 0)

    def observe(self, report: TickReport, trigger: str, shadow_pools: frozenset[str] = frozenset()) -> None:
        for event in report.events:
            if event.kind in (UNPLACEABLE, PLACED):
                self.unplaceable.labels(event.pool).set(1 if event.kind == UNPLACEABLE else 0)
            if event.kind in (AT_MAX, DRAINED):
                self.queue_at_max.labels(event.pool).set(1 if event.kind == AT_MAX else 0)
        self.ticks.labels(trigger).inc()
        if not report.guard:  # a guard check is not a tick: it must not hide a stalled one
            self.tick_duration.observe(report.duration_s)
            self.last_tick.set(report.at.timestamp())
            self.skipped.set(len(report.skipped))
        for o in report.outcomes:
            if o.status in ("failed", "deferred"):
                self.errors.labels(o.pool, o.status).inc()
            d = o.decision
            if d is None:
                continue
            self.pool_nodes.labels(o.pool, "desired").set(d.current)
            if d.placed is not None:
                self.pool_nodes.labels(o.pool, "placed").set(d.placed)
            if d.queued is not None:
                self.pool_nodes.labels(o.pool, "queued").set(d.queued)
                if d.queued == 0:
                    self.unplaceable.labels(o.pool).set(0)
            if o.pool in shadow_pools:
                self.would_scale.labels(o.pool).set(d.desired)
            if o.status == "shadow":
                self.would_scale_total.labels(o.pool, d.action).inc()
            self.desired.labels(o.pool).set(d.desired)
            self.held.labels(o.pool).set(1 if d.held else 0)
            if not report.guard:  # the guard reads no forecast
                self.degraded.labels(o.pool).set(1 if d.degraded else 0)
            if d.held:
                self.errors.labels(o.pool, "held").inc()
            codes = set(d.reason_codes())
            for gone in self._reason_codes.get(o.pool, set()) - codes:
                self.reasons.remove(o.pool, gone)
            for code in codes:
                self.reasons.labels(o.pool, code).set(1)
            self._reason_codes[o.pool] = codes
            if d.forecast_rps is not None:
                self.forecast.labels(o.pool).set(d.forecast_rps)
            if d.observed_rps is not None:
                self.observed.labels(o.pool).set(d.observed_rps)
            if d.backlog is not None:
                self.queue_backlog.labels(o.pool).set(d.backlog)
                self.queue_wait.labels(o.pool).set(d.backlog_wait_s if d.backlog_wait_s is not None else float("inf"))
            if o.status == "applied":
                self.applied.labels(o.pool).set(d.desired)
                if d.changed:
                    self.scale_actions.labels(o.pool, "guard" if report.guard else "tick").inc()
        for o in report.outcomes:
            if o.nodes is not None and not report.dry_run:
                self.observe_nodes(o.pool, o.nodes)

    def observe_nodes(self, pool: str, nodes: NodeReport) -> None:
        """Gauges from the step's counts after its own actions (tick, guard and follow-up ticks alike)."""
        if nodes.lead_time is not None:
            self.lead_time.labels(pool).set(nodes.lead_time.seconds)
        if nodes.error:
            self.node_actions.labels(pool, "read", "failed").inc()
            return
        if nodes.capacity_after is not None:
            self.machines.labels(pool, "capacity").set(nodes.capacity_after)
        c = nodes.counts
        states = {"machines": nodes.machines, "ready": nodes.nodes_ready, "draining": nodes.draining}
        if c is not None:
            states.update(booting=c.booting, unregistered=c.unregistered, down=c.down, foreign=c.foreign, other=c.other)
        for state, value in states.items():
            self.machines.labels(pool, state).set(value)
        self.backoff.labels(pool).set(nodes.backoff.until.timestamp() if nodes.backoff is not None else 0)
        for a in nodes.actions:
            if a.status in ("done", "failed"):
                self.node_actions.labels(pool, a.kind, a.status).inc()
            if a.reported_once:
                self.node_problems.labels(pool, problem_kind(a.key)).inc()
            if a.kind == "terminate" and a.status == "done" and a.seconds is not None:
                self.drain.labels(pool).observe(a.seconds)
        for boot in nodes.boots:
            self.boot.labels(pool).observe(boot.seconds)
