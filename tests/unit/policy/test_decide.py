"""decide (pure): forecast vs observed need, step limits, scale-in cooldown, pool min/max, held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.decision import PastAction, PastNeed
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.settings.forescale import NomadGroupRef, PoolConfig
from autoscaler.policy.decide import decide
from predictor.base import Forecast

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def pool(**kw: object) -> PoolConfig:
    base: dict[str, object] = {
        "name": "ocr",
        "query": "q",
        "nomad": NomadGroupRef(job="ocr", group="workers"),
        "capacity_per_node": 10.0,
        "min": 1,
        "max": 40,
    }
    base.update(kw)
    return PoolConfig.model_validate(base)


def fc(peak: float, observed: float) -> Forecast:
    return Forecast(peak_rps=peak, observed_rps=observed, horizon_s=1800, model="test")


def test_default_target_utilization_does_not_double_count_slo_headroom() -> None:
    # The forecast already carries the SLO-derived headroom: 95 req/s at 10 req/s per node is 10 nodes.
    assert pool().target_utilization == 1.0
    d = decide(pool(), NOW, 5, fc(95, 50))
    assert d.desired == 10
    assert d.forecast_nodes == 10


def test_explicit_target_utilization_still_applies() -> None:
    d = decide(pool(target_utilization=0.5), NOW, 5, fc(95, 50))
    assert d.desired == 19


def test_forecast_raises_capacity_early() -> None:
    d = decide(pool(), NOW, 4, fc(200, 40))
    assert (d.desired, d.action) == (20, "up")
    assert d.reason_codes()[:2] == ["forecast", "observed"]


def test_never_below_what_the_observed_rate_needs() -> None:
    d = decide(pool(), NOW, 10, fc(30, 81))
    assert d.desired == 9
    assert d.reactive_nodes == 9


def test_step_up_limit() -> None:
    d = decide(pool(max_step_up=3), NOW, 4, fc(200, 40))
    assert d.desired == 7
    assert "step_up" in d.reason_codes()


def test_step_down_limit() -> None:
    d = decide(pool(max_step_down=2), NOW, 10, fc(30, 30))
    assert d.desired == 8
    assert "step_down" in d.reason_codes()


def test_scale_in_cooldown_holds_then_releases() -> None:
    p = pool(scale_in_cooldown=timedelta(minutes=15), max_step_down=None)
    recent = [PastAction(NOW - timedelta(minutes=10), "ocr", 8, 10)]
    held = decide(p, NOW, 10, fc(30, 30), recent_actions=recent)
    assert held.desired == 10
    assert "cooldown" in held.reason_codes()
    later = decide(p, NOW + timedelta(minutes=6), 10, fc(30, 30), recent_actions=recent)
    assert later.desired == 3
    assert "cooldown" not in later.reason_codes()


def test_cooldown_never_blocks_scale_up() -> None:
    recent = [PastAction(NOW - timedelta(minutes=1), "ocr", 10, 8)]
    d = decide(pool(), NOW, 8, fc(150, 60), recent_actions=recent)
    assert d.desired == 15


def test_cooldown_ignores_other_pools_and_no_op_actions() -> None:
    recent = [
        PastAction(NOW - timedelta(minutes=1), "other", 8, 10),
        PastAction(NOW - timedelta(minutes=1), "ocr", 10, 10),
    ]
    d = decide(pool(max_step_down=None), NOW, 10, fc(30, 30), recent_actions=recent)
    assert d.desired == 3


@pytest.mark.parametrize(("peak", "expected", "code"), [(0.0, 2, "pool_min"), (1000.0, 12, "pool_max")])
def test_pool_min_and_max_clamp_and_say_so(peak: float, expected: int, code: str) -> None:
    d = decide(pool(min=2, max=12, max_step_down=None), NOW, 5, fc(peak, 0.0))
    assert d.desired == expected
    assert code in d.reason_codes()


def test_missing_metrics_hold_and_never_shrink() -> None:
    d = decide(pool(), NOW, 7, None, metrics_error="Prometheus down")
    assert d.held
    assert d.desired == 7
    assert d.hold_cause == "Prometheus down"
    assert d.reason_codes() == ["metrics_unavailable"]


def test_held_still_respects_pool_bounds() -> None:
    d = decide(pool(max=5), NOW, 7, None, metrics_error="stale")
    assert d.desired == 5
    assert "pool_max" in d.reason_codes()


def test_negative_current_is_rejected() -> None:
    with pytest.raises(ValueError):
        decide(pool(), NOW, -1, fc(10, 10))


# -- the default step-down limit: 25 % of the current count, rounded up, at least 1 ---------------------


@pytest.mark.parametrize(("current", "step"), [(12, 3), (10, 3), (4, 1), (2, 1), (1, 1), (100, 25), (101, 26)])
def test_default_step_down_is_a_quarter_of_the_current_count_rounded_up(current: int, step: int) -> None:
    d = decide(pool(max=200), NOW, current, fc(0.0, 0.0))
    assert d.desired == max(current - step, 1)
    if current - step > 1:
        (reason,) = [r for r in d.reasons if r.code == "step_down"]
        assert f"-{step} per tick (25% of {current})" in reason.message


@pytest.mark.parametrize(
    ("limit", "current", "need", "expected"), [(2, 10, 3, 8), ("50%", 10, 3, 5), ("50%", 3, 0, 1), (None, 10, 3, 3)]
)
def test_step_down_limit_as_a_count_a_share_or_none(limit: object, current: int, need: int, expected: int) -> None:
    d = decide(pool(max_step_down=limit, min=0), NOW, current, fc(need * 10.0, 0.0))
    assert d.desired == expected


def test_step_up_limit_can_be_a_share_too() -> None:
    d = decide(pool(max_step_up="50%"), NOW, 4, fc(200, 40))
    assert d.desired == 6
    assert "+2 per tick (50% of 4)" in d.reasons[-1].message


@pytest.mark.parametrize("bad", [0, -1, "0%", "150%", "abc", "25 percent", True])
def test_step_limits_reject_nonsense_with_the_fix(bad: object) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"step limit|share|node count"):
        pool(max_step_down=bad)


@pytest.mark.parametrize(
    ("text", "value"), [("25%", "25%"), (" 12.5% ", "12.5%"), ("3", 3), (None, None), ("null", None)]
)
def test_step_limits_parse(text: object, value: object) -> None:
    assert pool(max_step_down=text).max_step_down == value


# -- a pin's end skips the scale-in cooldown ------------------------------------------------------------


def test_a_cleared_pin_returns_to_the_forecast_without_the_cooldown() -> None:
    p = pool(scale_in_cooldown=timedelta(minutes=15), max_step_down=None)
    pinned = [PastAction(NOW - timedelta(minutes=5), "ocr", 10, 40, pinned=True)]
    d = decide(p, NOW, 40, fc(130, 100), recent_actions=pinned)
    assert d.desired == 13
    assert "cooldown" not in d.reason_codes()
    (reason,) = [r for r in d.reasons if r.code == "pin_ended"]
    assert "without the scale-in cooldown" in reason.message


def test_after_a_pin_the_step_limit_still_applies_and_says_so() -> None:
    pinned = [PastAction(NOW - timedelta(minutes=5), "ocr", 10, 40, pinned=True)]
    d = decide(pool(max=100), NOW, 40, fc(130, 100), recent_actions=pinned)
    assert d.desired == 30
    assert d.reason_codes()[2:] == ["pin_ended", "step_down"]


def test_a_change_made_by_forecast_keeps_its_cooldown() -> None:
    unpinned = [PastAction(NOW - timedelta(minutes=5), "ocr", 10, 40)]
    d = decide(pool(), NOW, 40, fc(130, 100), recent_actions=unpinned)
    assert d.desired == 40
    assert "cooldown" in d.reason_codes()


def test_while_the_pin_is_still_active_it_wins() -> None:
    from autoscaler.core.effects import OverrideEffect

    pin = OverrideEffect("pin", 40, "manual", "ov-1", "pinned to 40 by alice", NOW + timedelta(hours=1))
    pinned = [PastAction(NOW - timedelta(minutes=5), "ocr", 10, 40, pinned=True)]
    d = decide(pool(), NOW, 40, fc(130, 100), overrides=[pin], recent_actions=pinned)
    assert d.desired == 40
    assert "pin_ended" not in d.reason_codes()


def test_estimate_is_the_forecast_need_alone() -> None:
    from autoscaler.policy.decide import estimate

    e = estimate(pool(), NOW, fc(95, 120))
    assert (e.forecast_nodes, e.reactive_nodes, e.need) == (10, 12, 12)
    assert [r.code for r in e.reasons] == ["forecast", "observed"]
    assert e.count == 12


def test_estimate_applies_the_overrides_in_force() -> None:
    """Without a current count (Nomad unreachable) `plan` still shows what a schedule floor or a pin makes of the
    forecast's need."""
    from autoscaler.policy.decide import estimate

    floor = OverrideEffect("min", 30, "schedule", "stores-open", "schedule floor 30 (stores-open)")
    e = estimate(pool(), NOW, fc(95, 120), [floor])
    assert (e.need, e.count) == (12, 30) and "schedule_floor" in [r.code for r in e.reasons]
    pin = OverrideEffect("pin", 7, "manual", "ov-1", "pinned to 7 by alice")
    assert estimate(pool(), NOW, fc(95, 120), [floor, pin]).count == 7


