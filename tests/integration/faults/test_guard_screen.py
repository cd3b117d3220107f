"""Fault class 1 for the fast guard (issue 22 item 1): one bad sample must not scale a pool, tick or guard alike.

`forescale tick --guard` (one guard check, as cron runs it) and `forescale tick` run as processes against the
hostile Prometheus and the fake Nomad; the job starts at 20 nodes (10 req/s per node, pool 1..100) and the
history is a steady 150 req/s (15 nodes). Before, the guard read the latest sample unscreened: a last sample of
1e12 or 1e300, or a single sample at ten times the level, took the pool 20 → 100 and, with a node provider,
asked for 80 more machines. The guard now reads its rate through the tick's plausibility screen.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.faults import FaultWorld, run_forescale

STEP = 60.0
LEVEL = 150.0


def guard(world: FaultWorld, config: dict[str, Any] | None = None) -> tuple[int | None, str]:
    run = run_forescale(["tick", "--guard", "-c", str(world.write(config))], timeout=60)
    assert "Traceback" not in run.err, run.err
    return run.code, run.text


def tick(world: FaultWorld, config: dict[str, Any] | None = None) -> dict[str, Any]:
    run = run_forescale(["tick", "-c", str(world.write(config)), "--json"], timeout=60)
    assert "Traceback" not in run.err, run.err
    (pool,) = json.loads(run.out)["pools"]
    return dict(pool)


def last_sample(value: float) -> Any:
    """``value`` at the newest sample only: the fake answers each chunk of a long range query separately, so
    "the end" is the end of a query that reaches now (not the edge of an older chunk)."""
    return lambda t, end: value if t >= end and end > time.time() - 600 else LEVEL


@pytest.mark.parametrize("value", [1e12, 1e300, 10 * LEVEL], ids=["1e12", "1e300", "ten-times-the-level"])
def test_one_bad_last_sample_does_not_move_the_guard(fault_world: FaultWorld, value: float) -> None:
    fault_world.script.value = last_sample(value)
    code, text = guard(fault_world)
    assert code == 0, text
    assert fault_world.scale_calls() == [], "the guard scaled on one bad sample"
    assert fault_world.count() == 20


def test_one_sample_at_ten_times_the_level_does_not_take_the_tick_to_max(fault_world: FaultWorld) -> None:
    """One screen for both: the tick believes the sample only up to the largest rise of the last week (none: a
    steady 150 req/s), and a degraded decision never scales in, so the pool stays at 20."""
    fault_world.script.value = last_sample(10 * LEVEL)
    pool = tick(fault_world)
    assert fault_world.scale_calls() == []
    assert fault_world.count() == 20
    decision = pool["decision"]
    assert decision["desired"] == 20 and decision["degraded"] is not None
    assert "confirm" in decision["degraded"]


def test_a_confirmed_surge_is_followed_by_the_guard(fault_world: FaultWorld) -> None:
    """The control case: two samples at ten times the level are a surge, not a glitch: the guard scales up."""
    fault_world.script.value = lambda t, end: 10 * LEVEL if t >= end - STEP and end > time.time() - 600 else LEVEL
    code, text = guard(fault_world)
    assert code == 0
    assert fault_world.count() == 100, text  # 1500 req/s needs 150 nodes: the pool's max


def test_a_glitch_asks_no_gpu_machine_of_the_node_provider(fault_world: FaultWorld, tmp_path: Path) -> None:
    """With a node provider the guard's count drives machines: one glitch must not ask for any."""
    requests = tmp_path / "requests.jsonl"
    provider = tmp_path / "provider.sh"
    provider.write_text(
        f'#!/bin/sh\ncat >> {requests}\necho >> {requests}\necho \'{{"desired": 20, "machines": []}}\'\n'
    )
    provider.chmod(0o755)
    cfg = fault_world.base_config()
    cfg["pools"][0]["nodes"] = {"provider": "command", "command": {"path": str(provider)}, "node_class": "gpu"}
    fault_world.script.value = last_sample(1e12)
    code, text = guard(fault_world, cfg)
    assert code == 0, text
    assert fault_world.scale_calls() == []
    asked = (
        [json.loads(line) for line in requests.read_text().splitlines() if line.strip()] if requests.exists() else []
    )
    assert not [r for r in asked if r.get("action") == "scale_out"], asked
