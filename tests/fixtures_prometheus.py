"""pytest fixtures for the prometheus tests (loaded by tests/conftest.py).

``prometheus_nasa`` is a real Prometheus (Debian ``prometheus`` binary) on 127.0.0.1, its TSDB backfilled
with promtool from the bundled NASA July 1995 trace as the counter ``http_requests_total``:
``{pool="nasa", code="200"}`` carries 90 % of each interval's requests and ``code="404"`` 10 %, sampled
every minute at a constant rate inside each 5-minute interval. So ``sum(rate(http_requests_total{pool="nasa"}[5m]))``
at the end of a trace interval is exactly that interval's requests / 300 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from predictor.trace import Trace, load_trace
from tests.prometheus_server import (
    PrometheusStartError,
    binaries_missing,
    counter_from_counts,
    running_prometheus,
)

REPO = Path(__file__).resolve().parents[1]
NASA_TRACE = REPO / "data" / "nasa_http_1995_jul_5min.csv"
NASA_QUERY = 'sum(rate(http_requests_total{pool="nasa"}[5m]))'
SAMPLE_S = 60.0


@dataclass(frozen=True)
class PrometheusWithTrace:
    """A running Prometheus and the trace it was backfilled from (queries must use the trace's time range)."""

    url: str
    trace: Trace
    query: str = NASA_QUERY

    def at(self, index: int) -> datetime:
        """The UTC time at which trace row ``index`` has just finished (its rate is then visible)."""
        return datetime.fromtimestamp(float(self.trace.t[index] + self.trace.step_s), UTC)


@pytest.fixture(scope="session")
def prometheus_nasa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusWithTrace]:
    missing = binaries_missing()
    if missing:
        from tests.conftest import require_service

        require_service("prometheus", f"{' and '.join(missing)} not on PATH (Debian package 'prometheus')")
    trace = load_trace(NASA_TRACE)
    series = [
        counter_from_counts({"pool": "nasa", "code": code}, trace.t, trace.requests * share, trace.step_s, SAMPLE_S)
        for code, share in (("200", 0.9), ("404", 0.1))
    ]
    try:
        with running_prometheus(series, tmp_path_factory.mktemp("prometheus")) as server:
            yield PrometheusWithTrace(server.url, trace)
    except PrometheusStartError as exc:
        pytest.fail(f"could not start the test Prometheus: {exc}", pytrace=False)
