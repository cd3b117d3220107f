"""Fault class 1: request rates a pool must never be scaled on (negative, absurd, implausible jumps).

`forescale tick` runs as a process against a hostile Prometheus and the fake Nomad; the job starts at 20 nodes
(10 req/s per node, pool 1..100). Bad data holds the pool and says why; an implausible jump waits for the next
sample; a confirmed jump is followed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.faults import FaultWorld, run_forescale

STEP = 60.0


def tick(world: FaultWorld, config: dict[str, Any] | None = None) -> tuple[int | None, dict[str, Any], str]:
    run = run_forescale(["tick", "-c", str(world.write(config)), "--json"], timeout=60)
    assert "Traceback" not in run.err, run.err
    try:
        doc = json.loads(run.out)
    except ValueError:
        pytest.fail(f"tick printed no JSON (exit {run.code}):\n{run.out}\n{run.err}")
    (pool,) = doc["pools"]
    return run.code, pool, run.text


def explanation(pool: dict[str, Any]) -> str:
    d = pool["decision"] or {}
    return " ".join([str(d.get("hold_cause") or "")] + [r["message"] for r in d.get("reasons", [])]).lower()


def assert_held_at_20(world: FaultWorld, pool: dict[str, Any]) -> None:
    assert world.scale_calls() == [], "the pool must not be scaled on bad data"
    assert world.count() == 20
    assert pool["decision"]["held"] is True
    assert pool["decision"]["desired"] == 20


def test_negative_rates_hold_instead_of_shrinking(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: -315.0 + (t - end) / 600.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "negative" in explanation(pool)


def test_negative_rates_hold_with_the_seasonal_model(fault_world: FaultWorld) -> None:
    cfg = fault_world.base_config()
    cfg["predictor"] = {"model": "seasonal_lr", "history": "9d"}
    fault_world.script.value = lambda t, end: -266.0
    code, pool, _ = tick(fault_world, cfg)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "negative" in explanation(pool)


def test_a_negative_latest_sample_holds(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: -5.0 if t >= end else 150.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "negative" in explanation(pool)


def test_a_single_final_sample_of_1e12_does_not_take_the_pool_to_max(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 1e12 if t >= end else 150.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "plausib" in explanation(pool) or "absurd" in explanation(pool)


def test_values_of_1e300_hold(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 1e300
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "plausib" in explanation(pool) or "absurd" in explanation(pool)


def test_an_unconfirmed_jump_past_the_plausibility_bound_waits_for_the_next_sample(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 4000.0 if t >= end else 150.0  # 26.7x the peak, once
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)
    assert "confirm" in explanation(pool)


def test_a_jump_confirmed_by_the_next_sample_is_followed(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 4000.0 if t >= end - STEP else 150.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert pool["status"] == "applied"
    assert fault_world.count() == 100  # 4000 req/s needs 400 nodes: the pool's max


def test_the_plausibility_bound_is_configurable(fault_world: FaultWorld) -> None:
    """Above the bound an unconfirmed jump holds the pool; below it, it is not held but, like any rise past its
    precedent, believed only up to that precedent until the next sample confirms it (policy/screen.py)."""
    cfg = fault_world.base_config()
    cfg["predictor"]["plausible_jump"] = 50  # 26.7x is plausible now
    fault_world.script.value = lambda t, end: 4000.0 if t >= end else 150.0
    code, pool, _ = tick(fault_world, cfg)
    assert code == 0
    assert pool["decision"]["held"] is False and "confirms" in (pool["decision"]["degraded"] or "")
    assert fault_world.count() == 20  # believed up to 150 req/s; a degraded decision never scales in
    fault_world.script.value = lambda t, end: 4000.0 if t >= end - STEP else 150.0  # the next sample confirms it
    code, pool, _ = tick(fault_world, cfg)
    assert code == 0
    assert pool["status"] == "applied" and fault_world.count() == 100


def test_an_isolated_absurd_spike_in_the_history_is_ignored_and_explained(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 1e12 if end - 10 * STEP - 1 < t < end - 9 * STEP else 150.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert fault_world.count() == 15  # decided on the 150 req/s around the spike
    assert "ignored" in explanation(pool)


def test_nan_everywhere_holds(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: float("nan")
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert_held_at_20(fault_world, pool)


def test_an_infinite_latest_sample_does_not_scale_out(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: float("inf") if t >= end else 150.0
    code, _pool, _ = tick(fault_world)
    assert code == 0
    assert fault_world.count() <= 20  # never to max on +Inf


def test_clean_data_still_scales(fault_world: FaultWorld) -> None:
    """The control case: 150 req/s → 15 nodes."""
    fault_world.script.value = lambda t, end: 150.0
    code, pool, _ = tick(fault_world)
    assert code == 0
    assert pool["status"] == "applied" and fault_world.count() == 15
