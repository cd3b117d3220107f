"""The Notifier contract (``autoscaler.core.ports.Notifier``), over every implementation: the console, decisions as
log records, and Slack (bot token, against the local fake of Slack's Web API).

What the Protocol promises and the tick relies on:
- ``notify(report)`` tells, once per tick, each pool's change with its counts and reasons, and the tick's events;
- ``announce(event)`` tells one event outside a tick (`forescale override set`);
- neither ever raises into the tick, even when the destination is gone (a closed terminal, an unreachable or
  failing Slack): the notifier catches, logs and counts;
- ``close(timeout_s)`` delivers what is queued and answers True when nothing was lost, False when delivery is
  still stuck at the bound (it never waits past it).

A new notifier's author adds one case to ``notifier_case`` (how to build it, how to read what it delivered,
how to break its destination) and runs this file.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision, Reason
from autoscaler.core.ports import Notifier
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.notify.console import PIPE_WIDTH, ConsoleNotifier
from autoscaler.notify.log import LogNotifier
from autoscaler.notify.slack.notifier import SlackNotifier
from tests.contract.conftest import case
from tests.fakes.slack import FakeSlack, Scripted, server_error
from tests.fixtures.slack import FakeTime
from tests.helpers import free_port, make_config, pool_dict

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
REASON = "forecast 41.2 rps peak in the next 30m → 5 nodes"
EVENT = "pinned ocr to 40 by alice until 18:00 UTC for 'Diwali campaign'"
POST = "/api/chat.postMessage"


def report(events: tuple[Event, ...] = ()) -> TickReport:
    decision = Decision("ocr", T0, 3, 5, (Reason("forecast", REASON, 5),), 41.2, 30.0, 5, 3)
    return TickReport(T0, (PoolOutcome("ocr", "applied", decision, note="eval 1234"),), events)


def event() -> Event:
    return Event("override_set", "ocr", EVENT, T0)


@dataclass
class NotifierCase:
    """One implementation under contract: a notifier, what it has delivered so far (as text), a notifier whose
    destination is gone, and (when it delivers in the background) one whose delivery is stuck."""

    notifier: Notifier
    delivered: Callable[[], str]
    broken: Notifier
    stuck: Notifier | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _console_case() -> NotifierCase:
    out = io.StringIO()
    gone = io.StringIO()
    gone.close()
    return NotifierCase(
        ConsoleNotifier(Console(file=out, width=PIPE_WIDTH, soft_wrap=True, color_system=None)),
        out.getvalue,
        ConsoleNotifier(Console(file=gone, width=PIPE_WIDTH)),
    )


def _log_case() -> NotifierCase:
    logger = logging.getLogger("forescale.decision")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    gone = io.StringIO()
    gone.close()
    dead = logging.StreamHandler(gone)  # the daemon's stdout closed under it
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    class Broken(LogNotifier):
        def notify(self, report: TickReport) -> None:
            logger.addHandler(dead)
            try:
                super().notify(report)
            finally:
                logger.removeHandler(dead)

        def announce(self, event: Event) -> None:
            logger.addHandler(dead)
            try:
                super().announce(event)
            finally:
                logger.removeHandler(dead)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return NotifierCase(LogNotifier(), out.getvalue, Broken(), cleanup=[restore])


def _slack_case(fake: FakeSlack) -> NotifierCase:
    def build(base_url: str, **settings: Any) -> SlackNotifier:
        section = {"channel": "C0123OPS", "base_url": base_url, "timeout": "2s", "max_retry_time": "10s"}
        config = make_config(pool_dict("ocr"), slack={**section, **settings})
        fake_time = FakeTime()  # retries wait on it, never on the wall clock
        return SlackNotifier.from_config(
            config,
            clock=ManualClock(T0),
            environ={"SLACK_BOT_TOKEN": fake.token},
            sleep=fake_time.sleep,
            monotonic=fake_time.monotonic,
        )

    notifier = build(fake.base_url)

    def delivered() -> str:
        notifier.flush(5)
        return "\n".join(json.dumps(p, ensure_ascii=False) for p in fake.posted)

    broken = build(f"http://127.0.0.1:{free_port()}/api/")  # nothing listens there
    held = threading.Event()
    stuck_fake = FakeSlack(token=fake.token).start()
    stuck_fake.script(POST, *(Scripted(hold=held) for _ in range(3)))
    stuck = SlackNotifier.from_config(
        make_config(pool_dict("ocr"), slack={"channel": "C0123OPS", "base_url": stuck_fake.base_url}),
        clock=ManualClock(T0),
        environ={"SLACK_BOT_TOKEN": fake.token},
    )

    def release() -> None:
        held.set()
        for n in (notifier, broken, stuck):
            n.close(5)
        stuck_fake.stop()

    return NotifierCase(notifier, delivered, broken, stuck, cleanup=[release])


@pytest.fixture(params=[case("console"), case("log"), case("slack")])
def notifier_case(request: pytest.FixtureRequest) -> Iterator[NotifierCase]:
    if request.param == "console":
        built = _console_case()
    elif request.param == "log":
        built = _log_case()
    else:
        built = _slack_case(request.getfixturevalue("fake_slack"))
    yield built
    for undo in built.cleanup:
        undo()


def test_notify_tells_each_change_with_its_counts_and_reasons(notifier_case: NotifierCase) -> None:
    notifier_case.notifier.notify(report())
    text = notifier_case.delivered()
    assert "ocr" in text and "3 → 5" in text and REASON in text


def test_notify_tells_the_ticks_events(notifier_case: NotifierCase) -> None:
    notifier_case.notifier.notify(report(events=(event(),)))
    assert EVENT in notifier_case.delivered()


def test_announce_tells_one_event_outside_a_tick(notifier_case: NotifierCase) -> None:
    notifier_case.notifier.announce(event())
    assert EVENT in notifier_case.delivered()


def test_a_destination_that_is_gone_never_raises_into_the_tick(notifier_case: NotifierCase) -> None:
    broken = notifier_case.broken
    broken.notify(report(events=(event(),)))
    broken.announce(event())
    assert isinstance(broken.close(5), bool)


def test_close_delivers_what_is_queued_and_says_nothing_was_lost(notifier_case: NotifierCase) -> None:
    notifier_case.notifier.notify(report())
    assert notifier_case.notifier.close(5) is True
    assert REASON in notifier_case.delivered()


def test_close_never_waits_past_its_bound_and_says_when_delivery_is_stuck(notifier_case: NotifierCase) -> None:
    if notifier_case.stuck is None:  # delivers as it is told: nothing is ever queued, so no bound loses anything
        notifier_case.notifier.notify(report())
        assert notifier_case.notifier.close(0) is True
        return
    notifier_case.stuck.notify(report())  # Slack holds its answer: the message is still in flight at the bound
    assert notifier_case.stuck.close(0.2) is False


def test_slack_delivery_failures_are_reported_not_raised(fake_slack: FakeSlack) -> None:
    """The failing-server variant of 'never raises': Slack answers 500 until the message's retry budget ends."""
    fake_slack.script(POST, *(server_error() for _ in range(20)))
    case = _slack_case(fake_slack)
    try:
        case.notifier.notify(report())
        assert case.notifier.close(5) is True  # delivery finished (given up): nothing is left queued
        assert fake_slack.posted == [] and len(fake_slack.calls(POST)) > 1  # retried, then gave up
    finally:
        for undo in case.cleanup:
            undo()
