"""The Slack notifier against a local fake of Slack's Web API and webhooks: payloads, retries, errors, secrets."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import DeploymentActive
from autoscaler.core.report import Event, TickReport
from autoscaler.notify.slack.notifier import SlackNotifier
from autoscaler.policy.tick import run_tick
from tests.fakes.slack import FakeSlack, Scripted, rate_limited, server_error
from tests.fixtures.slack import sample
from tests.helpers import T0, FailingTarget, FlatMetrics, make_deps

POST = "/api/chat.postMessage"


def bot(fake_slack, slack_config, fake_time, notify_metrics, clock=None, **settings) -> SlackNotifier:
    return SlackNotifier.from_config(
        slack_config(**settings),
        clock=clock or ManualClock(T0),
        metrics=notify_metrics,
        environ={"SLACK_BOT_TOKEN": fake_slack.token},
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
    )


def hook(fake_slack, slack_config, fake_time, notify_metrics, **settings) -> SlackNotifier:
    return SlackNotifier.from_config(
        slack_config(channel=None, **settings),
        clock=ManualClock(T0),
        metrics=notify_metrics,
        environ={"SLACK_WEBHOOK_URL": fake_slack.webhook_url},
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
    )


def event(kind: str = "override_set", msg: str = "pinned to 40 by alice until 18:00 UTC") -> Event:
    return Event(kind, "ocr", msg, T0)


def ok_count(metrics, kind="event") -> float:
    return sample(metrics, "forescale_notifier_messages_total", notifier="slack", kind=kind, result="ok")


def errors(metrics, error: str) -> float:
    return sample(metrics, "forescale_notifier_errors_total", notifier="slack", error=error)


# -- happy paths -------------------------------------------------------------------------------------------


def test_bot_posts_block_kit_to_the_channel_with_the_bearer_token(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    n = bot(fake_slack, slack_config, fake_time, notify_metrics)
    e = event()
    expected = n.formatter.event(e)
    n.announce(e)
    (req,) = fake_slack.calls(POST)
    assert req.headers["authorization"] == f"Bearer {fake_slack.token}"
    assert req.headers["content-type"].startswith("application/json")
    assert req.body == {
        "channel": "C0123OPS",
        "text": expected.text,
        "blocks": list(expected.blocks),
        "unfurl_links": False,
        "unfurl_media": False,
    }
    assert fake_slack.posted == [req.body]
    assert ok_count(notify_metrics) == 1
    assert sample(notify_metrics, "forescale_notifier_healthy", notifier="slack") == 1


def test_webhook_posts_the_same_message_without_a_channel(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    n = hook(fake_slack, slack_config, fake_time, notify_metrics)
    e = event()
    expected = n.formatter.event(e)
    n.announce(e)
    (req,) = fake_slack.calls(fake_slack.webhook_path)
    assert "authorization" not in req.headers
    assert req.body == {"text": expected.text, "blocks": list(expected.blocks)}
    assert fake_slack.posted == [req.body]
    assert ok_count(notify_metrics) == 1


def test_a_tick_posts_one_message_for_all_changes_and_nothing_when_nothing_changed(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    clock = ManualClock(T0)
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, clock=clock)
    cfg = n.formatter.config
    rates = {cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 50.0}
    deps = make_deps(cfg, FlatMetrics(rates), clock=clock, notifiers=[n])
    run_tick(deps)
    (posted,) = fake_slack.posted
    assert posted["blocks"][0]["text"]["text"] == "forescale: ocr 2 → 13, asr 2 → 7"
    assert [b["text"]["text"].split("\n")[0] for b in posted["blocks"] if b["type"] == "section"] == [
        ":arrow_up: *ocr*  2 → 13 nodes (+11)",
        ":arrow_up: *asr*  2 → 7 nodes (+5)",
    ]
    clock.advance(timedelta(minutes=20))
    run_tick(deps)  # same rates: counts already right, nothing to say
    assert len(fake_slack.posted) == 1
    assert len(fake_slack.calls(POST)) == 1


def test_held_and_deferred_pools_are_announced_once_then_recovery(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    clock = ManualClock(T0)
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, clock=clock, repeat_failure_after="1h")
    cfg = n.formatter.config
    ocr, asr = cfg.pool("ocr").query, cfg.pool("asr").query
    metrics = FlatMetrics({ocr: 100.0, asr: 50.0}, broken={asr})
    target = FailingTarget(
        clock, {"ocr": 2, "asr": 2}, {"ocr": DeploymentActive("job ml-ocr has an active deployment")}
    )
    deps = make_deps(cfg, metrics, target=target, clock=clock, notifiers=[n])
    run_tick(deps)
    assert len(fake_slack.posted) == 1
    first = [b["text"]["text"] for b in fake_slack.posted[0]["blocks"] if b["type"] == "section"]
    assert first[0].startswith(":hourglass_flowing_sand: *ocr* 2 → 13 deferred by Nomad: job ml-ocr has an active")
    assert first[1].startswith(":warning: *asr* held at 2 nodes: metrics unavailable (connection refused (test))")
    for _ in range(2):  # 20 and 40 minutes later: the same problems, silence
        clock.advance(timedelta(minutes=20))
        run_tick(deps)
    assert len(fake_slack.posted) == 1
    clock.advance(timedelta(minutes=20))  # an hour after the first announcement
    run_tick(deps)
    assert len(fake_slack.posted) == 2
    assert "still failing, since 12:00 UTC, 1h" in fake_slack.posted[1]["text"]
    target.fail.clear()
    metrics.broken.clear()
    clock.advance(timedelta(minutes=20))
    run_tick(deps)
    last = fake_slack.posted[-1]
    assert last["blocks"][0]["text"]["text"] == "forescale: ocr 2 → 13, asr 2 → 7, ocr recovered, asr recovered"


# -- retries -----------------------------------------------------------------------------------------------


def test_429_with_retry_after_zero_is_retried_by_slack_sdk_and_delivered(
    fake_slack, slack_config, notify_metrics
) -> None:
    """Real time.sleep: Retry-After: 0 means nothing actually waits."""
    fake_slack.script(POST, rate_limited(0), rate_limited(0))
    n = SlackNotifier.from_config(slack_config(), metrics=notify_metrics, environ={"SLACK_BOT_TOKEN": fake_slack.token})
    delivery = n.deliver(n.formatter.event(event()))
    assert delivery.ok and delivery.retries == ("rate_limited", "rate_limited")
    assert [r.answered for r in fake_slack.calls(POST)] == [429, 429, 200]
    assert sample(notify_metrics, "forescale_notifier_retries_total", notifier="slack", cause="rate_limited") == 2


def test_retry_after_is_honoured_and_bounded_by_max_retry_time(
    fake_slack, slack_config, fake_time, notify_metrics, caplog
) -> None:
    fake_slack.script(POST, rate_limited(20), rate_limited(20), rate_limited(20))
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, timeout="5s", max_retry_time="30s")
    with caplog.at_level(logging.WARNING, logger="forescale.slack"):
        delivery = n.deliver(n.formatter.event(event()))
    # waited exactly Retry-After once; a second 20 s wait (+5 s attempt) would exceed 30 s: give up
    assert fake_time.sleeps == [20.0]
    assert len(fake_slack.calls(POST)) == 2
    assert not delivery.ok and delivery.error == "rate_limited" and delivery.status == 429
    assert errors(notify_metrics, "rate_limited") == 1
    assert sample(notify_metrics, "forescale_notifier_healthy", notifier="slack") == 0
    assert "Slack event message not delivered after 1 retries: rate_limited" in caplog.text


def test_5xx_is_retried_with_backoff_then_given_up_within_the_budget(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    fake_slack.script(POST, *[server_error(500)] * 3, server_error(503), server_error(502), *[server_error()] * 20)
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, timeout="2s", max_retry_time="10s")
    delivery = n.deliver(n.formatter.event(event()))
    assert not delivery.ok and delivery.error == "server_error"
    assert sum(fake_time.sleeps) + 2 <= 10  # never beyond max_retry_time
    assert len(fake_slack.calls(POST)) == len(fake_time.sleeps) + 1 >= 3
    assert errors(notify_metrics, "server_error") == 1


def test_5xx_then_success(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    fake_slack.script(POST, server_error(500), server_error(503))
    n = bot(fake_slack, slack_config, fake_time, notify_metrics)
    assert n.deliver(n.formatter.event(event())).ok
    assert [r.answered for r in fake_slack.calls(POST)] == [500, 503, 200]
    assert sample(notify_metrics, "forescale_notifier_retries_total", notifier="slack", cause="server_error") == 2


def test_a_timeout_is_retried(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    release = threading.Event()
    fake_slack.script(POST, Scripted(200, {"ok": True, "channel": "C0123OPS", "ts": "1.0"}, hold=release))
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, timeout="200ms", max_retry_time="30s")
    try:
        delivery = n.deliver(n.formatter.event(event()))
    finally:
        release.set()
    assert delivery.ok and delivery.retries == ("timeout",)
    assert len(fake_slack.posted) == 1  # the retry went through the fake's real validation


def test_webhook_5xx_and_429_are_retried(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    fake_slack.script(fake_slack.webhook_path, rate_limited(0), server_error(500))
    n = hook(fake_slack, slack_config, fake_time, notify_metrics)
    delivery = n.deliver(n.formatter.event(event()))
    assert delivery.ok and delivery.retries == ("rate_limited", "server_error")
    assert delivery.detail == "ok"


def test_connection_refused_is_counted_and_never_raises(slack_config, fake_time, notify_metrics, caplog) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = slack_config(base_url=f"http://127.0.0.1:{port}/api/", max_retry_time="10s", timeout="1s")
    n = SlackNotifier.from_config(
        cfg,
        metrics=notify_metrics,
        environ={"SLACK_BOT_TOKEN": "xoxb-1-2-abc"},
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
    )
    with caplog.at_level(logging.WARNING, logger="forescale.slack"):
        delivery = n.deliver(n.formatter.event(event()))
    assert not delivery.ok and delivery.error == "connection_error"
    assert len(delivery.retries) >= 2 and sum(fake_time.sleeps) + 1 <= 10
    assert errors(notify_metrics, "connection_error") == 1
    assert f"cannot connect to 127.0.0.1:{port}" in caplog.text  # the configured base_url, not slack.com


# -- configuration errors: not retried, reported once --------------------------------------------------------


def test_invalid_auth_is_not_retried_and_reported_once(fake_slack, slack_config, fake_time, notify_metrics, caplog):
    n = SlackNotifier.from_config(
        slack_config(),
        metrics=notify_metrics,
        environ={"SLACK_BOT_TOKEN": "xoxb-0000-wrong-token"},
        sleep=fake_time.sleep,
        monotonic=fake_time.monotonic,
    )
    with caplog.at_level(logging.DEBUG, logger="forescale.slack"):
        for _ in range(3):
            n.announce(event())
    assert len(fake_slack.calls(POST)) == 3  # one attempt per message, no retries
    assert fake_time.sleeps == [] and fake_slack.posted == []
    errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors_logged) == 1
    assert "invalid_auth" in errors_logged[0].getMessage()
    assert "check $SLACK_BOT_TOKEN" in errors_logged[0].getMessage()
    assert errors(notify_metrics, "invalid_auth") == 3
    assert (
        sample(notify_metrics, "forescale_notifier_messages_total", notifier="slack", kind="event", result="failed")
        == 3
    )


def test_channel_not_found_reported_once_and_again_after_it_worked(
    fake_slack, slack_config, fake_time, notify_metrics, caplog
) -> None:
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, channel="#no-such-channel")
    with caplog.at_level(logging.WARNING, logger="forescale.slack"):
        n.announce(event())
        n.announce(event())
        assert [r.levelname for r in caplog.records] == ["ERROR"]
        assert "invite the bot to the channel" in caplog.text and "slack.channel" in caplog.text
        fake_slack.channels["C0999NEW"] = "no-such-channel"  # someone created it and invited the bot
        fake_slack.member_of.add("C0999NEW")
        n.announce(event())
        assert "Slack accepts messages again (after channel_not_found)" in caplog.text
        fake_slack.member_of.discard("C0999NEW")
        n.announce(event())
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "ERROR"]
    assert "not_in_channel" in caplog.records[-1].getMessage()
    assert errors(notify_metrics, "channel_not_found") == 2


def test_webhook_errors_carry_slacks_code_and_fix(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    n = SlackNotifier.from_config(
        slack_config(channel=None),
        metrics=notify_metrics,
        environ={"SLACK_WEBHOOK_URL": fake_slack.webhook_url.replace("XXXXsecretXXXX", "revoked")},
    )
    d = n.deliver(n.formatter.event(event()))
    assert (d.ok, d.error, d.status) == (False, "invalid_token", 403)
    fake_slack.archived_webhooks.add(fake_slack.webhook_path)
    n2 = hook(fake_slack, slack_config, fake_time, notify_metrics)
    d2 = n2.deliver(n2.formatter.event(event()))
    assert (d2.error, d2.status) == ("channel_is_archived", 410)
    n3 = SlackNotifier.from_config(
        slack_config(channel=None),
        metrics=notify_metrics,
        environ={"SLACK_WEBHOOK_URL": f"http://127.0.0.1:{fake_slack.port}/services/T0000/XXX"},
    )
    assert n3.deliver(n3.formatter.event(event())).error == "no_service"


def test_failed_alert_delivery_is_announced_again_next_tick(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    clock = ManualClock(T0)
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, clock=clock, max_retry_time="5s", timeout="2s")
    cfg = n.formatter.config
    ocr, asr = cfg.pool("ocr").query, cfg.pool("asr").query
    deps = make_deps(cfg, FlatMetrics({ocr: 10.0, asr: 10.0}, broken={asr}), clock=clock, notifiers=[n])
    fake_slack.script(POST, *[server_error()] * 10)
    run_tick(deps)
    assert fake_slack.posted == []
    fake_slack.scripts.clear()
    clock.advance(timedelta(minutes=20))
    run_tick(deps)
    (posted,) = fake_slack.posted
    assert posted["blocks"][1]["text"]["text"].startswith(":warning: *asr* held at 2 nodes")


# -- secrets -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bot", "webhook"])
def test_secrets_never_appear_in_logs_or_errors(fake_slack, slack_config, fake_time, notify_metrics, caplog, mode):
    logging.getLogger("forescale").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            if mode == "bot":
                n = bot(fake_slack, slack_config, fake_time, notify_metrics)
                secrets = [fake_slack.token]
                path = POST
            else:
                n = hook(fake_slack, slack_config, fake_time, notify_metrics)
                secrets = [fake_slack.webhook_url, "XXXXsecretXXXX"]
                path = fake_slack.webhook_path
            fake_slack.script(path, rate_limited(0), server_error(), Scripted(200, {"ok": False, "error": "x"}))
            deliveries = [n.deliver(n.formatter.event(event())) for _ in range(2)]
            fake_slack.stop()  # now connections are refused
            deliveries.append(n.deliver(n.formatter.event(event())))
    finally:
        logging.getLogger("forescale").setLevel(logging.NOTSET)
    assert any(r.name == "forescale.slack.sdk" for r in caplog.records)  # slack-sdk's debug lines were captured
    assert deliveries[-1].error == "connection_error"
    everything = caplog.text + " ".join(r.getMessage() for r in caplog.records) + repr(deliveries)
    everything += repr(n.transport.target) + n.transport.target.describe()
    for secret in secrets:
        assert secret not in everything
    assert "[redacted]" in caplog.text or mode == "bot"


# -- never blocking the tick -------------------------------------------------------------------------------


def test_async_delivery_does_not_delay_the_tick_and_flush_is_bounded(
    fake_slack, slack_config, fake_time, notify_metrics
) -> None:
    release = threading.Event()
    fake_slack.script(POST, Scripted(200, {"ok": True, "channel": "C0123OPS", "ts": "1.1"}, hold=release))
    clock = ManualClock(T0)
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, clock=clock, async_delivery=True, timeout="5s")
    cfg = n.formatter.config
    rates = {cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 50.0}
    deps = make_deps(cfg, FlatMetrics(rates), clock=clock, notifiers=[n])
    try:
        report = run_tick(deps)  # returns while Slack is still holding the answer
        assert report.changes and fake_slack.wait_for_requests(POST, 1)
        assert n.flush(timeout_s=0.05) is False  # bounded: gives up while Slack is stuck
        n.announce(event())
        assert sample(notify_metrics, "forescale_notifier_queue_length", notifier="slack") == 1
    finally:
        release.set()
    assert n.close() is True
    assert len(fake_slack.calls(POST)) == 2 and ok_count(notify_metrics, "tick") == 1 and ok_count(notify_metrics) == 1
    n.announce(event())  # after close: dropped and counted, never raised
    assert sample(notify_metrics, "forescale_notifier_messages_total", notifier="slack", kind="event", result="dropped")
    assert len(fake_slack.calls(POST)) == 2


def test_a_full_queue_drops_the_oldest(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    release = threading.Event()
    fake_slack.script(POST, Scripted(200, {"ok": True, "channel": "C0123OPS", "ts": "1.1"}, hold=release))
    n = bot(fake_slack, slack_config, fake_time, notify_metrics, async_delivery=True, queue_size=2)
    try:
        n.announce(event(msg="first"))
        assert fake_slack.wait_for_requests(POST, 1)
        for text in ("second", "third", "fourth"):
            n.announce(event(msg=text))
    finally:
        release.set()
    assert n.close()
    texts = [r.body["text"] for r in fake_slack.calls(POST)]
    assert [t.rsplit(": ", 1)[1] for t in texts] == ["first", "third", "fourth"]
    assert errors(notify_metrics, "queue_full") == 1


def test_a_broken_notifier_never_fails_the_tick(fake_slack, slack_config, fake_time, notify_metrics) -> None:
    n = bot(fake_slack, slack_config, fake_time, notify_metrics)

    class Boom:
        target = n.transport.target
        redact = n.transport.redact

        def post(self, message):
            raise RuntimeError("bug")

    n.transport = Boom()
    clock = ManualClock(T0)
    cfg = n.formatter.config
    deps = make_deps(cfg, FlatMetrics({p.query: 100.0 for p in cfg.pools}), clock=clock, notifiers=[n])
    report = run_tick(deps)
    assert len(report.changes) == 2
    assert errors(notify_metrics, "internal") == 1
    n.notify(TickReport(at=T0, outcomes=("not an outcome",)))  # type: ignore[arg-type]
    assert errors(notify_metrics, "internal") == 2


def test_fake_slack_rejects_bad_bodies(fake_slack) -> None:
    """The fake validates like Slack, so the notifier's passing tests mean something."""
    import json
    import urllib.request

    def post(body: bytes, ctype: str, token: str | None = fake_slack.token) -> dict:
        req = urllib.request.Request(fake_slack.base_url + "chat.postMessage", data=body, method="POST")
        req.add_header("Content-Type", ctype)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    j = "application/json"
    assert post(b'{"channel":"C0123OPS","text":"hi"}', j, token=None)["error"] == "not_authed"
    assert post(b'{"channel":"C0123OPS"}', j)["error"] == "no_text"
    assert post(b"not json", j)["error"] == "invalid_json"
    assert post(b'{"channel":"C0123OPS","blocks":[{"type":"bogus"}]}', j)["error"] == "invalid_blocks"
    assert post(b"channel=%23ops-scaling&text=hi", "application/x-www-form-urlencoded")["ok"] is True
    assert post(b'{"channel":"#general","text":"hi"}', j)["channel"] == "C0456GEN"
    with FakeSlack(member_of=set()) as lonely:
        req = urllib.request.Request(lonely.base_url + "chat.postMessage", data=b'{"channel":"C0123OPS","text":"x"}')
        req.add_header("Content-Type", j)
        req.add_header("Authorization", f"Bearer {lonely.token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["error"] == "not_in_channel"


@pytest.mark.parametrize("handler_name", ["BoundedConnectionErrorRetryHandler", "BoundedServerErrorRetryHandler"])
def test_backoff_sleeps_exactly_the_delay_the_budget_approved(handler_name: str, fake_time) -> None:
    """slack-sdk's backoff has random jitter: drawing it twice let the real wait exceed the budget."""
    from urllib.error import URLError

    from slack_sdk.http_retry.request import HttpRequest
    from slack_sdk.http_retry.response import HttpResponse
    from slack_sdk.http_retry.state import RetryState

    import autoscaler.notify.slack.retry as sn

    class Jitter:
        """Each draw differs, like random jitter: 2 s first, then 50 s (which would break a 10 s budget)."""

        def __init__(self) -> None:
            self.draws = iter([2.0, 50.0, 50.0])

        def calculate_sleep_duration(self, current_attempt: int) -> float:
            return next(self.draws)

    budget = sn.RetryBudget(10.0, 1.0, sleep=fake_time.sleep, monotonic=fake_time.monotonic)
    handler = getattr(sn, handler_name)(budget)
    handler.interval_calculator = Jitter()
    state = RetryState()
    request = HttpRequest(method="POST", url="http://127.0.0.1/api/chat.postMessage", headers={})
    response = HttpResponse(status_code=503, headers={}, body={}, data=b"")
    kw = {"state": state, "request": request, "response": response, "error": URLError("refused")}
    if handler_name == "BoundedConnectionErrorRetryHandler":
        kw["response"] = None
    assert handler.can_retry(**kw) is True
    handler.prepare_for_next_attempt(**kw)
    assert fake_time.sleeps == [2.0]
    assert handler.can_retry(**kw) is False  # the next draw (50 s) does not fit in what is left
