"""HTTP calls that cannot be stretched or inflated: a total deadline per call and a cap on the answer's size.

requests' ``timeout`` bounds each socket operation, not the call: a server that drips one byte every two
seconds keeps a 10-second timeout happy forever. ``BoundedAdapter`` (mounted on the requests sessions of the
Nomad client and the Prometheus source) gives every call a **total** deadline — ``total_s``, or less when the
current tick's deadline (``autoscaler.core.deadline``) comes sooner — enforced by a watchdog that shuts the
call's socket down when time is up (status line, headers and body alike), and reads the body itself, refusing
answers larger than ``max_bytes`` (declared by Content-Length or streamed) before they fill the memory.

Both failures are requests exceptions (``CallDeadlineExceeded`` is a ``Timeout``), so every client that wraps
requests (python-nomad, prometheus-api-client) reports them through its usual error path.

``max_in_flight`` bounds how many calls made *under a tick deadline* (the tick's and the guard's work, whose
pools run on several threads) are on the wire at once; a call waits for a free slot at most until the tick's
deadline (then it is not sent: ``CallDeadlineExceeded`` with ``by_tick``). Calls outside a tick — the leader
lock's renewals, the override store's blocking watch, CLI commands — are never queued behind tick work. The
adapter's connection pool keeps as many connections as the limit, so no call opens a throw-away connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from autoscaler.core import deadline as deadlines

CHUNK = 64 * 1024


class CallDeadlineExceeded(requests.exceptions.Timeout):
    """No complete answer within the call's total deadline (or the tick's, whichever came first: ``by_tick``)."""

    by_tick = False


class ResponseTooLarge(requests.exceptions.RequestException):
    """The answer is larger than the configured cap."""


class _Call:
    """One request in flight: its connections (for the watchdog) and its deadline."""

    def __init__(self, limit_s: float, monotonic: Callable[[], float], ambient: deadlines.Deadline | None) -> None:
        self.monotonic = monotonic
        self.until = monotonic() + limit_s
        self.ambient = ambient
        self.conns: list[HTTPConnection] = []
        self.done = threading.Event()
        self.aborted = False

    def left(self) -> float:
        left = self.until - self.monotonic()
        return left if self.ambient is None else min(left, self.ambient.remaining())

    def watch(self) -> None:
        while not self.done.wait(max(0.0, min(self.left(), 0.25))):
            if self.left() <= 0:
                self.abort()
                return

    def abort(self) -> None:
        self.aborted = True
        for conn in list(self.conns):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes a blocked read, TLS or not


_ACTIVE: ContextVar[_Call | None] = ContextVar("forescale_http_call", default=None)


def _track(conn: HTTPConnection) -> None:
    call = _ACTIVE.get()
    if call is not None and conn not in call.conns:
        call.conns.append(conn)


class _TrackedHTTPConnection(HTTPConnection):
    """Registers itself with the running call (if any) on connect and on every request on a kept-alive socket."""

    def connect(self) -> None:
        _track(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _track(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(_TrackedHTTPConnection, HTTPSConnection):
    """HTTPS: the same tracking (HTTPSConnection subclasses HTTPConnection, so the MRO runs TLS's connect)."""


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class BoundedAdapter(HTTPAdapter):
    """A requests adapter with a total deadline per call and a cap on the answer's size (see the module doc)."""

    def __init__(
        self,
        total_s: float,
        max_bytes: int,
        *,
        what: str = "the server",
        max_retries: Any = 0,
        monotonic: Callable[[], float] = time.monotonic,
        max_in_flight: int | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.total_s = total_s
        self.max_bytes = max_bytes
        self.what = what
        self.monotonic = monotonic
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight is not None else None
        pool = max(max_in_flight or 0, 10)  # requests' default pool size is 10
        super().__init__(max_retries=max_retries, pool_connections=pool, pool_maxsize=pool)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        ambient = deadlines.current()
        slot = self._slot(ambient)
        try:
            return self._send(request, ambient, timeout, verify, cert, proxies)
        finally:
            if slot:
                assert self._slots is not None
                self._slots.release()

    def _slot(self, ambient: deadlines.Deadline | None) -> bool:
        """Wait for an in-flight slot (tick work only), at most until the tick's deadline; True when one is held."""
        if self._slots is None or ambient is None:
            return False
        while not self._slots.acquire(timeout=max(0.0, min(ambient.remaining(), 0.25))):
            if ambient.remaining() <= 0:
                late = CallDeadlineExceeded(
                    f"{ambient.reason} passed while waiting for one of {self.max_in_flight} request slots to "
                    f"{self.what}: not sent"
                )
                late.by_tick = True
                raise late
        return True

    def _send(
        self,
        request: requests.PreparedRequest,
        ambient: deadlines.Deadline | None,
        timeout: Any,
        verify: bool | str,
        cert: Any,
        proxies: Mapping[str, str] | None,
    ) -> requests.Response:
        limit = self.total_s if ambient is None else min(self.total_s, ambient.remaining())
        if limit <= 0:
            late = CallDeadlineExceeded(f"{ambient.reason if ambient else 'the deadline'} has passed: not sent")
            late.by_tick = True
            raise late
        call = _Call(limit, self.monotonic, ambient)
        token = _ACTIVE.set(call)
        watchdog = threading.Thread(target=call.watch, name="forescale-http-deadline", daemon=True)
        watchdog.start()
        try:
            response = super().send(
                request, stream=True, timeout=_per_operation(timeout, limit), verify=verify, cert=cert, proxies=proxies
            )
            self._read_body(response)
            return response
        except requests.exceptions.RequestException as exc:
            if call.aborted and not isinstance(exc, ResponseTooLarge):
                raise self._late(limit, ambient, request) from None
            raise
        except Exception:
            if call.aborted:
                raise self._late(limit, ambient, request) from None
            raise
        finally:
            call.done.set()
            _ACTIVE.reset(token)

    def _late(
        self, limit: float, ambient: deadlines.Deadline | None, request: requests.PreparedRequest
    ) -> CallDeadlineExceeded:
        if ambient is not None and ambient.remaining() <= 0 and limit < self.total_s:
            late = CallDeadlineExceeded(
                f"no complete answer from {self.what} before {ambient.reason} passed", request=request
            )
            late.by_tick = True
            return late
        return CallDeadlineExceeded(
            f"no complete answer from {self.what} within {limit:g}s (a total deadline: connect, headers and body)",
            request=request,
        )

    def _read_body(self, response: requests.Response) -> None:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ResponseTooLarge(self._too_large(int(declared)), response=response)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.raw.stream(CHUNK, decode_content=True):
            size += len(chunk)
            if size > self.max_bytes:
                response.close()
                raise ResponseTooLarge(self._too_large(None), response=response)
            chunks.append(chunk)
        response._content = b"".join(chunks)
        response._content_consumed = True  # type: ignore[attr-defined]
        response.raw.release_conn()

    def _too_large(self, declared: int | None) -> str:
        size = f"{declared / 2**20:.0f} MiB" if declared is not None else f"more than {self.max_bytes / 2**20:g} MiB"
        return f"the answer from {self.what} is too large ({size}; the limit is {self.max_bytes / 2**20:g} MiB)"


def _per_operation(timeout: Any, limit: float) -> tuple[float, float]:
    """requests' (connect, read) timeouts, each no longer than the call's whole deadline."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    connect = limit if connect is None else min(float(connect), limit)
    read = limit if read is None else min(float(read), limit)
    return max(connect, 0.001), max(read, 0.001)


def mount(
    session: requests.Session, adapter: BoundedAdapter, prefixes: tuple[str, ...] = ("http://", "https://")
) -> None:
    """Mount ``adapter`` on ``session`` for ``prefixes`` (the longest matching prefix wins in requests)."""
    for prefix in prefixes:
        session.mount(prefix, adapter)
