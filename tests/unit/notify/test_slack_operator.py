"""Slack for operators: shadow pools post "would scale" once per wish, a large scale-in stands out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from autoscaler.core.decision import Decision, Reason
from autoscaler.core.report import PoolOutcome
from autoscaler.notify.alerts import FailureTracker, ShadowTracker, digest, large_scale_in
from autoscaler.notify.slack.messages import MessageFormatter
from tests.fakes.slack import validate_blocks
from tests.helpers import T0, make_config, pool_dict
from tests.unit.notify.test_slack_messages import report, scaled


def fmt() -> MessageFormatter:
    return MessageFormatter(make_config(pool_dict("ocr", mode="shadow"), pool_dict("asr")))


def shadow(current: int = 3, desired: int = 13) -> PoolOutcome:
    base = scaled("ocr", current, desired)
    note = f"shadow (mode: shadow): would scale {current} → {desired}; Nomad not changed"
    return PoolOutcome("ocr", "shadow", base.decision, note=note)


def test_a_shadow_pool_posts_would_scale_once_per_wish() -> None:
    tracker, seen = FailureTracker(timedelta(hours=1)), ShadowTracker()
    first = fmt().tick(digest(report(shadow()), tracker, T0, seen))
    assert first is not None
    assert first.text.startswith("forescale: ocr would scale 3 → 13 (shadow)\nocr: would scale 3 → 13 nodes (+10)")
    assert "shadow, Nomad not changed" in first.text
    head = first.blocks[1]["text"]["text"]
    assert head.startswith(":ghost: *ocr*  would scale 3 → 13 nodes (+10) · shadow: Nomad not changed")
    assert validate_blocks(list(first.blocks)) is None
    assert fmt().tick(digest(report(shadow()), tracker, T0, seen)) is None  # the same wish: not again
    again = fmt().tick(digest(report(shadow(3, 15)), tracker, T0, seen))
    assert again is not None and "would scale 3 → 15" in again.text  # a new wish is posted


def test_a_shadow_pool_that_stops_wishing_starts_over() -> None:
    tracker, seen = FailureTracker(timedelta(hours=1)), ShadowTracker()
    assert fmt().tick(digest(report(shadow()), tracker, T0, seen)) is not None
    d = shadow().decision
    assert d is not None
    fine = PoolOutcome("ocr", "unchanged", replace(d, desired=d.current))
    assert fmt().tick(digest(report(fine), tracker, T0, seen)) is None
    assert fmt().tick(digest(report(shadow()), tracker, T0, seen)) is not None


def down(current: int, desired: int, *reasons: Reason) -> Decision:
    return Decision("ocr", T0, current, desired, reasons or (Reason("observed", "observed", desired),))


@pytest.mark.parametrize(
    ("limit", "current", "desired", "expected"),
    [
        ("25%", 40, 30, None),  # the step limit itself: not large
        ("25%", 40, 13, "large scale-in: −27 nodes (68% of 40), more than max_step_down (10)"),
        (None, 12, 9, None),  # exactly 25 %
        (None, 12, 8, "large scale-in: −4 nodes, 33% of 12"),
        (5, 12, 6, "large scale-in: −6 nodes (50% of 12), more than max_step_down (5)"),
        ("25%", 10, 12, None),  # scale-up
        # Issue 22, item 8: large in nodes *and* in share.
        ("25%", 3, 2, None),  # one node of a small pool, within the step limit: no alarm (was "33% of 3")
        (None, 4, 2, None),  # two nodes: 50 %, but not large in nodes
        (None, 400, 390, None),  # ten nodes, 2.5 %: not large in share
        (1, 4, 1, "large scale-in: −3 nodes (75% of 4), more than max_step_down (1)"),
    ],
)
def test_large_scale_in(limit: object, current: int, desired: int, expected: str | None) -> None:
    pool = make_config(pool_dict("ocr", max_step_down=limit, max=100)).pool("ocr")
    assert large_scale_in(down(current, desired), pool) == expected


def test_a_large_scale_in_is_emphasised_in_slack() -> None:
    clear = Reason("pin_ended", "the pin that set 40 at 11:00 UTC has ended: back to the forecast", None)
    outcome = scaled("asr", 40, 13, clear)
    msg = MessageFormatter(make_config(pool_dict("ocr"), pool_dict("asr", max_step_down=None, max=100))).tick(
        digest(report(outcome), FailureTracker(timedelta(hours=1)), T0)
    )
    assert msg is not None
    assert msg.blocks[0]["text"]["text"] == "forescale: asr 40 → 13 (large scale-in)"
    assert msg.blocks[1]["text"]["text"].startswith(":rotating_light: *Large scale-in: −27 nodes, 68% of 40*\n")
    assert "LARGE SCALE-IN: −27 nodes, 68% of 40: asr: 40 → 13 nodes (-27)" in msg.text
    small = MessageFormatter(make_config(pool_dict("ocr"), pool_dict("asr", max=100))).tick(
        digest(report(scaled("asr", 12, 9)), FailureTracker(timedelta(hours=1)), T0)
    )
    assert small is not None and "rotating_light" not in repr(small.blocks) and "LARGE" not in small.text


def test_large_scale_in_thresholds_are_configurable() -> None:
    """``slack.large_scale_in_nodes``/``_pct`` move the bar (issue 22, item 8)."""
    cfg = make_config(pool_dict("ocr", max=100), slack={"channel": "C1", "large_scale_in_nodes": 1})
    fmt = MessageFormatter(cfg)
    assert fmt._large(down(3, 2)) == "large scale-in: −1 nodes, 33% of 3"
    strict = make_config(
        pool_dict("ocr", max=100, max_step_down=None), slack={"channel": "C1", "large_scale_in_pct": 50}
    )
    assert MessageFormatter(strict)._large(down(12, 8)) is None
    assert MessageFormatter(strict)._large(down(12, 5)) == "large scale-in: −7 nodes, 58% of 12"
