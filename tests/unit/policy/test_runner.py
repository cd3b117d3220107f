"""policy/runner.py: a tick's pools on bounded threads, in a fair order, under the deadline.

Concurrency is proven with barriers (the test would hang, not pass, if the threads did not overlap: every barrier
has a timeout that turns a hang into a failure); the deadline runs on an injected clock. Nothing sleeps.
"""

from __future__ import annotations

import threading

import pytest

from autoscaler.core import deadline as deadlines
from autoscaler.core.deadline import Deadline, within
from autoscaler.policy.runner import FairOrder, PoolLocks, run_pools

WAIT_S = 30.0  # only ever reached when the code under test is wrong (a barrier nobody else reaches)


def test_results_come_back_in_the_order_given_whatever_finishes_first() -> None:
    done: list[str] = []
    first_may_finish = threading.Event()

    def work(name: str) -> str:
        if name == "a":  # "a" finishes last: it waits until every other item is done
            assert first_may_finish.wait(WAIT_S)
        done.append(name)
        if len(done) == 3:
            first_may_finish.set()
        return name.upper()

    results = run_pools(["a", "b", "c", "d"], work, lambda n: "skipped", workers=4, deadline=Deadline(None))
    assert results == ["A", "B", "C", "D"]
    assert done[-1] == "a"


def test_at_most_workers_items_run_at_once_and_they_do_overlap() -> None:
    barrier = threading.Barrier(3, timeout=WAIT_S)  # passes only when 3 items run at the same time
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(item: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        barrier.wait()
        with lock:
            running -= 1
        return item

    assert run_pools(list(range(9)), work, lambda i: -1, workers=3, deadline=Deadline(None)) == list(range(9))
    assert peak == 3


def test_items_not_started_before_the_deadline_are_skipped_never_started_late() -> None:
    clock = [0.0]
    deadline = Deadline(10, lambda: clock[0])
    started: list[int] = []

    def work(item: int) -> str:
        started.append(item)
        clock[0] += 6  # each item takes 6 s of the injected clock
        return "done"

    results = run_pools([1, 2, 3, 4], work, lambda i: "skipped", workers=1, deadline=deadline)
    assert results == ["done", "done", "skipped", "skipped"] and started == [1, 2]


def test_the_tick_deadline_reaches_every_worker_thread() -> None:
    deadline = Deadline(60)
    seen: list[Deadline | None] = []
    barrier = threading.Barrier(2, timeout=WAIT_S)

    def work(item: int) -> int:
        barrier.wait()  # two threads at once: not the caller's thread alone
        seen.append(deadlines.current())
        return item

    with within(deadline):
        run_pools([1, 2], work, lambda i: 0, workers=2, deadline=deadline)
    assert seen == [deadline, deadline]


def test_an_error_in_work_is_raised_once_every_thread_has_stopped() -> None:
    def work(item: int) -> int:
        if item == 2:
            raise RuntimeError("boom")
        return item

    with pytest.raises(RuntimeError, match="boom"):
        run_pools([1, 2, 3], work, lambda i: 0, workers=2, deadline=Deadline(None))


def test_fair_order_puts_the_skipped_first_until_they_are_decided() -> None:
    fair = FairOrder()
    names = ["a", "b", "c", "d", "e"]
    assert fair.order(names) == names
    fair.record(skipped=["d", "e"], decided=["a", "b", "c"])
    assert fair.order(names) == ["d", "e", "a", "b", "c"]
    fair.record(skipped=["c"], decided=["d", "e", "a", "b"])  # d, e decided; c skipped now
    assert fair.order(names) == ["c", "a", "b", "d", "e"]
    fair.record(skipped=[], decided=names)
    assert fair.late == () and fair.order(names) == names


def test_fair_order_ignores_pools_no_longer_configured() -> None:
    fair = FairOrder(["gone", "b"])
    assert fair.order(["a", "b"]) == ["b", "a"]


def test_pool_locks_the_guard_passes_over_a_held_pool_and_the_tick_waits() -> None:
    locks = PoolLocks()
    with locks.hold("ocr") as mine:
        assert mine and locks.held("ocr")
        with locks.hold("ocr", wait=False) as other:
            assert other is False
        with locks.hold("asr", wait=False) as other:
            assert other is True
    assert not locks.held("ocr")
    got: list[bool] = []
    inside = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with locks.hold("ocr"):
            inside.set()
            assert release.wait(WAIT_S)

    thread = threading.Thread(target=holder)
    thread.start()
    assert inside.wait(WAIT_S)

    def waiter() -> None:
        with locks.hold("ocr") as mine:
            got.append(mine)

    second = threading.Thread(target=waiter)
    second.start()
    assert got == []  # still waiting: the pool is held
    release.set()
    thread.join(WAIT_S)
    second.join(WAIT_S)
    assert got == [True]
