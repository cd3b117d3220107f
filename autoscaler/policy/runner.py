"""How one tick's pools are run: concurrently on a bounded set of threads, in a fair order, under the deadline.

- **Bounded**: at most ``workers`` pools are in progress at once (the wiring sizes it from ``prometheus.max_in_flight``
  and ``nomad.max_in_flight``, which also bound the calls on the wire: ``autoscaler.boundedhttp``). Each worker runs
  in its own copy of the caller's context, so the tick's deadline (``core/deadline.py``, a ContextVar) bounds every
  call it makes, and SIGTERM's shortened deadline stops every worker from starting another pool.
- **Fair**: a pool the deadline left undecided goes first next time (``FairOrder``), then the others in config
  order; so on a deadline the same tail pools are not skipped tick after tick.
- **Never late**: a pool not started when the deadline has passed is skipped, never started late (its outcome says
  so and it is left exactly as it is).
- **Deterministic content**: results come back in the order of the pools given, whatever the threads' speed; only
  timing differs between runs.
- ``PoolLocks``: while a tick (or a guard check) works on a pool, it holds the pool. A tick waits for a pool the
  guard holds (a guard's pool is quick); the guard never waits behind a tick: it passes over a pool the tick holds
  (the tick is deciding it with the same current rate).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar, cast

from autoscaler.core.deadline import Deadline
from autoscaler.core.ports import AuditTrail, Notifier
from autoscaler.core.report import TickReport

log = logging.getLogger("forescale.tick")

T = TypeVar("T")
R = TypeVar("R")


class FairOrder:
    """Remembers the pools a deadline left undecided; they go first in the next tick (thread-safe)."""

    def __init__(self, late: Sequence[str] = ()) -> None:
        self._late: list[str] = list(dict.fromkeys(late))
        self._lock = threading.Lock()

    @property
    def late(self) -> tuple[str, ...]:
        """The pools left undecided, in the order they go next time."""
        with self._lock:
            return tuple(self._late)

    def order(self, names: Sequence[str]) -> list[str]:
        """``names`` with the late ones first (in their own order), then the rest in the order given."""
        known = set(names)
        with self._lock:
            first = [n for n in self._late if n in known]
        chosen = set(first)
        return first + [n for n in names if n not in chosen]

    def record(self, skipped: Sequence[str], decided: Sequence[str]) -> None:
        """After a tick: the pools it decided are no longer late; those it skipped join the queue's end (a pool
        skipped again keeps its place)."""
        with self._lock:
            done = set(decided)
            late = [n for n in self._late if n not in done]
            late += [n for n in skipped if n not in late]
            self._late = late


class PoolLocks:
    """One lock per pool name: who is working on the pool now (a tick or a guard check)."""

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pool: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold ``pool`` for the block; with ``wait=False`` the block gets False at once when it is held elsewhere."""
        with self._cond:
            while wait and pool in self._held:
                self._cond.wait()
            acquired = pool not in self._held
            if acquired:
                self._held.add(pool)
        try:
            yield acquired
        finally:
            if acquired:
                with self._cond:
                    self._held.discard(pool)
                    self._cond.notify_all()

    def held(self, pool: str) -> bool:
        with self._cond:
            return pool in self._held


def run_pools(
    items: Sequence[T],
    work: Callable[[T], R],
    skip: Callable[[T], R],
    *,
    workers: int,
    deadline: Deadline,
) -> list[R]:
    """``work(item)`` for every item (started in the order given) on at most ``workers`` threads; an item not
    started before ``deadline`` passes gets ``skip(item)`` instead. Results are in the order of ``items``.

    One worker (or one item) runs inline in the calling thread. ``work`` should not raise (the tick turns every
    error into an outcome); if it does, the first error is raised here once every thread has stopped.
    """
    results: list[R | None] = [None] * len(items)
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = skip(item) if deadline.expired() else work(item)
        return cast(list[R], results)
    lock = threading.Lock()
    todo = iter(enumerate(items))
    errors: list[BaseException] = []

    def loop() -> None:
        while True:
            with lock:
                nxt = next(todo, None)
            if nxt is None:
                return
            i, item = nxt
            try:
                results[i] = skip(item) if deadline.expired() or errors else work(item)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                results[i] = skip(item)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(loop,), name=f"forescale-pool-{n}", daemon=True)
        for n in range(min(workers, len(items)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return cast(list[R], results)


def publish(report: TickReport, audit: AuditTrail | None, notifiers: Sequence[Notifier]) -> None:
    """The report to the audit log (None: a dry run records nothing) and to every notifier; neither may fail the
    tick."""
    if audit is not None:
        try:
            audit.record_tick(report)
        except OSError as exc:
            log.error("cannot append to audit log %s: %s", audit.location, exc)
    for notifier in notifiers:
        try:
            notifier.notify(report)
        except Exception:  # a notifier must never fail the tick
            log.exception("notifier %s failed", type(notifier).__name__)