# -- scale-in window (HPA stabilisation) ------------------------------------------------------------


def needs(*pairs: tuple[int, int]) -> list[PastNeed]:
    """(minutes before NOW, nodes) → recent needs of pool ocr."""
    return [PastNeed(NOW - timedelta(minutes=m), "ocr", n) for m, n in pairs]


def test_scale_in_window_keeps_the_highest_need_of_the_last_hour() -> None:
    p = pool(scale_in_cooldown=timedelta(0), max_step_down=None)
    d = decide(p, NOW, 12, fc(30, 30), recent_needs=needs((20, 12), (40, 9)))
    assert (d.need, d.desired) == (3, 12)
    assert "scale_in_window" in d.reason_codes()
    assert "12 nodes were needed at 08:40 UTC" in d.explain()
    # The highest need inside the window is 9 (the 12 is an hour old: HPA keeps strictly newer ones).
    d = decide(p, NOW, 12, fc(30, 30), recent_needs=needs((60, 12), (40, 9), (20, 5)))
    assert d.desired == 9
    assert "down to 9, the most needed in the last 1h (at 08:20 UTC)" in d.explain()


def test_scale_in_window_ignores_other_pools_and_can_be_turned_off() -> None:
    other = [PastNeed(NOW - timedelta(minutes=10), "asr", 40)]
    assert (
        decide(
            pool(scale_in_cooldown=timedelta(0), max_step_down=None), NOW, 12, fc(30, 30), recent_needs=other
        ).desired
        == 3
    )
    off = pool(scale_in_cooldown=timedelta(0), scale_in_window=timedelta(0), max_step_down=None)
    assert decide(off, NOW, 12, fc(30, 30), recent_needs=needs((10, 12))).desired == 3


