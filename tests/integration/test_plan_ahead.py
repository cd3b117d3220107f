"""`plan --at <a future time>` (issue 22, item 13): what the schedule, the overrides and the forecast will give
then — not "stale". A real Prometheus (the NASA trace) and the fake Nomad; the CLI runs on a ManualClock at a
weekday morning of the trace, so "now" has fresh data and the planned time is a day later."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.common import CliState
from autoscaler.cli.main import app
from autoscaler.core.clock import ManualClock
from tests.fakes.nomad import FakeNomad
from tests.fixtures.prometheus import PrometheusWithTrace

JOB = "demo-web"


@pytest.fixture
def world(prometheus_nasa: PrometheusWithTrace, fake_nomad: FakeNomad, tmp_path: Path) -> dict[str, Any]:
    fake_nomad.add_job(JOB, groups={"workers": 3}, scaling={"workers": (1, 80)})
    trace = prometheus_nasa.trace
    index = int(np.searchsorted(trace.t, datetime(1995, 7, 11, 14, 0, tzinfo=UTC).timestamp()))
    (tmp_path / "schedule.yaml").write_text(
        "rules:\n  - name: launch-window\n    pool: web\n    timezone: UTC\n    days: mon-fri\n"
        "    window: '13:00-16:00'\n    min: 40\n",
        encoding="utf-8",
    )
    cfg = {
        "prometheus": {"url": prometheus_nasa.url},
        "nomad": {"address": fake_nomad.address, "retries": 0, "timeout": "5s", "token_env": "FORESCALE_AHEAD_TOKEN"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "overrides": {"path": str(tmp_path / "overrides.json"), "schedule_file": "schedule.yaml"},
        "pools": [
            {
                "name": "web",
                "query": prometheus_nasa.query,
                "nomad": {"job": JOB, "group": "workers"},
                "capacity_per_node": round(float(trace.rps.max()) / 50, 4),
                "min": 1,
                "max": 80,
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return {"path": path, "now": prometheus_nasa.at(index)}


def plan(world: dict[str, Any], at: datetime, *extra: str) -> Any:
    clock = ManualClock(world["now"])
    args = ["plan", "-c", str(world["path"]), "--json", "--at", at.isoformat(), *extra]
    return CliRunner().invoke(app, args, obj=CliState(clock=clock))


def test_a_future_time_gets_a_forecast_and_the_rules_in_force_then(world: dict[str, Any]) -> None:
    at = world["now"] + timedelta(days=1)  # Wednesday 14:00 UTC: inside the launch window
    result = plan(world, at)
    assert result.exit_code == 0, result.output
    (pool,) = json.loads(result.output)["pools"]
    decision = pool["decision"]
    assert decision["held"] is False, decision
    assert "stale" not in json.dumps(decision)
    codes = [r["code"] for r in decision["reasons"]]
    assert codes[0] == "planned_ahead" and "forecast" in codes, codes
    assert "schedule_floor" in codes and decision["desired"] >= 40, decision
    planned = decision["reasons"][0]["message"]
    assert f"{world['now']:%Y-%m-%d %H:%M} UTC" in planned and "not seen yet" in planned


def test_a_manual_override_in_force_then_is_applied(world: dict[str, Any]) -> None:
    clock = ManualClock(world["now"])
    at = world["now"] + timedelta(hours=30)  # Wednesday 20:00 UTC: outside the window, the pin still on
    set_args = ["override", "set", "web", "--pin", "25", "--for", "2d", "-r", "launch", "-c", str(world["path"])]
    done = CliRunner().invoke(app, [*set_args, "--wait", "0"], obj=CliState(clock=clock))
    assert done.exit_code == 0, done.output
    result = plan(world, at)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)["pools"][0]["decision"]
    assert decision["desired"] == 25 and "manual_pin" in [r["code"] for r in decision["reasons"]], decision


def test_a_past_time_is_unchanged(world: dict[str, Any]) -> None:
    result = plan(world, world["now"] - timedelta(hours=2))
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in json.loads(result.output)["pools"][0]["decision"]["reasons"]]
    assert "planned_ahead" not in codes and "forecast" in codes


class MovingClock(ManualClock):
    """A clock that moves on every reading, as the system clock does."""

    def now(self) -> datetime:
        self.advance(timedelta(milliseconds=5))
        return super().now()


def test_a_plan_of_now_on_a_moving_clock_is_not_planned_ahead(world: dict[str, Any]) -> None:
    """Without --at, time passing while the plan runs does not make it a plan of the future."""
    args = ["plan", "-c", str(world["path"]), "--json"]
    result = CliRunner().invoke(app, args, obj=CliState(clock=MovingClock(world["now"])))
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in json.loads(result.output)["pools"][0]["decision"]["reasons"]]
    assert "planned_ahead" not in codes and "forecast" in codes, codes
