"""``decide.bounds``: the precedence of overrides, answered by decide itself for any forecast — lowest and highest
count, and the pin, floor and ceiling that win, each a Reason naming its effect. `schedule show` only prints it."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.core.decision import Reason
from autoscaler.core.effects import OverrideEffect
from autoscaler.policy.decide import bounds, decide
from predictor.base import Forecast
from tests.helpers import T0, make_config, pool_dict

POOL = make_config(pool_dict("ocr", min=2, max=50)).pool("ocr")


def effect(kind: str, value: int, name: str, source: str = "schedule") -> OverrideEffect:
    return OverrideEffect(kind, value, source, name, f"{source} {name}: {kind} {value}", T0 + timedelta(hours=1))  # type: ignore[arg-type]


def test_without_overrides_the_pool_bounds_are_the_answer() -> None:
    b = bounds(POOL, [])
    assert (b.lowest, b.highest, b.pin, b.floor, b.ceiling) == (2, 50, None, None, None)


def test_the_highest_floor_and_the_lowest_ceiling_win_and_name_their_effect() -> None:
    effects = [
        effect("min", 30, "stores-open"),
        effect("min", 40, "ov-1", "manual"),
        effect("max", 45, "night-cap"),
        effect("max", 48, "ov-2", "manual"),
    ]
    b = bounds(POOL, effects)
    assert (b.lowest, b.highest) == (40, 45)
    assert b.floor is not None and (b.floor.code, b.floor.effect, b.floor.nodes) == ("manual_floor", "ov-1", 40)
    assert b.ceiling is not None and (b.ceiling.code, b.ceiling.effect) == ("schedule_ceiling", "night-cap")


def test_a_floor_inside_the_pool_min_does_not_bind() -> None:
    b = bounds(POOL, [effect("min", 1, "tiny")])
    assert b.lowest == 2 and b.floor is None


def test_a_pin_beats_everything_and_the_deliberate_one_wins() -> None:
    effects = [effect("pin", 12, "rule-pin"), effect("pin", 35, "ov-9", "manual"), effect("min", 40, "open")]
    b = bounds(POOL, effects)
    assert (b.lowest, b.highest) == (35, 35)
    assert b.pin is not None and (b.pin.code, b.pin.effect) == ("manual_pin", "ov-9")
    assert b.floor is None and b.ceiling is None


def test_bounds_agree_with_decide_at_both_ends() -> None:
    """The same precedence as a decision with no demand and with demand above the pool max."""
    effects = [effect("min", 30, "stores-open"), effect("max", 45, "cap")]
    per_node = POOL.capacity_per_node * POOL.target_utilization
    low = decide(POOL, T0, 0, Forecast(0.0, 0.0, 0.0, "t"), effects)
    high_rps = per_node * (POOL.max + 1)
    high = decide(POOL, T0, POOL.max, Forecast(high_rps, high_rps, 0.0, "t"), effects)
    b = bounds(POOL, effects)
    assert (b.lowest, b.highest) == (low.desired, high.desired) == (30, 45)


def test_every_reason_an_override_sets_names_it_and_the_audit_record_says_so() -> None:
    d = decide(POOL, T0, 10, Forecast(1.0, 1.0, 0.0, "t"), [effect("min", 30, "stores-open")])
    (floor,) = [r for r in d.reasons if r.code == "schedule_floor"]
    assert floor.effect == "stores-open"
    record = d.to_dict()["reasons"]
    assert {"code": "schedule_floor", "effect": "stores-open"}.items() <= next(
        r for r in record if r["code"] == "schedule_floor"
    ).items()
    assert all("effect" not in r for r in record if r["code"] != "schedule_floor")  # other records unchanged
    assert Reason("observed", "x", 1).to_dict() == {"code": "observed", "message": "x", "nodes": 1}