def test_scale_in_window_never_blocks_scale_up_and_step_down_applies_after_it() -> None:
    p = pool(scale_in_cooldown=timedelta(0), max_step_down=2)
    assert decide(p, NOW, 5, fc(150, 60), recent_needs=needs((10, 3))).desired == 15
    d = decide(p, NOW, 12, fc(30, 30), recent_needs=needs((30, 8)))
    assert d.desired == 10
    assert d.reason_codes()[-2:] == ["scale_in_window", "step_down"]


# -- the guard (mode of the same decide) ------------------------------------------------------------


def test_guard_scales_up_to_the_observed_need_and_explains_it() -> None:
    d = decide(pool(), NOW, 4, fc(57.0, 57.0), guard=True)
    assert (d.guard, d.action, d.desired, d.need) == (True, "up", 6, 6)
    assert d.reasons[0].message == "guard: observed 57 rps > capacity 40 rps (4 nodes × 10 rps) → 6 nodes"
    assert d.forecast_rps is None  # the guard reads only the current rate


def test_guard_never_scales_down_or_holds_on_a_quiet_rate() -> None:
    d = decide(pool(), NOW, 10, fc(5.0, 5.0), guard=True)
    assert (d.desired, d.changed) == (10, False)
    assert d.reasons[0].message.startswith("guard: observed 5 rps ≤ capacity 100.0 rps")


def test_guard_respects_overrides_step_limit_and_pool_max() -> None:
    ceiling = OverrideEffect("max", 7, "manual", "cap", "capped at 7 by bob")
    d = decide(pool(), NOW, 4, fc(120.0, 120.0), [ceiling], guard=True)
    assert d.desired == 7 and "manual_ceiling" in d.reason_codes()
    low_pin = OverrideEffect("pin", 3, "manual", "pin", "pinned to 3 by alice")
    d = decide(pool(), NOW, 4, fc(120.0, 120.0), [low_pin], guard=True)
    assert (d.desired, d.changed) == (4, False)  # a pin below the fleet: the guard holds, the tick will pin
    assert d.reason_codes()[-1] == "guard_no_scale_in"
    assert decide(pool(max_step_up=3), NOW, 4, fc(120.0, 120.0), guard=True).desired == 7
    assert decide(pool(max=9), NOW, 4, fc(120.0, 120.0), guard=True).desired == 9


def test_guard_with_the_last_forecasts_headroom_says_so() -> None:
    """The guard provisions the rate it sees with the headroom the last tick learned (forecast.peak_rps)."""
    d = decide(pool(), NOW, 4, fc(68.4, 57.0), guard=True)
    assert (d.desired, d.need, d.forecast_rps) == (7, 7, 68.4)
    assert d.reasons[0].message == (
        "guard: observed 57 rps (+ the last forecast's headroom: 68.4 rps) > capacity 40 rps (4 nodes × 10 rps) "
        "→ 7 nodes"
    )


def test_a_degraded_forecast_never_scales_in_but_may_scale_up() -> None:
    why = "a gap in the metrics from 09:00 to 12:00 UTC (3h) within the last 40m"
    down = decide(pool(), NOW, 10, fc(30.0, 20.0), degraded=why)
    assert (down.desired, down.changed, down.degraded) == (10, False, why)
    (reason,) = [r for r in down.reasons if r.code == "degraded"]
    assert reason.message.startswith(f"degraded: {why}; no recent good forecast: planning with the observed rate")
    assert reason.message.endswith("never scales in on it; held at 10 (wanted 3)")
    up = decide(pool(), NOW, 2, fc(30.0, 20.0), degraded=why)
    assert (up.desired, up.action) == (3, "up")
    last = Forecast(
        peak_rps=30.0,
        observed_rps=20.0,
        horizon_s=1800,
        model="t",
        details={"last_good_at": "2026-03-02T08:40:00+00:00"},
    )
    d = decide(pool(), NOW, 3, last, degraded=why)
    assert "planning with the last good forecast (made at 08:40 UTC)" in d.reasons[-1].message
