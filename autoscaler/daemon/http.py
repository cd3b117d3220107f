"""The daemon's loopback HTTP server: ``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from autoscaler.core.text import redact_urls


class StatusServer:
    """Serves metrics and health on ``host:port`` in a daemon thread (port 0 picks a free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        registries: list[CollectorRegistry],
        health: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body = b"".join(generate_latest(r) for r in outer.registries)
                    self._send(200, CONTENT_TYPE_LATEST, body)
                elif self.path.split("?")[0] == "/healthz":
                    ok, detail = outer.health()
                    text = redact_urls(json.dumps(detail))  # error texts may name a URL: never its credentials
                    self._send(200 if ok else 503, "application/json", text.encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep scrapes out of the logs
                return

        self.registries = registries
        self.health = health
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="forescale-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
