"""`forescale plan` and `tick` with an aws_asg pool, through the real CLI: real Prometheus (the NASA trace), the fake
Nomad with a finite GPU fleet, and the strict Auto Scaling proxy in front of a real local moto server whose
instances are that fleet. Credentials reach the command only through the environment (boto3's standard chain)."""

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
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.cloud import AsgNomadLink
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws
from tests.fixtures.prometheus import PrometheusWithTrace

JOB, ASG = "ml-web", "gpu-web"


@pytest.fixture
def setup(
    prometheus_nasa: PrometheusWithTrace, fake_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy, tmp_path: Path
) -> dict[str, Any]:
    aws.create_asg(ASG, desired=3, max_size=80)
    fake_nomad.auto_nodes = False
    fake_nomad.new_alloc_status = "running"
    link = AsgNomadLink(fake_nomad, None, ASG, lambda: datetime.now(UTC), proxy=asg_proxy)
    link.sync(booted=True)
    fake_nomad.add_job(JOB, groups={"workers": 3}, gpus=1, distinct_hosts=True, node_pool="gpu")
    trace = prometheus_nasa.trace
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
                "nodes": {
                    "provider": "aws_asg",
                    "node_pool": "gpu",
                    "aws": {"asg_name": ASG, "region": aws.region, "endpoint_url": asg_proxy.url, "max_attempts": 1},
                },
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return {"path": path, "at": prometheus_nasa.at(index)}


def test_plan_shows_the_machines_and_changes_nothing(setup: dict[str, Any], asg_proxy: AsgProxy) -> None:
    cmd = [sys.executable, "-m", "autoscaler", "plan", "-c", str(setup["path"]), "--at", setup["at"].isoformat()]
    result = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (pool,) = json.loads(result.stdout)["pools"]
    desired = pool["decision"]["desired"]
    nodes = pool["nodes"]
    assert nodes["provider"] == "aws_asg" and nodes["dry_run"] is True and nodes["error"] is None
    assert (nodes["capacity_before"], nodes["capacity_after"]) == (3, desired)
    kinds = {a["kind"] for a in nodes["actions"]}
    assert kinds & {"scale_out", "drain"}
    assert all(a["status"] in ("planned", "info") for a in nodes["actions"] if a["kind"] != "warning")
    # The group spans two zones with AZRebalance active: a warning (once in the daemon, in every plan).
    (warning,) = [a for a in nodes["actions"] if a["kind"] == "warning"]
    assert "AZRebalance is active across 2 zones" in warning["message"]
    assert asg_proxy.group(ASG).desired == 3 and len(asg_proxy.instances(ASG)) == 3
    assert not asg_proxy.requests_for("SetDesiredCapacity") and not asg_proxy.requests_for(
        "TerminateInstanceInAutoScalingGroup"
    )
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=None)
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    assert "machines" in flat and f"3 → {desired}" in flat
    assert "web: machines: would " in flat and "lead time 10m (configured)" in flat
    assert "web: fleet if this plan runs: " in flat and "3 serving" in flat
    assert "web: group: ASG gpu-web (eu-west-1): AZRebalance is active across 2 zones" in flat, flat[-1500:]
    assert "suspend-processes" in flat


def test_plan_says_why_removals_are_paused_during_an_instance_refresh(
    setup: dict[str, Any], asg_proxy: AsgProxy
) -> None:
    asg_proxy.client("autoscaling").start_instance_refresh(AutoScalingGroupName=ASG)
    cmd = [sys.executable, "-m", "autoscaler", "plan", "-c", str(setup["path"]), "--at", setup["at"].isoformat()]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.split())
    assert "instance refresh" in flat and "forescale removes none until it ends" in flat


def test_tick_moves_the_group_to_the_count(
    setup: dict[str, Any], asg_proxy: AsgProxy, fake_nomad: FakeNomad
) -> None:
    clock = ManualClock(setup["at"])
    result = CliRunner().invoke(app, ["tick", "-c", str(setup["path"]), "--json"], obj=CliState(clock=clock))
    assert result.exit_code == 0, result.output
    (pool,) = json.loads(result.output)["pools"]
    desired = pool["decision"]["desired"]
    assert pool["status"] == "applied" and not pool["nodes"]["error"]
    assert asg_proxy.group(ASG).desired == desired
    if desired < 3:  # drained (empty after the count went down) and terminated in the same tick
        live = [i.id for i in asg_proxy.instances(ASG) if i.lifecycle != "Terminating"]
        assert len(live) == desired
        ids = {n["Attributes"]["unique.platform.aws.instance-id"] for n in fake_nomad.node_list()}
        assert set(live) <= ids
