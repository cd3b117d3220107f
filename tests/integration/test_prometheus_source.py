"""PrometheusSource against a real Prometheus backfilled from the NASA trace (plus tiny stub servers
for answers a real Prometheus cannot be made to give on demand: auth refusals, non-Prometheus pages)."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from autoscaler.core.errors import MetricsUnavailable
from autoscaler.core.settings.forescale import PrometheusSettings
from autoscaler.sources.prometheus import PROMETHEUS_POINT_LIMIT, PrometheusSource
from tests.fixtures.prometheus import NASA_QUERY, PrometheusWithTrace

pytestmark = pytest.mark.prometheus
STUB_END = datetime(1995, 7, 3, 12, tzinfo=UTC)  # stub servers ignore the time range


def source(url: str, **settings: Any) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings.model_validate({"url": url, **settings}))


def expected_rate(prom: PrometheusWithTrace, ts: np.ndarray) -> np.ndarray:
    """rate(...[5m]) from the backfilled counter: requests in (t - 300 s, t] / 300, computed from the trace.

    With samples every minute on the query grid, the first and last samples of each 5-minute window sit
    exactly on its edges, so Prometheus needs no extrapolation: rate() is Δcounter / 300 s up to float
    rounding (hence the 1e-9 tolerance below rather than an extrapolation allowance).
    """
    trace = prom.trace
    cumulative = np.concatenate(([0.0], np.cumsum(trace.requests)))
    edges = np.concatenate((trace.t, [trace.t[-1] + trace.step_s]))

    def counter(t: np.ndarray) -> np.ndarray:
        return np.interp(t, edges, cumulative)

    return (counter(ts) - counter(ts - 300.0)) / 300.0


def test_values_equal_the_trace_rate(prometheus_nasa: PrometheusWithTrace) -> None:
    prom = prometheus_nasa
    end = prom.at(2000)
    # a sub-second-precision timeout is also passed to Prometheus as its query timeout: it must accept it
    series = source(prom.url, timeout="1500ms").fetch(prom.query, end - timedelta(hours=6), end, 60)
    assert len(series) == 6 * 60 + 1
    assert series.last_t == end.timestamp()
    np.testing.assert_allclose(series.rps, expected_rate(prom, series.t), rtol=0, atol=1e-9)
    # at the end of each trace interval the value is exactly that interval's requests/300s
    at_row_end = np.isin(series.t, prom.trace.t + prom.trace.step_s)
    rows = np.searchsorted(prom.trace.t + prom.trace.step_s, series.t[at_row_end])
    np.testing.assert_allclose(series.rps[at_row_end], prom.trace.rps[rows], rtol=0, atol=1e-9)
    assert at_row_end.sum() == 6 * 12 + 1


def test_long_range_is_chunked_under_the_point_limit(
    prometheus_nasa: PrometheusWithTrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = prometheus_nasa
    end = prom.at(4000)
    start = end - timedelta(days=10)
    points = 10 * 1440 + 1
    assert points > PROMETHEUS_POINT_LIMIT
    # one query over that range is refused by Prometheus itself: chunking is needed
    raw = requests.get(
        f"{prom.url}/api/v1/query_range",
        params={"query": prom.query, "start": str(start.timestamp()), "end": str(end.timestamp()), "step": "60"},
        timeout=30,
    )
    assert raw.status_code == 400 and "11,000 points" in raw.json()["error"]

    spans: list[float] = []
    src = source(prom.url)
    real = src.client.custom_query_range

    def spy(query: str, start_time: Any, end_time: Any, step: str, params: Any = None) -> Any:
        spans.append((end_time - start_time).total_seconds() / float(step) + 1)
        return real(query, start_time=start_time, end_time=end_time, step=step, params=params)

    monkeypatch.setattr(src.client, "custom_query_range", spy)
    series = src.fetch(prom.query, start, end, 60)
    assert len(spans) == 2 and max(spans) <= PROMETHEUS_POINT_LIMIT
    assert len(series) == points  # contiguous …
    assert np.all(np.diff(series.t) == 60.0)  # … one sample per step, chunk edges not doubled
    np.testing.assert_allclose(series.rps, expected_rate(prom, series.t), rtol=0, atol=1e-9)

    small = PrometheusSource(src.settings, max_points=1000).fetch(prom.query, start, end, 60)
    assert np.array_equal(small.t, series.t) and np.array_equal(small.rps, series.rps)

    # the limit is on steps: our largest chunk, 11,000 points (10,999 steps), is one query Prometheus answers
    spans.clear()
    edge = src.fetch(prom.query, end - timedelta(minutes=PROMETHEUS_POINT_LIMIT - 1), end, 60)
    assert spans == [PROMETHEUS_POINT_LIMIT] and len(edge) == PROMETHEUS_POINT_LIMIT


def test_time_range_outside_the_data_is_unavailable(prometheus_nasa: PrometheusWithTrace) -> None:
    start = prometheus_nasa.at(0) - timedelta(days=30)
    with pytest.raises(MetricsUnavailable, match="no data between"):
        source(prometheus_nasa.url).fetch(prometheus_nasa.query, start, start + timedelta(hours=1), 60)


def test_unknown_metric_is_unavailable(prometheus_nasa: PrometheusWithTrace) -> None:
    end = prometheus_nasa.at(500)
    with pytest.raises(MetricsUnavailable, match=r"no data .*unknown metric"):
        source(prometheus_nasa.url).fetch("sum(rate(no_such_metric_total[5m]))", end - timedelta(hours=1), end, 60)


def test_syntax_error_names_prometheus_error(prometheus_nasa: PrometheusWithTrace) -> None:
    end = prometheus_nasa.at(500)
    with pytest.raises(MetricsUnavailable) as err:
        source(prometheus_nasa.url).fetch("sum(rate(http_requests_total[5m]", end - timedelta(hours=1), end, 60)
    message = str(err.value)
    assert "rejected the query (HTTP 400, bad_data" in message and "parse error" in message
    assert "\n" not in message


def test_several_series_ask_for_sum(prometheus_nasa: PrometheusWithTrace) -> None:
    end = prometheus_nasa.at(500)
    query = 'rate(http_requests_total{pool="nasa"}[5m])'
    with pytest.raises(MetricsUnavailable, match=r"returned 2 series .*code=\"200\".*wrap the query in sum"):
        source(prometheus_nasa.url).fetch(query, end - timedelta(hours=1), end, 60)


def test_only_nan_is_unavailable(prometheus_nasa: PrometheusWithTrace) -> None:
    end = prometheus_nasa.at(500)
    with pytest.raises(MetricsUnavailable, match="only NaN/Inf"):
        source(prometheus_nasa.url).fetch(f"{prometheus_nasa.query} * 0 / 0", end - timedelta(hours=1), end, 60)


def test_some_inf_samples_are_dropped_and_the_rest_kept(prometheus_nasa: PrometheusWithTrace) -> None:
    prom = prometheus_nasa
    end = prom.at(2000)
    # rate / (rate > bool 1): the rate where it is above 1 req/s, +Inf (x / 0) elsewhere
    query = f"{prom.query} / ({prom.query} > bool 1)"
    full = source(prom.url).fetch(prom.query, end - timedelta(hours=6), end, 60)
    above = full.rps > 1
    assert 0 < above.sum() < len(full)  # the window really mixes both cases
    kept = source(prom.url).fetch(query, end - timedelta(hours=6), end, 60)
    assert np.array_equal(kept.t, full.t[above])
    np.testing.assert_allclose(kept.rps, full.rps[above], rtol=1e-12)


def test_prometheus_down_is_unavailable() -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        end = STUB_END
        with pytest.raises(MetricsUnavailable, match=r"cannot connect to Prometheus at .*: connection refused"):
            source(url).fetch(NASA_QUERY, end - timedelta(hours=1), end, 60)


def test_timeout_is_unavailable() -> None:
    with socket.socket() as sock:  # listening but never answering: the read times out
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        end = STUB_END
        with pytest.raises(MetricsUnavailable, match=r"did not answer within 0.3s"):
            source(url, timeout="300ms").fetch(NASA_QUERY, end - timedelta(hours=1), end, 60)


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's (status, body) and records the request headers."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.seen.append(dict(self.headers))
        status, body = server.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.seen = []
    server.answer = (200, "{}")
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": []}]}}


def test_headers_come_from_env(stub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_AUTH_TEST", "Bearer s3cret")
    body = {**MATRIX, "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1200, "2.5"]]}]}}
    stub.answer = (200, json.dumps(body))
    src = source(stub.url, headers_env={"Authorization": "PROM_AUTH_TEST"})
    end = datetime(1970, 1, 1, 0, 20, tzinfo=UTC)
    series = src.fetch("up", end - timedelta(minutes=10), end, 60)
    assert series.rps.tolist() == [2.5] and series.t.tolist() == [1200.0]
    assert stub.seen[0]["Authorization"] == "Bearer s3cret"


def test_auth_refusal_names_the_missing_env_var(stub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROM_AUTH_UNSET", raising=False)
    stub.answer = (401, "Unauthorized")
    end = STUB_END
    src = source(stub.url, headers_env={"Authorization": "PROM_AUTH_UNSET"})
    with pytest.raises(MetricsUnavailable, match=r"refused access \(HTTP 401\).*\$PROM_AUTH_UNSET not set"):
        src.fetch("up", end - timedelta(hours=1), end, 60)


def test_a_page_that_is_not_prometheus_is_unavailable(stub: Any) -> None:
    stub.answer = (200, "<html>login</html>")
    end = STUB_END
    with pytest.raises(MetricsUnavailable, match="did not answer like Prometheus"):
        source(stub.url).fetch("up", end - timedelta(hours=1), end, 60)


def test_server_error_is_unavailable(stub: Any) -> None:
    stub.answer = (503, json.dumps({"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}))
    end = STUB_END
    with pytest.raises(MetricsUnavailable, match=r"answered HTTP 503 \(unavailable: TSDB not ready\)"):
        source(stub.url).fetch("up", end - timedelta(hours=1), end, 60)


@pytest.fixture
def tls_stub(stub: Any, tmp_path: Path) -> Any:
    """The stub behind HTTPS with a fresh self-signed certificate for 127.0.0.1 (``stub.ca`` is its file)."""
    if shutil.which("openssl") is None:
        from tests.conftest import require_service

        require_service("openssl", "needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    stub.socket = context.wrap_socket(stub.socket, server_side=True)
    stub.url = stub.url.replace("http://", "https://")
    stub.ca = cert
    body = {**MATRIX, "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1200, "4"]]}]}}
    stub.answer = (200, json.dumps(body))
    return stub


TLS_END = datetime(1970, 1, 1, 0, 20, tzinfo=UTC)


def test_tls_certificate_is_verified_by_default(tls_stub: Any) -> None:
    with pytest.raises(MetricsUnavailable, match=r"certificate verify failed \(set prometheus.ca_cert"):
        source(tls_stub.url).fetch("up", TLS_END - timedelta(minutes=10), TLS_END, 60)


def test_tls_with_the_ca_bundle_works(tls_stub: Any) -> None:
    series = source(tls_stub.url, ca_cert=str(tls_stub.ca)).fetch("up", TLS_END - timedelta(minutes=10), TLS_END, 60)
    assert series.rps.tolist() == [4.0]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_turned_off(tls_stub: Any) -> None:
    series = source(tls_stub.url, verify_tls=False).fetch("up", TLS_END - timedelta(minutes=10), TLS_END, 60)
    assert series.rps.tolist() == [4.0]


def test_incremental_history_equals_a_whole_read_with_one_query_a_tick(prometheus_nasa: PrometheusWithTrace) -> None:
    """The daemon's incremental reads (sources/incremental.py) against the real server: every tick's answer is the
    one a whole read gives, with one range query per tick after the first (which needs three chunks)."""
    from autoscaler.sources.incremental import IncrementalSource

    prom = prometheus_nasa
    inner = source(prom.url)
    queries: list[tuple[float, float]] = []
    original = inner.client.custom_query_range

    def counted(query: str, start_time: datetime, end_time: datetime, **kw: Any) -> Any:
        queries.append((start_time.timestamp(), end_time.timestamp()))
        return original(query, start_time=start_time, end_time=end_time, **kw)

    inner.client.custom_query_range = counted  # type: ignore[method-assign]
    incremental = IncrementalSource(inner, max_gap_s=3600)
    whole = source(prom.url)
    window = timedelta(days=14)
    for k in range(4):
        end = prom.at(6000) + timedelta(minutes=20 * k)
        before = len(queries)
        got = incremental.fetch(prom.query, end - window, end, 60)
        expected = whole.fetch(prom.query, end - window, end, 60)
        np.testing.assert_array_equal(got.t, expected.t)
        np.testing.assert_array_equal(got.rps, expected.rps)
        assert len(queries) - before == (2 if k == 0 else 1)  # 20,161 points: two chunks, then one query
