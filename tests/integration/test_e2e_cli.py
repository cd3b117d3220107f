"""The README's commands end to end: `forescale plan` and `forescale tick` against a real Prometheus
(backfilled with the NASA trace) and the fake Nomad over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.common import CliState
from autoscaler.cli.main import app
from autoscaler.core.clock import ManualClock
from autoscaler.notify.audit import AuditLog
from tests.fakes.nomad import FakeNomad
from tests.fixtures.prometheus import PrometheusWithTrace

JOB = "demo-web"
SCALE_PATH = f"/v1/job/{JOB}/scale"


@pytest.fixture
def setup(prometheus_nasa: PrometheusWithTrace, fake_nomad: FakeNomad, tmp_path: Path) -> dict[str, Any]:
    fake_nomad.add_job(JOB, groups={"workers": 3}, scaling={"workers": (1, 80)})
    trace = prometheus_nasa.trace
    # Ten days in (enough history for the seasonal model), on the morning ramp of a weekday (Tue 1995-07-11).
    index = int(np.searchsorted(trace.t, datetime(1995, 7, 11, 14, 0, tzinfo=UTC).timestamp()))
    cfg = {
        "prometheus": {"url": prometheus_nasa.url},
        "nomad": {"address": fake_nomad.address, "retries": 0, "timeout": "5s", "token_env": "FORESCALE_E2E_TOKEN"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "overrides": {"path": str(tmp_path / "overrides.json")},
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
    return {"path": path, "at": prometheus_nasa.at(index), "audit": AuditLog(tmp_path / "audit.jsonl")}


def test_plan_process_explains_and_changes_nothing(setup: dict[str, Any], fake_nomad: FakeNomad) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "plan",
            "-c",
            str(setup["path"]),
            "--json",
            "--at",
            setup["at"].isoformat(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (pool,) = json.loads(result.stdout)["pools"]
    decision = pool["decision"]
    assert decision["current"] == 3  # running + pending allocations in Nomad
    assert decision["forecast_rps"] > 0 and decision["observed_rps"] > 0
    assert decision["held"] is False
    assert [r["code"] for r in decision["reasons"]][:2] == ["forecast", "observed"]
    assert pool["status"] in ("dry_run", "unchanged")
    assert fake_nomad.requests_to("POST", SCALE_PATH) == [] and fake_nomad.requests_to("PUT", SCALE_PATH) == []
    assert fake_nomad.group_count(JOB, "workers") == 3
    assert not setup["audit"].path.exists()


def run_tick_cli(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    clock = ManualClock(setup["at"])
    return CliRunner().invoke(app, ["tick", "-c", str(setup["path"]), *args], obj=CliState(clock=clock))


def test_tick_scales_nomad_audits_and_reports(
    setup: dict[str, Any], fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_tick_cli(setup, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    (pool,) = json.loads(result.output)["pools"]
    desired = pool["decision"]["desired"]
    assert pool["status"] == "applied" and desired != 3
    (request,) = fake_nomad.requests_to("POST", SCALE_PATH) + fake_nomad.requests_to("PUT", SCALE_PATH)
    assert request.body["Count"] == desired
    assert request.body["Target"]["Group"] == "workers"
    assert request.body["Error"] is False
    assert "forecast" in request.body["Message"]
    assert fake_nomad.group_count(JOB, "workers") == desired
    assert fake_nomad.live_count(JOB, "workers") == desired
    (record,) = list(setup["audit"].records())
    assert record["status"] == "applied" and record["decision"]["desired"] == desired


def test_tick_during_a_deployment_is_deferred_not_failed(
    setup: dict[str, Any], fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nomad.set_deployment_active(JOB, True)
    result = run_tick_cli(setup, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "deferred" in result.output and "retry next tick" in result.output
    assert fake_nomad.group_count(JOB, "workers") == 3


def test_tick_with_a_broken_query_holds_and_never_scales(
    setup: dict[str, Any], fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = yaml.safe_load(setup["path"].read_text())
    cfg["pools"][0]["query"] = "sum(rate(no_such_metric[5m]))"
    setup["path"].write_text(yaml.safe_dump(cfg))
    result = run_tick_cli(setup, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    (pool,) = json.loads(result.output)["pools"]
    assert pool["decision"]["held"] is True
    assert pool["decision"]["desired"] == 3
    assert fake_nomad.requests_to("POST", SCALE_PATH) == [] and fake_nomad.requests_to("PUT", SCALE_PATH) == []


def test_tick_with_a_wrong_token_is_one_clear_failure(
    setup: dict[str, Any], fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nomad.enable_acl("management-secret")
    monkeypatch.setenv("FORESCALE_E2E_TOKEN", "wrong-secret")
    result = run_tick_cli(setup, monkeypatch)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "ACL token not found" in text and "set FORESCALE_E2E_TOKEN to a valid SecretID" in text
    assert "wrong-secret" not in result.output


def test_plan_exits_1_when_nomad_is_unreachable(setup: dict[str, Any], fake_nomad: FakeNomad) -> None:
    address = fake_nomad.address
    fake_nomad.stop()
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler", "plan", "-c", str(setup["path"]), "--at", setup["at"].isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert f"cannot reach Nomad at {address} (address from nomad.address in {setup['path']};" in text
    assert "Traceback" not in result.stderr
    # The forecast does not need Nomad: plan still shows it, with the count it would need.
    assert "web: forecast " in text and "(current count unknown: nothing decided)" in text
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ web"))
    now, placed, fcst, _obs, need = [c.strip() for c in row.split("│")[2:7]]
    assert now == "?" and placed == "" and float(fcst) > 0 and int(need) >= 1
