"""Prometheus metrics of the notifiers: what was delivered, retried, dropped, and which errors Slack gave.

They live in the module-level ``REGISTRY`` (not prometheus-client's global default), so the daemon serves
them next to its own: ``Daemon(deps, extra_registries=[notify_metrics.REGISTRY])``. Tests build a
``NotifyMetrics`` on a fresh ``CollectorRegistry`` to assert exact values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NotifyMetrics:
    """The notifier counters and gauges, all labelled by ``notifier`` (e.g. ``slack``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "forescale_notifier_messages_total",
            "Messages handed to a notifier, by kind (tick, event) and result (ok, failed, dropped)",
            ["notifier", "kind", "result"],
            registry=r,
        )
        self.errors = Counter(
            "forescale_notifier_errors_total",
            "Notifier errors by code (invalid_auth, channel_not_found, rate_limited, server_error, timeout, …)",
            ["notifier", "error"],
            registry=r,
        )
        self.retries = Counter(
            "forescale_notifier_retries_total",
            "Requests retried by the slack-sdk retry handlers, by cause",
            ["notifier", "cause"],
            registry=r,
        )
        self.healthy = Gauge(
            "forescale_notifier_healthy",
            "1 when the last delivery succeeded, 0 after a failure or when the notifier is misconfigured",
            ["notifier"],
            registry=r,
        )
        self.last_success = Gauge(
            "forescale_notifier_last_success_timestamp_seconds",
            "UNIX time of the last successful delivery",
            ["notifier"],
            registry=r,
        )
        self.queue_length = Gauge(
            "forescale_notifier_queue_length", "Messages waiting for background delivery", ["notifier"], registry=r
        )


REGISTRY = CollectorRegistry()
"""Serve this on /metrics (the daemon passes it in ``extra_registries``)."""

METRICS = NotifyMetrics(REGISTRY)
"""The process-wide instance the real notifiers count into."""
