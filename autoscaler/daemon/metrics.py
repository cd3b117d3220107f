"""The daemon's own Prometheus metrics (prometheus-client): what it forecast, wanted and applied."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler.core.report import TickReport


class DaemonMetrics:
    """One registry per daemon (tests create several daemons in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.forecast = Gauge(
            "forescale_forecast_rps", "Forecast peak request rate over the horizon", ["pool"], registry=r
        )
        self.observed = Gauge("forescale_observed_rps", "Latest observed request rate", ["pool"], registry=r)
        self.current = Gauge(
            "forescale_current_nodes", "Running + pending nodes seen by the last tick", ["pool"], registry=r
        )
        self.desired = Gauge("forescale_desired_nodes", "Node count decided by the last tick", ["pool"], registry=r)
        self.applied = Gauge("forescale_applied_nodes", "Node count last applied to Nomad", ["pool"], registry=r)
        self.held = Gauge("forescale_pool_held", "1 when the pool is held (metrics unavailable)", ["pool"], registry=r)
        self.tick_duration = Histogram(
            "forescale_tick_duration_seconds",
            "Wall time of one tick",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.ticks = Counter("forescale_ticks_total", "Ticks run", ["trigger"], registry=r)
        self.errors = Counter("forescale_tick_errors_total", "Per-pool tick problems", ["pool", "status"], registry=r)
        self.crashes = Counter("forescale_tick_crashes_total", "Ticks that raised unexpectedly", registry=r)
        self.last_tick = Gauge(
            "forescale_last_tick_timestamp_seconds", "UNIX time of the last finished tick", registry=r
        )

    def observe(self, report: TickReport, trigger: str) -> None:
        self.ticks.labels(trigger).inc()
        self.tick_duration.observe(report.duration_s)
        self.last_tick.set(report.at.timestamp())
        for o in report.outcomes:
            if o.status in ("failed", "deferred"):
                self.errors.labels(o.pool, o.status).inc()
            d = o.decision
            if d is None:
                continue
            self.current.labels(o.pool).set(d.current)
            self.desired.labels(o.pool).set(d.desired)
            self.held.labels(o.pool).set(1 if d.held else 0)
            if d.held:
                self.errors.labels(o.pool, "held").inc()
            if d.forecast_rps is not None:
                self.forecast.labels(o.pool).set(d.forecast_rps)
            if d.observed_rps is not None:
                self.observed.labels(o.pool).set(d.observed_rps)
            if o.status == "applied":
                self.applied.labels(o.pool).set(d.desired)
