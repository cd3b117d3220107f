"""Bounded HTTP calls (autoscaler.boundedhttp): a total deadline per call and a cap on the answer's size.

The deadline's clock is injected: the test moves it past the deadline once the request has reached the server,
and the watchdog (which polls at most every 0.25 s) cuts the call; nothing sleeps.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from autoscaler.boundedhttp import BoundedAdapter, CallDeadlineExceeded, ResponseTooLarge, mount
from autoscaler.core.deadline import Deadline, within
from tests.fakes.hostile import Answer, HostileServer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(total_s: float, max_bytes: int = 2**20, monotonic: Any = None) -> requests.Session:
    s = requests.Session()
    mount(s, BoundedAdapter(total_s, max_bytes, what="the test server", monotonic=monotonic or FakeTime()))
    return s


def advance_once_requested(server: HostileServer, clock: FakeTime, by: float) -> threading.Thread:
    def run() -> None:
        deadline = threading.Event()
        while not server.requests and not deadline.wait(0.01):
            pass
        clock.now += by

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("answer", [Answer(hang=True), Answer(200, {"x": "y" * 100}, drip_s=0.2)])
def test_a_call_is_cut_at_its_total_deadline(answer: Answer) -> None:
    clock = FakeTime()
    with HostileServer(lambda _req: answer) as server:
        advance_once_requested(server, clock, 31)
        with pytest.raises(CallDeadlineExceeded, match="within 30s"):
            session(30, monotonic=clock).get(server.url + "/x", timeout=60)


def test_the_tick_deadline_cuts_a_call_sooner() -> None:
    clock = FakeTime()
    with HostileServer(lambda _req: Answer(hang=True)) as server:
        tick = Deadline(5, clock)
        advance_once_requested(server, clock, 6)
        with within(tick), pytest.raises(CallDeadlineExceeded, match=r"the tick deadline \(5s\)"):
            session(30, monotonic=clock).get(server.url + "/x", timeout=60)


def test_no_call_starts_after_the_tick_deadline() -> None:
    clock = FakeTime()
    with HostileServer(lambda _req: Answer(200, {})) as server:
        tick = Deadline(5, clock)
        clock.now += 6
        with within(tick), pytest.raises(CallDeadlineExceeded, match="has passed: not sent"):
            session(30, monotonic=clock).get(server.url + "/x")
        assert server.requests == []


@pytest.mark.parametrize("declared", [True, False])
def test_an_answer_over_the_cap_is_refused(declared: bool) -> None:
    body = b"x" * (3 * 2**20)
    with (
        HostileServer(lambda _req: Answer(200, body, content_length=declared)) as server,
        pytest.raises(ResponseTooLarge, match="too large"),
    ):
        session(30, max_bytes=2**20).get(server.url + "/x")


def test_a_normal_answer_is_read_in_full() -> None:
    with HostileServer(lambda _req: Answer(200, {"ok": True, "pad": "z" * 200_000}, content_length=False)) as server:
        got = session(30).get(server.url + "/x")
    assert got.status_code == 200 and got.json()["ok"] is True
