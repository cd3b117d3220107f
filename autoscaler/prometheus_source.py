"""MetricsSource backed by a real Prometheus (prometheus-api-client, custom_query_range)."""

from __future__ import annotations

from datetime import datetime

from autoscaler.config import PrometheusSettings
from autoscaler.errors import MetricsUnavailable
from predictor.series import RateSeries


class PrometheusSource:
    """Range-queries the pool's PromQL; any failure becomes MetricsUnavailable (the pool holds)."""

    def __init__(self, settings: PrometheusSettings) -> None:
        from prometheus_api_client import PrometheusConnect

        self.settings = settings
        self.client = PrometheusConnect(
            url=settings.url, headers=settings.headers() or None, disable_ssl=not settings.verify_tls
        )

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        try:
            result = self.client.custom_query_range(
                query,
                start_time=start,
                end_time=end,
                step=f"{int(step_s)}s",
                params={"timeout": f"{int(self.settings.timeout.total_seconds())}s"},
            )
        except Exception as exc:
            raise MetricsUnavailable(f"Prometheus query failed: {exc}") from None
        if not result:
            raise MetricsUnavailable("Prometheus returned an empty result")
        values = result[0]["values"]
        return RateSeries.from_lists([float(t) for t, _ in values], [float(v) for _, v in values], step_s)
