"""Hostile HTTP servers on 127.0.0.1 for the fault suite (tests/*/faults/).

``HostileServer`` answers every request with whatever ``respond(request)`` returns: any status, headers
and body, a body streamed from a generator (hundreds of MB), no ``Content-Length`` (the body ends when the
connection closes), or the whole answer — status line included — **dripped** one byte every ``drip_s``.
``prometheus_matrix`` builds a Prometheus range-query answer from a function of time, so a test can serve
negative, NaN, absurd or spiking request rates, other result types, or a broken document.

Everything is bounded: a drip or a stream stops after ``max_s`` (default 60 s) and ``stop()`` ends every
open answer at once, so a test (or a forescale that does not give up) never hangs the suite.
"""

from __future__ import annotations

import json
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_S = 60.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What to send. ``body``: bytes, str, a JSON-able object, or an iterable of byte chunks (streamed)."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    drip_s: float | None = None  # send the whole raw answer one byte at a time, this far apart
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    hang: bool = False  # accept and read the request, then send nothing (until max_s or stop())
    delay_s: float = 0.0  # wait this long, then answer at once (a slow server, not a broken one)


class HostileServer:
    """A threaded HTTP server; ``requests`` records what arrived (path, query, headers, body)."""

    def __init__(
        self, respond: Callable[[Request], Answer], *, max_s: float = MAX_S, tls: tuple[str, str] | None = None
    ) -> None:
        self.respond = respond
        self.tls = tls  # (certfile, keyfile): serve HTTPS
        self.max_s = max_s
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> HostileServer:
        outer = self

        class Handler(_Handler):
            server_ref = outer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_ref: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        outer = self.server_ref
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if method == "POST" and self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            query.update({k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()})
        req = Request(method, split.path, query, dict(self.headers.items()), raw)
        with outer._lock:
            outer.requests.append(req)
        answer = outer.respond(req)
        deadline = time.monotonic() + outer.max_s
        self.close_connection = True
        try:
            if answer.hang:
                outer.stopping.wait(outer.max_s)
                return
            if answer.delay_s and outer.stopping.wait(min(answer.delay_s, outer.max_s)):
                return
            chunks = _chunks(answer.body)
            head = [f"HTTP/1.1 {answer.status} {_reason(answer.status)}", f"Content-Type: {answer.content_type}"]
            head += [f"{k}: {v}" for k, v in answer.headers.items()]
            if answer.content_length:
                body = b"".join(chunks)
                chunks = iter([body])
                head.append(f"Content-Length: {len(body)}")
            head.append("Connection: close")
            head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
            if answer.drip_s is not None:
                for byte in _bytes(head_bytes, chunks):
                    if outer.stopping.wait(answer.drip_s) or time.monotonic() > deadline:
                        return
                    self.wfile.write(byte)
                    self.wfile.flush()
                return
            self.wfile.write(head_bytes)
            for chunk in chunks:
                if outer.stopping.is_set() or time.monotonic() > deadline:
                    return
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


def _chunks(body: Any) -> Iterator[bytes]:
    if isinstance(body, bytes):
        return iter([body])
    if isinstance(body, str):
        return iter([body.encode("utf-8")])
    if isinstance(body, Iterator):
        return body
    return iter([json.dumps(body).encode("utf-8")])


def _bytes(head: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in (head, *chunks):
        for i in range(len(chunk)):
            yield chunk[i : i + 1]


def _reason(status: int) -> str:
    return {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}.get(
        status, "Status"
    )


# --------------------------------------------------------------------------------------------- Prometheus


def prometheus_matrix(
    req: Request, value: Callable[[float, float], float | str], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A ``query_range`` answer: one series with ``value(t, end)`` at every step of the request's range.

    ``end`` is the requested range's end, i.e. the latest sample of a one-chunk query (trend_lr's 30 minutes),
    so a test can make only the latest samples odd (``t == end``, ``t >= end - step``)."""
    start, end = float(req.query["start"]), float(req.query["end"])
    step = float(req.query["step"])
    values = []
    n = int((end - start) // step)
    for i in range(n + 1):
        t = start + i * step
        v = value(t, end)
        values.append([t, v if isinstance(v, str) else _prom_number(v)])
    return {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": labels or {}, "values": values}]},
    }


def _prom_number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def prometheus_error(error: str, error_type: str = "bad_data", status: int = 400) -> Answer:
    return Answer(status, {"status": "error", "errorType": error_type, "error": error})


def huge_prometheus_body(total_bytes: int) -> Iterator[bytes]:
    """A valid-looking matrix answer of about ``total_bytes`` (streamed, never held in memory at once)."""
    yield b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":['
    point = b'[1700000000,"1.000000000000000000000000000000"],'
    block = point * 16384
    sent = 0
    while sent < total_bytes:
        yield block
        sent += len(block)
    yield b'[1700000000,"1"]]}]}}'


class PrometheusScript:
    """A hostile Prometheus: ``answer`` decides each range query (default: the series ``value(t, end)``)."""

    def __init__(self, value: Callable[[float, float], float | str] = lambda _t, _end: 100.0) -> None:
        self.value = value
        self.answer: Callable[[Request], Answer] | None = None

    def __call__(self, req: Request) -> Answer:
        if self.answer is not None:
            return self.answer(req)
        if req.path.endswith("/api/v1/query_range"):
            return Answer(200, prometheus_matrix(req, self.value))
        return Answer(404, "404 page not found", content_type="text/plain")
