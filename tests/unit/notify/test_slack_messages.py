"""What the Slack notifier says and when: Block Kit/text of each message, escaping, limits, de-duplication."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from autoscaler.core.decision import Decision, Reason
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.notify.alerts import FailureTracker, Problem, digest, signature
from autoscaler.notify.slack.messages import MessageFormatter
from tests.fakes.slack import validate_blocks
from tests.helpers import T0, make_config, pool_dict


def config(**over):
    return make_config(
        pool_dict("ocr"),
        pool_dict("asr"),
        nomad={"ui_url": "https://nomad.example.com/", "namespace": "ml"},
        **over,
    )


def scaled(pool: str = "ocr", current: int = 12, desired: int = 14, *extra: Reason) -> PoolOutcome:
    d = Decision(
        pool=pool,
        at=T0,
        current=current,
        desired=desired,
        reasons=(
            Reason("forecast", "forecast 410.0 rps peak in the next 30m → 14 nodes at 32.0 rps/node (40 × 80%)", 14),
            Reason("observed", "observed 350.0 rps now → 11 nodes", 11),
            *extra,
        ),
        forecast_rps=410.0,
        observed_rps=350.0,
        model="trend_lr",
    )
    return PoolOutcome(pool, "applied", d, note="eval 5e1c")


def held(pool: str = "asr", cause: str = "Prometheus: connection refused", current: int = 6) -> PoolOutcome:
    d = Decision(
        pool=pool,
        at=T0,
        current=current,
        desired=current,
        reasons=(Reason("metrics_unavailable", f"held at {current}: metrics unavailable ({cause})", current),),
        held=True,
        hold_cause=cause,
    )
    return PoolOutcome(pool, "unchanged", d)


def fine(pool: str = "asr", current: int = 6) -> PoolOutcome:
    d = Decision(pool, T0, current, current, (Reason("observed", "observed 10.0 rps now → 1 nodes", 1),), 5.0, 10.0)
    return PoolOutcome(pool, "unchanged", d)


def report(*outcomes: PoolOutcome, at=T0, events=(), dry_run=False) -> TickReport:
    return TickReport(at=at, outcomes=tuple(outcomes), events=tuple(events), dry_run=dry_run)


def tick_message(fmt: MessageFormatter, tracker: FailureTracker, rep: TickReport):
    return fmt.tick(digest(rep, tracker, rep.at))


def test_scale_up_message_exact_payload() -> None:
    fmt = MessageFormatter(config())
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(scaled()))
    assert msg is not None and msg.kind == "tick"
    link = "<https://nomad.example.com/ui/jobs/ml-ocr@ml/workers|Nomad: ml-ocr/workers>"
    assert msg.payload("C0123OPS") == {
        "channel": "C0123OPS",
        "text": "forescale: ocr 12 → 14\n"
        "ocr: 12 → 14 nodes (+2): forecast 410.0 rps peak in the next 30m → 14 nodes at 32.0 rps/node (40 × 80%)",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "forescale: ocr 12 → 14", "emoji": True}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":arrow_up: *ocr*  12 → 14 nodes (+2)\n"
                    "• forecast 410.0 rps peak in the next 30m → 14 nodes at 32.0 rps/node (40 × 80%)\n"
                    "• observed 350.0 rps now → 11 nodes",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"forecast *410.0 rps* · observed *350.0 rps* · model trend_lr · {link} · eval 5e1c",
                    }
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "forescale · tick at 2026-03-02 12:00 UTC"}]},
        ],
    }
    assert validate_blocks(msg.payload()["blocks"]) is None
    assert "channel" not in msg.payload()  # webhooks post to their own channel


def test_one_message_summarises_every_changed_pool_with_direction_and_override() -> None:
    fmt = MessageFormatter(config())
    pin = Reason("manual_pin", "pinned to 20 by alice until 18:00 UTC for 'launch' (forecast wanted 14)", 20)
    down = Decision("asr", T0, 9, 7, (Reason("observed", "observed 40.0 rps now → 7 nodes", 7),), 50.0, 40.0)
    msg = tick_message(
        fmt,
        FailureTracker(timedelta(hours=1)),
        report(scaled("ocr", 12, 20, pin), PoolOutcome("asr", "applied", down)),
    )
    assert msg is not None
    header = msg.blocks[0]["text"]["text"]
    assert header == "forescale: ocr 12 → 20, asr 9 → 7"
    ocr, asr = msg.blocks[1]["text"]["text"], msg.blocks[3]["text"]["text"]
    assert ocr.startswith(":arrow_up: *ocr*  12 → 20 nodes (+8)")
    assert "• :pushpin: pinned to 20 by alice" in ocr
    assert "override: manual_pin" in msg.blocks[2]["elements"][0]["text"]
    assert asr.startswith(":arrow_down: *asr*  9 → 7 nodes (-2)")
    # the fallback text names the reason that set the count (the pin, not the forecast)
    assert "ocr: 12 → 20 nodes (+8): pinned to 20 by alice" in msg.text


def test_nothing_changed_means_no_message() -> None:
    fmt = MessageFormatter(config())
    tracker = FailureTracker(timedelta(hours=1))
    assert tick_message(fmt, tracker, report(fine("ocr"), fine("asr"))) is None


def test_dry_run_reports_are_never_posted() -> None:
    fmt = MessageFormatter(config())
    tracker = FailureTracker(timedelta(hours=1))
    rep = report(PoolOutcome("ocr", "dry_run", scaled().decision), held(), dry_run=True)
    assert tick_message(fmt, tracker, rep) is None
    assert tracker.open_pools() == []  # a plan does not open failures either


def test_untrusted_text_is_escaped_so_nobody_gets_pinged() -> None:
    fmt = MessageFormatter(config())
    evil = Reason("manual_floor", "raised to 14: floor by bob for '<!channel> & <https://evil|click>'", 14)
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(scaled("ocr", 12, 14, evil)))
    assert msg is not None
    everything = msg.text + repr(msg.blocks)
    assert "<!channel>" not in everything and "<https://evil" not in everything
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in msg.blocks[1]["text"]["text"]


def test_held_pool_alert_names_the_cause_and_mentions() -> None:
    fmt = MessageFormatter(config(), mention="<!subteam^S0SRE>")
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(fine("ocr"), held()))
    assert msg is not None
    assert msg.blocks[0]["text"]["text"] == "forescale: asr held"
    body = msg.blocks[1]["text"]["text"]
    assert body.startswith("<!subteam^S0SRE> :warning: *asr* held at 6 nodes: metrics unavailable")
    assert "(Prometheus: connection refused)" in body
    assert msg.text.splitlines()[1].startswith("<!subteam^S0SRE> asr: held at 6 nodes")
    assert msg.rearm == (("asr", signature((Problem("held", "Prometheus: connection refused"),))),)


def test_nomad_deferred_and_failed_are_alerts_not_changes() -> None:
    fmt = MessageFormatter(config())
    d = scaled().decision
    deferred = PoolOutcome("ocr", "deferred", d, error="job ml-ocr has an active deployment; will retry next tick")
    failed = PoolOutcome("asr", "failed", None, error="cannot read current count: Nomad 403: permission denied")
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(deferred, failed))
    assert msg is not None
    texts = [b["text"]["text"] for b in msg.blocks if b["type"] == "section"]
    assert texts[0].startswith(":hourglass_flowing_sand: *ocr* 12 → 14 deferred by Nomad: job ml-ocr has an active")
    assert texts[1].startswith(":x: *asr* failed: cannot read current count: Nomad 403: permission denied")
    assert msg.blocks[0]["text"]["text"] == "forescale: ocr deferred, asr failed"


def test_repeated_failure_is_announced_once_then_after_the_interval_then_recovery() -> None:
    fmt = MessageFormatter(config())
    tracker = FailureTracker(timedelta(hours=1))
    at = T0
    first = tick_message(fmt, tracker, report(held(cause="stale: last sample is 300s old"), at=at))
    assert first is not None
    # same failure (only the age differs) 20 and 40 minutes later: silence
    for minutes in (20, 40):
        cause = f"stale: last sample is {300 + 60 * minutes}s old"
        assert tick_message(fmt, tracker, report(held(cause=cause), at=at + timedelta(minutes=minutes))) is None
    # an hour after the announcement: said again, with the start time
    again = tick_message(
        fmt, tracker, report(held(cause="stale: last sample is 3900s old"), at=at + timedelta(hours=1))
    )
    assert again is not None
    assert "_(still failing, since 12:00 UTC, 1h)_" in again.blocks[1]["text"]["text"]
    # the cause changes: said at once
    changed = tick_message(fmt, tracker, report(held(cause="HTTP 503 from Prometheus"), at=at + timedelta(minutes=80)))
    assert changed is not None and "_(cause changed)_" in changed.blocks[1]["text"]["text"]
    # recovery: one message, with how long it lasted
    recovered = tick_message(fmt, tracker, report(fine("asr"), at=at + timedelta(minutes=100)))
    assert recovered is not None
    assert recovered.blocks[0]["text"]["text"] == "forescale: asr recovered"
    text = recovered.blocks[1]["text"]["text"]
    assert text.startswith(":white_check_mark: *asr* recovered after 1h40m (was held: HTTP 503 from Prometheus)")
    assert text.endswith("now at 6 nodes")
    assert tick_message(fmt, tracker, report(fine("asr"), at=at + timedelta(minutes=120))) is None


def test_rearm_announces_again_when_the_alert_was_not_delivered() -> None:
    fmt = MessageFormatter(config())
    tracker = FailureTracker(timedelta(hours=1))
    msg = tick_message(fmt, tracker, report(held()))
    assert msg is not None
    assert tick_message(fmt, tracker, report(held(), at=T0 + timedelta(minutes=20))) is None
    for pool, sig in msg.rearm:
        tracker.rearm(pool, sig)
    again = tick_message(fmt, tracker, report(held(), at=T0 + timedelta(minutes=40)))
    assert again is not None and again.blocks[1]["text"]["text"].startswith(":warning: *asr* held")


def test_pools_missing_from_a_report_keep_their_state() -> None:
    tracker = FailureTracker(timedelta(hours=1))
    tracker.update((held(),), T0)
    alerts, recoveries = tracker.update((fine("ocr"),), T0 + timedelta(minutes=20))  # `tick --pool ocr`
    assert (alerts, recoveries) == ([], [])
    assert tracker.open_pools() == ["asr"]


def test_signature_ignores_numbers_and_ids_but_not_the_cause() -> None:
    a = (Problem("failed", "Nomad 500 at index 8812 eval 5e1c1f0a-1111-2222-3333-444455556666"),)
    b = (Problem("failed", "Nomad 500 at index 9001 eval 0a0a0a0a-1111-2222-3333-444455556666"),)
    c = (Problem("failed", "Nomad 403 permission denied"),)
    assert signature(a) == signature(b) != signature(c)
    assert signature((Problem("held", "x"),)) != signature((Problem("failed", "x"),))


def test_many_pools_stay_within_block_kit_limits() -> None:
    pools = [pool_dict(f"p{i:02d}") for i in range(40)]
    cfg = make_config(*pools)
    fmt = MessageFormatter(cfg)
    outcomes = [scaled(f"p{i:02d}", 1, 3) for i in range(40)]
    long_cause = "x" * 5000
    outcomes.append(held("p39", cause=long_cause))
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(*outcomes))
    assert msg is not None
    assert len(msg.blocks) <= 50
    assert validate_blocks(list(msg.blocks)) is None
    assert msg.blocks[-2]["elements"][0]["text"].startswith("…and ")
    assert len(msg.blocks[0]["text"]["text"]) <= 150 and msg.blocks[0]["text"]["text"].endswith("…")
    assert len(msg.text) <= 3900


def test_override_event_message_is_one_sentence_not_a_key_dump() -> None:
    fmt = MessageFormatter(config())
    event = Event(
        "override_set",
        "ocr",
        "alice pinned ocr to 40 until 18:00 UTC: Diwali <campaign>",
        T0,
        {"id": "ov-1234abcd", "author": "alice", "expires_at": "2026-03-02T18:00:00+00:00"},
    )
    msg = fmt.event(event)
    assert msg.kind == "event"
    assert msg.text == "forescale: alice pinned ocr to 40 until 18:00 UTC: Diwali &lt;campaign&gt;"
    assert msg.blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ":pushpin: alice pinned ocr to 40 until 18:00 UTC: Diwali &lt;campaign&gt;"},
    }
    context = msg.blocks[1]["elements"][0]["text"]
    assert context == (
        "forescale · override set · 2026-03-02 12:00 UTC · id ov-1234abcd · "
        "<https://nomad.example.com/ui/jobs/ml-ocr@ml/workers|Nomad: ml-ocr/workers>"
    )
    assert "author:" not in repr(msg.blocks) and "expires_at" not in repr(msg.blocks)
    assert fmt.event(Event("override_expired", "ocr", "pin expired", T0)).blocks[0]["text"]["text"].startswith(
        ":hourglass: pin expired"
    )
    assert fmt.event(Event("override_cleared", "ocr", "pin cleared", T0)).blocks[0]["text"]["text"].startswith(
        ":wastebasket:"
    )


def test_override_sentences_from_real_overrides() -> None:
    from overrides.manual import ManualOverride
    from overrides.operations import event_for

    def ov(kind: str, **kw: object) -> ManualOverride:
        base: dict[str, object] = {
            "id": "ov-1",
            "pool": "ocr",
            "kind": kind,
            "value": 40,
            "reason": "Diwali campaign",
            "author": "alice",
            "created_at": T0,
            "expires_at": T0.replace(hour=18),
        }
        return ManualOverride.model_validate(base | kw)

    assert event_for(ov("pin"), "override_set", T0).message == "alice pinned ocr to 40 until 18:00 UTC: Diwali campaign"
    assert event_for(ov("min"), "override_set", T0).message == (
        "alice set a floor of 40 on ocr until 18:00 UTC: Diwali campaign"
    )
    assert event_for(ov("max"), "override_set", T0).message == "alice capped ocr at 40 until 18:00 UTC: Diwali campaign"
    cleared = ov("pin", ended="cleared", ended_by="bob", ended_at=T0)
    assert event_for(cleared, "override_cleared", T0).message == (
        "bob cleared the pin of ocr to 40 set by alice until 18:00 UTC (Diwali campaign); ocr returns to the "
        "forecast at its next tick, without waiting for the scale-in cooldown"
    )
    floor = ov("min", ended="cleared", ended_by="bob", ended_at=T0)
    text = event_for(floor, "override_cleared", T0).message
    assert text.endswith("ocr follows the forecast again from its next tick")


def test_tick_events_ride_in_the_tick_message() -> None:
    fmt = MessageFormatter(config())
    ev = Event("override_expired", "ocr", "The pin of ocr to 40 by alice expired at 18:00 UTC (Diwali)", T0)
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(fine("ocr"), events=[ev]))
    assert msg is not None
    assert msg.blocks[0]["text"]["text"] == "forescale: override expired (ocr)"
    assert msg.blocks[1]["text"]["text"] == ":hourglass: The pin of ocr to 40 by alice expired at 18:00 UTC (Diwali)"


def test_job_link_only_when_the_ui_url_is_configured() -> None:
    assert MessageFormatter(config()).job_url("ocr") == "https://nomad.example.com/ui/jobs/ml-ocr@ml/workers"
    ui = make_config(pool_dict("ocr"), nomad={"ui_url": "https://nomad.example.com/ui"})
    assert MessageFormatter(ui).job_url("ocr") == "https://nomad.example.com/ui/jobs/ml-ocr@default/workers"
    plain = MessageFormatter(make_config(pool_dict("ocr")))
    assert plain.job_url("ocr") is None
    msg = tick_message(plain, FailureTracker(timedelta(hours=1)), report(scaled()))
    assert msg is not None and "Nomad:" not in repr(msg.blocks)


def test_queued_too_long_warning_and_counts_reach_slack() -> None:
    fmt = MessageFormatter(config())
    warning = Event(
        "pool_unplaceable",
        "ocr",
        "3 workers cannot be placed: no eligible GPU node (no node in node pool 'gpu'); queued for 25m",
        T0,
    )
    outcome = scaled()
    outcome = PoolOutcome("ocr", "applied", replace(outcome.decision, placed=10, queued=2), note="eval 5e1c")
    msg = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(outcome, events=[warning]))
    assert msg is not None
    assert msg.blocks[0]["text"]["text"] == "forescale: ocr 12 → 14, pool unplaceable (ocr)"
    assert msg.blocks[2]["elements"][0]["text"].startswith("nodes: 12 desired, 10 placed, 2 queued · forecast")
    assert msg.blocks[3]["text"]["text"] == (
        ":warning: *pool unplaceable* · *ocr*: 3 workers cannot be placed: no eligible GPU node "
        "(no node in node pool 'gpu'); queued for 25m"
    )
    placed = Event("pool_placed", "ocr", "all 14 workers placed again after 40m with some queued", T0)
    again = tick_message(fmt, FailureTracker(timedelta(hours=1)), report(fine("ocr"), events=[placed]))
    assert again is not None and again.blocks[1]["text"]["text"].startswith(":white_check_mark: *pool placed*")


def degraded(pool: str = "asr", current: int = 6) -> PoolOutcome:
    why = "a gap in the metrics from 09:00 UTC to 12:00 UTC (3h) within the last 35m; rate() warming up until 12:05 UTC"
    d = Decision(
        pool=pool,
        at=T0,
        current=current,
        desired=current,
        reasons=(Reason("degraded", f"degraded: {why}; never scales in on it; held at {current} (wanted 2)", 6),),
        forecast_rps=12.0,
        observed_rps=3.0,
        degraded=why,
    )
    return PoolOutcome(pool, "unchanged", d)


def test_a_degraded_forecast_is_announced_once_then_its_recovery() -> None:
    """A forecast built on a gap is never shown as a real one: an alert says why, and the pool's count; the
    next whole forecast is the recovery. A guard check in between (no forecast) does not close it."""
    fmt = MessageFormatter(config())
    tracker = FailureTracker(timedelta(hours=1))
    msg = tick_message(fmt, tracker, report(degraded()))
    assert msg is not None and msg.blocks[0]["text"]["text"] == "forescale: asr degraded"
    body = msg.blocks[1]["text"]["text"]
    assert body.startswith(":warning: *asr* degraded forecast: a gap in the metrics from 09:00 UTC to 12:00 UTC")
    assert "6 nodes, never scaled in on it" in body
    assert tick_message(fmt, tracker, report(degraded())) is None  # once
    guard = TickReport(at=T0 + timedelta(minutes=2), outcomes=(scaled("asr", 6, 8),), events=(), guard=True)
    assert digest(guard, tracker, guard.at).recoveries == []
    later = T0 + timedelta(minutes=20)
    msg = tick_message(fmt, tracker, report(fine(), at=later))
    assert msg is not None and "recovered after 20m (was degraded: a gap in the metrics" in msg.text


def test_a_degraded_forecast_of_a_change_says_so() -> None:
    d = replace(scaled().decision, degraded="the latest sample (1,500 req/s) rose 10.0× …")
    msg = tick_message(MessageFormatter(config()), FailureTracker(timedelta(hours=1)), report(scaled()))
    assert msg is not None and "(degraded)" not in repr(msg.blocks)
    outcome = PoolOutcome("ocr", "applied", d)
    msg = tick_message(MessageFormatter(config()), FailureTracker(timedelta(hours=1)), report(outcome))
    assert msg is not None and "forecast *410.0 rps* (degraded)" in repr(msg.blocks)
