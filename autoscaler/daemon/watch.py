"""Overrides act now: the daemon watches the override store and ticks the pools whose overrides changed.

How a change is noticed depends on the store (``OverrideStore.version``): the file store is a cheap ``stat``
polled every ``daemon.override_poll`` (2 s by default; an atomic rename changes the inode and mtime), the Nomad
Variables store is a blocking query that returns as soon as a variable under the prefix changes. Either way the
watcher then reads the store and compares what is *in force* per pool (id, kind, value, expiry of each active,
unexpired override), so the daemon's own bookkeeping (moving an expired override to history) never triggers a
tick, and a change to one pool never ticks the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any

from autoscaler.core.errors import OverrideError
from autoscaler.core.ports import Clock, OverrideStore
from overrides.manual import PoolRecords

log = logging.getLogger("forescale.daemon")

InForce = tuple[tuple[str, str, int, str], ...]
ERROR_BACKOFF_S = 10.0


class OverrideWatcher:
    """Turns store changes into ``on_change(pools)`` calls. ``check`` is one step (tests call it directly);
    ``run`` loops until the stop event is set."""

    def __init__(
        self,
        store: OverrideStore[PoolRecords],
        pools: Sequence[str],
        clock: Clock,
        *,
        poll_s: float = 2.0,
        wait_s: float = 60.0,
        on_change: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.store = store
        self.pools = list(pools)
        self.clock = clock
        self.poll_s = poll_s
        self.wait_s = wait_s
        self.on_change = on_change
        self.blocking = bool(getattr(store, "blocking_version", False))
        self.last_change: datetime | None = None
        self.last_change_pools: list[str] = []
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._token: Hashable | None = None
        self._in_force: dict[str, InForce] = {}
        self._records: dict[str, PoolRecords] = {}
        self.prime()

    def prime(self) -> None:
        """Take the current state as the reference (no change reported for it)."""
        try:
            self._token = self.store.version()
            self._snapshot(self.clock.now())
        except OverrideError as exc:
            self.last_error = str(exc)
            log.warning("override watch: %s (retrying)", exc)

    def check(self, wait_s: float = 0.0) -> list[str]:
        """Has the store changed since the last check? Returns (and reports) the pools whose overrides in force
        changed. ``wait_s`` lets a store with blocking reads (Nomad) wait that long for a change."""
        token = self.store.version(self._token, wait_s)
        if token is not None and token == self._token:
            return []
        now = self.clock.now()
        with self._lock:  # what the previous read puts in force *now* (time alone ends overrides: not a change)
            before = {p: _in_force(r, now) for p, r in self._records.items()}
        self._snapshot(now)
        self._token = token
        changed = [p for p in self.pools if self._in_force.get(p, ()) != before.get(p, ())]
        self.last_error = None
        if changed:
            with self._lock:
                self.last_change, self.last_change_pools = now, changed
            if self.on_change is not None:
                self.on_change(changed)
        return changed

    def expiries(self) -> list[tuple[str, str, datetime]]:
        """(pool, override id, expiry) of every override in force at the last look."""
        with self._lock:
            return [
                (pool, o.id, o.expires_at)
                for pool, records in self._records.items()
                for o in records.active
                if o.ended is None
            ]

    def status(self) -> dict[str, Any]:
        """What /healthz says about the watch (the CLI reads it to tell when an override takes effect)."""
        with self._lock:
            return {
                "store": self.store.location,
                "how": "blocking query" if self.blocking else f"polled every {self.poll_s:g}s",
                "poll_s": 0.0 if self.blocking else self.poll_s,
                "last_change": self.last_change.isoformat() if self.last_change else None,
                "last_change_pools": list(self.last_change_pools),
                "error": self.last_error,
            }

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set; errors are logged (once per cause) and retried, never fatal."""
        while not stop.is_set():
            try:
                self.check(self.wait_s if self.blocking else 0.0)
            except Exception as exc:  # an unreadable store must not stop the watch (or the daemon)
                message = str(exc)
                if message != self.last_error:
                    log.warning("override watch: %s (retrying every %gs)", message, ERROR_BACKOFF_S)
                self.last_error = message
                stop.wait(ERROR_BACKOFF_S)
                continue
            if not self.blocking:
                stop.wait(self.poll_s)

    # ------------------------------------------------------------------ internals

    def _snapshot(self, now: datetime) -> None:
        records = self.store.read(self.pools)
        with self._lock:
            self._records = records
            self._in_force = {pool: _in_force(records[pool], now) for pool in self.pools}


def _in_force(records: PoolRecords, now: datetime) -> InForce:
    return tuple(
        sorted((o.id, o.kind, o.value, o.expires_at.isoformat()) for o in records.active if o.active(now))
    )
