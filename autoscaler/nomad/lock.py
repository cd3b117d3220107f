"""Leader election on a Nomad Variables lock (``PUT /v1/var/:path?lock-acquire|lock-renew|lock-release``, Nomad ≥ 1.7),
as nomad-autoscaler's HA mode does — through forescale's one NomadClient.

Nomad's side (nomad-facts §7): a lock has a TTL (10s–24h) and a LockDelay; the server's timer fires 2×TTL
after the last acquire or renew, and the lock is removed LockDelay later. So another process can take over
at the earliest ``last renew + 2×TTL + LockDelay``.

This side keeps a **lease** of one TTL from the moment each successful acquire or renew was *sent*: the
process may act only while the lease is valid (``leading``). That is always before anyone else can hold the
lock, even if the last renew's answer was lost. A renew answered 409 (the lock is gone or someone else's)
ends the lease at once — unlike nomad-autoscaler, which keeps scaling after a 409 on renew (§8). A renew that
fails for another reason (Nomad unreachable) keeps the lease until it runs out, then this process stops acting.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from autoscaler.core.errors import CasConflict, NomadError, NomadNotFound
from autoscaler.core.ports import LeaderLock
from autoscaler.nomad.client import NomadClient

log = logging.getLogger("forescale.leader")


def go_duration(delta: timedelta) -> str:
    """A Go duration string for Nomad (``30s``, ``1m30s``)."""
    ms = round(delta.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def process_name() -> str:
    """This process, for the lock's Items and for messages: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class NomadLock(LeaderLock):
    """A LeaderLock on the Nomad variable ``path`` (its Items name the holder: ``nomad var get <path>``)."""

    def __init__(
        self,
        client: NomadClient,
        path: str,
        ttl: timedelta,
        lock_delay: timedelta,
        *,
        name: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.path = path.strip("/")
        self.ttl = ttl
        self.lock_delay = lock_delay
        self.name = name or process_name()
        self.monotonic = monotonic
        self.location = f"Nomad variable {self.path} (namespace '{client.namespace}')"
        self.lock_id = ""  # kept after a loss: re-acquiring with our own ID succeeds if the lock is still ours
        self._lease_until = float("-inf")
        self._holder: str | None = None

    # ------------------------------------------------------------------ the port

    def acquire(self) -> bool:
        sent = self.monotonic()
        body: dict[str, Any] = {
            "Namespace": self.client.namespace,
            "Path": self.path,
            "Items": {"holder": self.name, "since": datetime.now(UTC).isoformat(timespec="seconds")},
            "Lock": {"TTL": go_duration(self.ttl), "LockDelay": go_duration(self.lock_delay), "ID": self.lock_id},
        }
        try:
            reply = self.client.put_json(self._url(), body, params={"lock-acquire": ""})
        except CasConflict:
            self._lease_until = float("-inf")
            self._holder = self._read_holder()
            return False
        except NomadError as exc:
            self._lease_until = float("-inf")
            raise NomadError(f"cannot take the leader lock ({self.location}): {exc}", exc.status, exc.body) from None
        lock = reply.body.get("Lock") if isinstance(reply.body, dict) else None
        lock_id = lock.get("ID") if isinstance(lock, dict) else None
        if not isinstance(lock_id, str) or not lock_id:
            raise NomadError(f"Nomad answered the lock-acquire of {self.location} without a lock ID")
        self.lock_id = lock_id
        self._lease_until = sent + self.ttl.total_seconds()
        self._holder = self.name
        return True

    def renew(self) -> bool:
        if not self.lock_id:
            return False
        sent = self.monotonic()
        try:
            self.client.put_json(self._url(), {"Lock": {"ID": self.lock_id}}, params={"lock-renew": ""})
        except (CasConflict, NomadNotFound) as exc:
            if self.leading():
                log.error("lost the leader lock (%s): %s; stopping all scaling now", self.location, exc)
            self._lease_until = float("-inf")
            return False
        except NomadError as exc:
            left = self._lease_until - self.monotonic()
            if left > 0:
                log.warning("cannot renew the leader lock (%s): %s; still leading for %.0fs", self.location, exc, left)
            return self.leading()
        self._lease_until = sent + self.ttl.total_seconds()
        return True

    def release(self) -> None:
        was_leading = self.leading()
        self._lease_until = float("-inf")
        if not self.lock_id:
            return
        try:
            self.client.put_json(
                self._url(),
                {"Namespace": self.client.namespace, "Path": self.path, "Lock": {"ID": self.lock_id}},
                params={"lock-release": ""},
            )
        except NomadError as exc:
            if was_leading:
                log.warning("cannot release the leader lock (%s): %s; it expires by itself", self.location, exc)

    def leading(self) -> bool:
        return self.monotonic() < self._lease_until

    def holder(self) -> str | None:
        return self._holder

    # ------------------------------------------------------------------ internals

    def _url(self) -> str:
        return "var/" + quote(self.path, safe="/")

    def _read_holder(self) -> str | None:
        """Who holds the lock (its Items), best effort: only for messages."""
        try:
            body = self.client.get_json(self._url(), retry=False).body
        except NomadError:
            return None
        items = body.get("Items") if isinstance(body, dict) else None
        holder = items.get("holder") if isinstance(items, dict) else None
        return str(holder) if holder else None
