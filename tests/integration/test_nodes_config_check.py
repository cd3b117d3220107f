"""`forescale config check` reads each pool's machine group when it can (the strict Auto Scaling proxy in front of
moto, the fake Nomad): machines of another node pool, two pools on one group, AZ rebalancing — said before the
daemon ever runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.core.errors import ConfigError
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.cloud import AsgNomadLink
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws


def config(tmp_path: Path, fake: FakeNomad, aws: Aws, proxy: AsgProxy, *pools: dict[str, Any]) -> Path:
    path = tmp_path / "forescale.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "nomad": {"address": fake.address, "token_env": "FORESCALE_CHECK_TOKEN", "retries": 0},
                "audit_log": str(tmp_path / "audit.jsonl"),
                "pools": [
                    {
                        "name": p["name"],
                        "query": "sum(rate(http_requests_total[5m]))",
                        "nomad": {"job": "ml-ocr", "group": "workers"},
                        "capacity_per_node": 10,
                        "max": 20,
                        "nodes": {
                            "provider": "aws_asg",
                            "node_pool": "gpu",
                            "aws": {"asg_name": p["asg"], "region": aws.region, "endpoint_url": proxy.url},
                        },
                    }
                    for p in pools
                ],
            }
        )
    )
    return path


def test_config_check_warns_about_machines_of_another_node_pool(
    tmp_path: Path, fake_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy
) -> None:
    aws.create_asg("gpu-ocr", desired=5)
    AsgNomadLink(fake_nomad, None, "gpu-ocr", asg_proxy.clock, proxy=asg_proxy, foreign_next=2).sync(booted=True)
    fake_nomad.add_job("ml-ocr", groups={"workers": 3}, gpus=1, distinct_hosts=True, node_pool="gpu")
    path = config(tmp_path, fake_nomad, aws, asg_proxy, {"name": "ocr", "asg": "gpu-ocr"})
    result = CliRunner().invoke(app, ["config", "check", "--json", str(path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    foreign = [w for w in doc["warnings"] if "outside this pool's filters" in w]
    assert len(foreign) == 2 and all(w.startswith("pools[0] (ocr).nodes: machine i-") for w in foreign)
    assert any("AZRebalance is active across 2 zones" in w for w in doc["warnings"])
    assert doc["machine_checks"].startswith("machine groups checked: 1")
    # Nothing was written: config check only reads.
    assert not asg_proxy.requests_for("SetDesiredCapacity") and not fake_nomad.requests_to("POST", "/v1/node")
    # --no-env checks the file only.
    offline = json.loads(CliRunner().invoke(app, ["config", "check", "--json", "--no-env", str(path)]).output)
    assert offline["machine_checks"] is None and not any("outside" in w for w in offline["warnings"])


def test_config_check_refuses_two_pools_on_one_group(
    tmp_path: Path, fake_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy
) -> None:
    path = config(
        tmp_path, fake_nomad, aws, asg_proxy, {"name": "ocr", "asg": "gpu-ocr"}, {"name": "face", "asg": "gpu-ocr"}
    )
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert isinstance(result.exception, ConfigError)  # `forescale` turns it into exit 2 with this text
    assert any("pools 'ocr' and 'face' both manage the machines of ASG gpu-ocr" in p for p in result.exception.problems)
