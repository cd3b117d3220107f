"""MetricsSource backed by a real Prometheus (prometheus-api-client ``custom_query_range``).

A pool's query must give **one** series in req/s (wrap it in ``sum(...)``). Long windows are split into
chunks below Prometheus's 11,000-points-per-series limit and stitched back together. Every failure
becomes ``MetricsUnavailable`` with a one-line cause: the tick then holds that pool (never shrinks blind).
"""

from __future__ import annotations

import ast
import contextvars
import itertools
import json
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from autoscaler.boundedhttp import BoundedAdapter, CallDeadlineExceeded, ResponseTooLarge
from autoscaler.core.errors import MetricsUnavailable, NoSamples
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PrometheusSettings
from autoscaler.core.text import redact_url, redact_urls
from autoscaler.sources.range_answer import decode_fast

log = logging.getLogger("forescale.prometheus")

PROMETHEUS_POINT_LIMIT = 11_000  # Prometheus rejects a range query with more points per series than this
# Our chunk: at most this many points (max_points - 1 steps). Prometheus refuses a query over 11,000 *steps*
# (web/api/v1/api.go: `end.Sub(start)/step > 11000`), so 11,000 points is inside its limit, and a 14-day window at
# the 1-minute step (20,161 points) is two queries, not three: a cold tick over 1000 pools sends 1000 fewer.
DEFAULT_MAX_POINTS = PROMETHEUS_POINT_LIMIT
MAX_PARALLEL_CHUNKS = 4
_STATUS_RE = re.compile(r"^HTTP Status Code (\d+) \((b['\"].*['\"])\)$", re.DOTALL)


