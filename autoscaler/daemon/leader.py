"""Who may act: leader election for `forescale run` and `forescale tick`.

Two locks, both held while acting:

A shadow run (``run --dry-run``, or every pool ``mode: shadow``/``off``) writes nothing, so it holds no lock of
any kind, not even the local flock: a trial beside production never keeps the real forescale from leading.

* a local ``flock`` on ``leader.lock_file`` (default: the audit log's path + ``.lock``), so overlapping cron
  ``tick`` runs on one host — or a tick beside a daemon — never both act;
* when ``leader.enabled`` (the default), a Nomad Variables lock (``autoscaler.nomad.lock``), so only one
  forescale in the cluster acts; the others stand by (healthy) and take over when the leader's lock expires.

``Leadership.step`` does one round (renew while leading, else try to take the locks) and says when to call it
again; the daemon runs it on its own thread (``LeaderLoop``) so a long tick never delays a renew, and every
action checks ``may_act`` right before it happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autoscaler.core.errors import ForescaleError
from autoscaler.core.ports import LeaderLock

log = logging.getLogger("forescale.leader")

Role = Literal["leader", "standby"]


class LocalLock(LeaderLock):
    """An exclusive, non-blocking ``flock`` on a file: one holder per host (released when the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = f"lock file {path}"
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise ForescaleError(
                f"cannot open the lock file {self.path} ({exc.strerror}): set leader.lock_file to a writable path"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def renew(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the flock
            self._fd = None

    def leading(self) -> bool:
        return self._fd is not None

    def holder(self) -> str | None:
        return f"a forescale on this host holds {self.path}"


@dataclass(frozen=True)
class Status:
    """What ``Leadership`` knows: the role, who leads instead, and why it could not even try (an error)."""

    role: Role
    holder: str | None = None
    error: str | None = None


class Leadership:
    """The locks that decide whether this process may act; all of them, or none (see the module docstring)."""

    def __init__(
        self,
        locks: list[LeaderLock],
        *,
        renew_every_s: float,
        retry_every_s: float,
        on_change: Callable[[Role], None] | None = None,
        shadow: bool = False,
    ) -> None:
        if shadow and locks:
            raise ValueError("a shadow run holds no lock")
        self.shadow = shadow  # writes nothing, so holds nothing: never keeps a real forescale from leading
        self.locks = locks
        self.renew_every_s = renew_every_s
        self.retry_every_s = retry_every_s
        self.on_change = on_change
        self.status = Status("standby")
        self._lock = threading.Lock()

    @property
    def describe(self) -> str:
        if self.shadow:
            return "no lock: every pool in shadow"
        return " + ".join(lock.location for lock in self.locks) or "no lock"

    def may_act(self) -> str | None:
        """None while this process may act; otherwise why not (checked right before every scale)."""
        for lock in self.locks:
            if not lock.leading():
                return f"not the leader ({lock.location} is not held)"
        return None

    def leading(self) -> bool:
        return self.may_act() is None

    def step(self) -> float:
        """One round: renew while leading, else try to take every lock. Returns seconds until the next round."""
        with self._lock:
            if self.status.role == "leader":
                if all(lock.renew() for lock in self.locks):
                    return self.renew_every_s
                self._release_all()
                self._set(Status("standby", error=None))
                return self.retry_every_s
            try:
                taken = self._take_all()
            except ForescaleError as exc:
                self._set(Status("standby", error=str(exc)))
                return self.retry_every_s
            if taken:
                self._set(Status("leader"))
                return self.renew_every_s
            return self.retry_every_s

    def release(self) -> None:
        with self._lock:
            was = self.status.role
            self._release_all()
            self.status = Status("standby")
            if was == "leader":
                log.info("released the leader lock (%s)", self.describe)

    def _take_all(self) -> bool:
        for i, lock in enumerate(self.locks):
            try:
                taken = lock.acquire()
            except ForescaleError:
                for held in self.locks[:i]:
                    held.release()
                raise
            if not taken:
                for held in self.locks[:i]:
                    held.release()
                self._set(Status("standby", holder=lock.holder() or f"another holder of {lock.location}"))
                return False
        return True

    def _release_all(self) -> None:
        for lock in reversed(self.locks):
            try:
                lock.release()
            except ForescaleError as exc:  # a release that fails expires by itself
                log.warning("cannot release %s: %s", lock.location, exc)

    def _set(self, status: Status) -> None:
        before = self.status
        self.status = status
        if status.role != before.role:
            if status.role == "leader":
                log.info("leading: holding %s", self.describe)
            else:
                log.warning("standing by: %s", status.holder or status.error or "lock lost")
            if self.on_change is not None:
                self.on_change(status.role)
        elif status.error and status.error != before.error:
            log.error("cannot try for the leader lock: %s", status.error)


class LeaderLoop:
    """Runs ``Leadership.step`` on its own thread until stopped (then releases the locks)."""

    def __init__(self, leadership: Leadership) -> None:
        self.leadership = leadership
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forescale-leader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.leadership.step()
            except Exception:  # never let the election thread die: try again later
                log.exception("leader election round failed")
                wait = self.leadership.retry_every_s
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.leadership.release()
