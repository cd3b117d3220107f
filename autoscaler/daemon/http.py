"""The daemon's loopback HTTP server: ``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from autoscaler.core.errors import StartupError
from autoscaler.core.text import redact


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
                    text = redact(json.dumps(detail))  # error texts may name a URL: never its credentials
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


def listen_error(exc: OSError, host: str, port: int, source: str) -> StartupError:
    """The one-line start-up error for a listen socket that cannot be opened (names daemon.listen_port)."""
    where = f" in {source}" if source else ""
    if exc.errno == errno.EADDRINUSE:
        why = f"{host}:{port} is already in use (another `forescale run`, or another service)"
        fix = "stop that process, or set daemon.listen_port to a free port (0 picks one)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = f"no permission to listen on {host}:{port}"
        fix = "use a port above 1023 in daemon.listen_port"
    else:
        why = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        fix = "check daemon.listen_host and daemon.listen_port"
    return StartupError(f"daemon.listen_port{where}: {why}; {fix}")
