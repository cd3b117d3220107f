"""The in-flight limit of BoundedAdapter: calls made under a tick deadline share ``max_in_flight`` slots (a tick's
pools run on many threads); calls outside a tick (the leader lock, the override watch, the CLI) never wait for
them; a call that cannot get a slot before the tick's deadline is not sent. No sleeps: the server holds its
answers until the test releases them; the deadline runs on an injected clock."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest
import requests

from autoscaler.boundedhttp import BoundedAdapter, CallDeadlineExceeded, mount
from autoscaler.core.deadline import Deadline, within
from tests.fakes.hostile import Answer, HostileServer, Request

WAIT_S = 30.0


class Held:
    """Answers /held only once released (recording how many were in progress at once); anything else at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.arrived = threading.Semaphore(0)

    def __call__(self, req: Request) -> Answer:
        if req.path != "/held":
            return Answer(200, {"ok": True})
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self.arrived.release()
        assert self.release.wait(WAIT_S)
        with self.lock:
            self.active -= 1
        return Answer(200, {"ok": True})


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    return thread, out


def test_tick_calls_share_the_slots_and_other_calls_do_not_wait() -> None:
    held = Held()
    adapter = BoundedAdapter(30, 2**20, what="the test server", max_in_flight=2)
    session = requests.Session()
    mount(session, adapter)
    with HostileServer(held) as server, within(Deadline(600)):
        calls = [in_thread(lambda: session.get(server.url + "/held", timeout=30).status_code) for _ in range(3)]
        assert held.arrived.acquire(timeout=WAIT_S) and held.arrived.acquire(timeout=WAIT_S)
        assert adapter._slots is not None and not adapter._slots.acquire(blocking=False)  # both slots in use
        with within(None):  # outside a tick: not queued behind the tick's calls
            assert session.get(server.url + "/other", timeout=30).status_code == 200
        held.release.set()
        for thread, _ in calls:
            thread.join(WAIT_S)
    assert [out for _, out in calls] == [[200], [200], [200]]
    assert held.peak == 2


def test_a_call_that_gets_no_slot_before_the_tick_deadline_is_not_sent() -> None:
    now = [1000.0]
    held = Held()
    adapter = BoundedAdapter(30, 2**20, what="the test server", max_in_flight=1)
    session = requests.Session()
    mount(session, adapter)
    tick = Deadline(60, lambda: now[0])
    with HostileServer(held) as server:
        with within(Deadline(600)):  # another tick's call holds the only slot (its deadline is far)
            first, first_out = in_thread(lambda: session.get(server.url + "/held", timeout=30).status_code)
        assert held.arrived.acquire(timeout=WAIT_S)
        now[0] += 61  # this tick's deadline passes while its call waits for the slot
        with within(tick):
            second, second_out = in_thread(lambda: session.get(server.url + "/held", timeout=30))
        second.join(WAIT_S)
        (error,) = second_out
        assert isinstance(error, CallDeadlineExceeded) and error.by_tick
        assert "while waiting for one of 1 request slots" in str(error)
        held.release.set()
        first.join(WAIT_S)
    assert first_out == [200] and len([r for r in server.requests if r.path == "/held"]) == 1


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedAdapter(30, 2**20, max_in_flight=0)
