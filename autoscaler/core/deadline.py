"""Deadlines: a point on the monotonic clock by which work must be done.

A tick runs ``within(Deadline(...))``; every external call made inside it (``boundedhttp``) gets at most the
time left, retry loops stop when it is gone, and the daemon ``shorten``s it on SIGTERM so a running tick
winds down within the stop grace. The deadline travels in a ``ContextVar``: code that fans out to threads
copies the context (``contextvars.copy_context``) so the threads see it too.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class Deadline:
    """``seconds`` from now on ``monotonic`` (None: never); ``shorten`` only ever brings it closer."""

    def __init__(
        self, seconds: float | None, monotonic: Callable[[], float] = time.monotonic, what: str = "the tick deadline"
    ) -> None:
        self.monotonic = monotonic
        self.seconds = seconds
        self._at = math.inf if seconds is None else monotonic() + seconds
        self._lock = threading.Lock()
        self.reason = what if seconds is None else f"{what} ({seconds:g}s)"  # "… passed before …"

    @property
    def at(self) -> float:
        return self._at

    def remaining(self) -> float:
        return self._at - self.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def shorten(self, seconds: float, reason: str) -> None:
        """Bring the deadline to at most ``seconds`` from now (e.g. the stop grace on SIGTERM)."""
        with self._lock:
            at = self.monotonic() + seconds
            if at < self._at:
                self._at = at
                self.reason = reason


_CURRENT: ContextVar[Deadline | None] = ContextVar("forescale_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the work in progress (a tick), if any."""
    return _CURRENT.get()


@contextmanager
def within(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Run the block under ``deadline`` (external calls inside it never outlive it)."""
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def budget(seconds: float) -> float:
    """``seconds``, or less if the current deadline comes sooner (≤ 0: no time left)."""
    deadline = current()
    return seconds if deadline is None else min(seconds, deadline.remaining())
