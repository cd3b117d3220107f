"""The nodes: section and lead_time: auto: valid files load, every mistake names the key and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.config import extra_checks, load_config
from autoscaler.core.errors import ConfigError
from autoscaler.nodes.registry import build_node_provider

BASE = """
audit_log: audit.jsonl
pools:
  - name: ocr
    query: sum(rate(http_requests_total[5m]))
    nomad: {job: ml-ocr, group: workers}
    capacity_per_node: 32
    max: 40
"""


def load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "forescale.yaml"
    path.write_text(BASE + extra)
    return load_config(path)


def problems(tmp_path: Path, extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, extra)
    return info.value.problems


def test_default_is_a_fixed_fleet(tmp_path: Path) -> None:
    pool = load(tmp_path, "").pool("ocr")  # type: ignore[attr-defined]
    assert pool.nodes.provider == "none" and not pool.nodes.enabled and not pool.lead_time_auto


def test_aws_asg_section_loads(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """    lead_time: auto
    lead_time_initial: 12m
    nodes:
      provider: aws_asg
      spare: 1
      selection: empty_first
      node_pool: gpu
      meta: {forescale_pool: ocr}
      aws: {asg_name: ml-ocr-gpu, region: eu-west-1}
""",
    )
    pool = cfg.pool("ocr")  # type: ignore[attr-defined]
    assert pool.lead_time_auto and pool.lead_time == timedelta(minutes=12)
    provider = build_node_provider(pool)
    assert provider is not None and provider.node_key(pool) == "unique.platform.aws.instance-id"
    assert provider.machine_id(pool, {"unique.platform.aws.instance-id": "i-0abc"}) == "i-0abc"
    assert pool.nodes.filters_text() == "node_pool=gpu, meta.forescale_pool=ocr"
    assert extra_checks(cfg) == []  # type: ignore[arg-type]


def test_provider_without_its_section_or_a_filter(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "    nodes: {provider: aws_asg, node_pool: gpu}\n")
    assert "pools[0] (ocr).nodes" in p and "needs its 'aws:' section with at least asg_name" in p
    (p,) = problems(tmp_path, "    nodes: {provider: aws_asg, aws: {asg_name: x}}\n")
    assert "set node_pool, node_class, datacenter or meta" in p and "never drains a node outside the pool" in p


def test_typos_and_bad_values_name_the_key(tmp_path: Path) -> None:
    (p,) = problems(tmp_path, "    nodes: {provider: aws_asg, node_pool: gpu, aws: {asg_name: x, regoin: eu-west-1}}\n")
    assert "pools[0] (ocr).nodes.aws.regoin" in p and "did you mean 'region'" in p
    (p,) = problems(tmp_path, "    nodes: {provider: gce, node_pool: gpu}\n")
    assert "pools[0] (ocr).nodes.provider" in p
    (p,) = problems(tmp_path, "    nodes: {selection: random}\n")
    assert "pools[0] (ocr).nodes.selection" in p
    (p,) = problems(tmp_path, "    lead_time_initial: 5m\n")
    assert "only used with 'lead_time: auto'" in p


def test_config_check_catches_what_the_schema_cannot(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, "    lead_time: auto\n    nodes: {provider: command, node_class: gpu, command: {path: nope.sh}}\n"
    )
    found = extra_checks(cfg)  # type: ignore[arg-type]
    assert any("nodes.command.path" in p and str(tmp_path / "nope.sh") in p for p in found)
    cfg = load(tmp_path, "    lead_time: auto\n")
    (p,) = extra_checks(cfg)  # type: ignore[arg-type]
    assert "lead_time: 'auto'" in p and "no nodes.provider" in p