class PrometheusSource:
    """Range-queries a pool's PromQL over the predictor's window; any failure is MetricsUnavailable."""

    def __init__(
        self, settings: PrometheusSettings, *, max_points: int = DEFAULT_MAX_POINTS, connect_retries: int = 1
    ) -> None:
        if not 2 <= max_points <= PROMETHEUS_POINT_LIMIT:
            raise ValueError(f"max_points must be within 2..{PROMETHEUS_POINT_LIMIT}")
        self.settings = settings
        self.step_s = settings.step.total_seconds()  # the resolution the tick queries at (prometheus.step)
        self.url = settings.url.rstrip("/")
        self.shown_url = redact_url(self.url)  # for messages: never the URL's credentials
        self.max_points = max_points
        self.timeout_s = settings.timeout.total_seconds()
        # Retry only failures to connect, once and quickly: a tick must not stall on a dead Prometheus
        # (the client's default retries 3x with 1s-based backoff), and a query that timed out is not retried.
        retry = Retry(total=connect_retries, connect=connect_retries, read=False, status=0, backoff_factor=0.2)
        session = requests.Session()
        session.verify = (str(settings.ca_cert) if settings.ca_cert else True) if settings.verify_tls else False
        # Uncompressed answers: gzip costs Prometheus and us ~10 ms per 10,000-point chunk, more than moving
        # the ~200 kB over any LAN; a tick reads a few MB every 20 minutes, so bandwidth does not matter.
        session.headers["Accept-Encoding"] = "identity"
        session.hooks["response"].append(decode_fast)  # answers decoded straight to arrays (range_answer.py)
        self.client = PrometheusConnect(
            url=self.url, headers=settings.headers() or None, retry=retry, session=session, timeout=self.timeout_s
        )
        # Replaces the client's adapter: the same connect retry, plus a total deadline per query (never past the
        # tick's) and a cap on the answer's size (a dripping or 200 MB answer is cut off, not waited for or held).
        bounded = BoundedAdapter(
            self.timeout_s,
            int(settings.max_response_size),
            what=f"Prometheus at {self.shown_url}",
            max_retries=retry,
            max_in_flight=settings.max_in_flight,  # the tick's pools share this many queries at once
        )
        session.mount(self.url, bounded)

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        """Samples of ``query`` on the step grid within [start, end], NaN/Inf dropped, oldest first."""
        step = max(1, round(step_s))  # whole seconds: chunk edges then land exactly on the same grid
        first = math.ceil(start.timestamp() / step) * step
        last = math.floor(end.timestamp() / step) * step
        if last < first:
            raise MetricsUnavailable(f"empty time range {start:%F %H:%M:%S} – {end:%F %H:%M:%S}")
        steps = (last - first) // step
        n_chunks = max(1, math.ceil(steps / (self.max_points - 1)))  # each chunk: at most max_points points
        per_chunk = math.ceil(steps / n_chunks) * step
        edges = [min(first + i * per_chunk, last) for i in range(n_chunks + 1)]
        spans = list(itertools.pairwise(edges))  # neighbours share their edge sample
        if len(spans) == 1:
            parts = [self._query_chunk(query, first, last, step)]
        else:  # Prometheus evaluates chunks on several cores: ask for them at once (under the tick's deadline)
            with ThreadPoolExecutor(max_workers=min(len(spans), MAX_PARALLEL_CHUNKS)) as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self._query_chunk, query, a, b, step) for a, b in spans
                ]
                parts = [f.result() for f in futures]
        times = [t for t, _ in parts]
        values = [v for _, v in parts]
        t_all, idx = np.unique(np.concatenate(times), return_index=True)  # sorted, first occurrence kept
        v_all = np.concatenate(values)[idx]
        if len(t_all) == 0:
            raise NoSamples(
                f"query returned no data between {_fmt(first)} and {_fmt(last)} "
                "(unknown metric or label, or nothing recorded yet)"
            )
        finite = np.isfinite(v_all)
        if not finite.any():
            raise NoSamples(
                f"query returned only NaN/Inf values ({len(v_all)} samples; a division by zero?) — "
                "make it return a request rate in req/s"
            )
        if not finite.all():
            log.debug("dropped %d NaN/Inf samples of %r", int((~finite).sum()), query)
        return RateSeries(t_all[finite], v_all[finite], float(step))

    def _query_chunk(
        self, query: str, a: int, b: int, step: int
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
        try:
            result = self.client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(a, UTC),
                end_time=datetime.fromtimestamp(b, UTC),
                step=str(step),
                params={"timeout": f"{self.timeout_s:g}"},  # seconds; Prometheus stops evaluating after this too
            )
        except PrometheusApiClientException as exc:
            raise MetricsUnavailable(self._http_error(str(exc))) from None
        except CallDeadlineExceeded as exc:
            if exc.by_tick:
                raise MetricsUnavailable(str(exc)) from None
            raise MetricsUnavailable(
                f"Prometheus at {self.shown_url} did not answer within {self.timeout_s:g}s (prometheus.timeout: "
                "connect, headers and body in total)"
            ) from None
        except ResponseTooLarge as exc:
            raise MetricsUnavailable(f"{exc} (prometheus.max_response_size)") from None
        except requests.exceptions.Timeout:
            raise MetricsUnavailable(
                f"Prometheus at {self.shown_url} did not answer within {self.timeout_s:g}s"
            ) from None
        except requests.exceptions.SSLError as exc:
            raise MetricsUnavailable(f"TLS error talking to {self.shown_url}: {_tls_cause(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            raise MetricsUnavailable(
                f"cannot connect to Prometheus at {self.shown_url}: {_connection_cause(exc)}"
            ) from None
        except (ValueError, KeyError, TypeError):  # 200 but not Prometheus JSON (wrong URL, a proxy's page)
            raise MetricsUnavailable(
                f"{self.shown_url} did not answer like Prometheus (is prometheus.url the server's base URL?)"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise MetricsUnavailable(
                f"request to Prometheus at {self.shown_url} failed: {_one_line(str(exc))}"
            ) from None
        if not isinstance(result, list):
            raise MetricsUnavailable(
                f"{self.shown_url} did not answer like Prometheus (no result list; is prometheus.url the server's "
                "base URL?)"
            )
        if result and not all(isinstance(r, dict) for r in result):
            raise MetricsUnavailable(
                "Prometheus answered a scalar or string result, not a series over time: make the query return one "
                "series of the request rate, e.g. sum(rate(http_requests_total[5m]))"
            )
        if result and "values" not in result[0]:
            raise MetricsUnavailable(
                "Prometheus answered an instant vector (no samples over time) to a range query: check the query "
                "and prometheus.url (a proxy in between?)"
            )
        if len(result) > 1:
            labels = "; ".join(_labels(r.get("metric", {})) for r in result[:3])
            raise MetricsUnavailable(
                f"query returned {len(result)} series ({labels}{' …' if len(result) > 3 else ''}); "
                "forescale needs one req/s series: wrap the query in sum(...)"
            )
        if not result:
            empty = np.empty(0, dtype=np.float64)
            return empty, empty
        pairs = result[0].get("values", [])
        if isinstance(pairs, np.ndarray):  # decoded straight to floats (range_answer.py): one (n, 2) array
            return pairs[:, 0], pairs[:, 1]
        if not isinstance(pairs, list):
            raise MetricsUnavailable("query result has samples that are not numbers")
        try:
            t = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
            v = np.fromiter((float(p[1]) for p in pairs), dtype=np.float64, count=len(pairs))
        except (TypeError, ValueError, IndexError):
            raise MetricsUnavailable("query result has samples that are not numbers") from None
        return t, v

    def _http_error(self, text: str) -> str:
        """'HTTP Status Code 400 (b'{"error": …}')' from the client → Prometheus's own error, one line."""
        match = _STATUS_RE.match(text)
        if not match:
            return f"Prometheus error: {_one_line(text)}"
        status = int(match.group(1))
        try:
            body_bytes = ast.literal_eval(match.group(2))
            body = body_bytes.decode("utf-8", errors="replace") if isinstance(body_bytes, bytes) else str(body_bytes)
        except (ValueError, SyntaxError):
            body = match.group(2)
        try:
            payload = json.loads(body)
            detail = f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"
        except (ValueError, AttributeError):
            detail = body.strip()[:200] or "(empty body)"
        if status in (401, 403):
            missing = [f"${v}" for v in self.settings.headers_env.values() if v not in self.settings.headers()]
            hint = f"; env var(s) {', '.join(missing)} not set" if missing else ""
            return f"Prometheus at {self.shown_url} refused access (HTTP {status}): check prometheus.headers_env{hint}"
        if status in (400, 422):
            return f"Prometheus rejected the query (HTTP {status}, {_one_line(detail)})"
        return f"Prometheus at {self.shown_url} answered HTTP {status} ({_one_line(detail)})"


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _labels(metric: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _one_line(text: str, limit: int = 300) -> str:
    text = redact_urls(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _connection_cause(exc: BaseException) -> str:
    text = str(exc)
    for needle, cause in (
        ("Connection refused", "connection refused (is Prometheus running, is prometheus.url right?)"),
        ("Name or service not known", "unknown host name"),
        ("nodename nor servname", "unknown host name"),
        ("Temporary failure in name resolution", "DNS lookup failed"),
        ("Network is unreachable", "network unreachable"),
        ("Connection reset", "connection reset by peer"),
        ("RemoteDisconnected", "the server closed the connection without answering"),
    ):
        if needle in text:
            return cause
    return _one_line(text, 200)


def _tls_cause(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "certificate verify failed (set prometheus.ca_cert to the CA bundle that signed it)"
    return _one_line(text, 200)
