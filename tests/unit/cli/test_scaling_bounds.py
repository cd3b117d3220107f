"""Issue 22, item 9: a pool's min/max (and an override) against the job's ``scaling { min max }`` in Nomad.

Nomad refuses a count outside the group's scaling block at the tick; `config check`, `plan` and `override set`
say so first, reading the job from the (fake) Nomad. A pool whose jobspec forescale renders gets the block from
its own min/max, so it always agrees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.jobspec.bounds import check_pools
from tests.cli_helpers import run_cli
from tests.fakes.nomad import FakeNomad
from tests.helpers import free_port, make_config, pool_dict


def write(tmp_path: Path, nomad: FakeNomad, pool_max: int = 50) -> Path:
    cfg = {
        "nomad": {"address": nomad.address, "retries": 0, "timeout": "2s"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "overrides": {"path": str(tmp_path / "overrides.json")},
        "daemon": {"listen_port": free_port()},
        "pools": [
            {
                "name": "ocr",
                "query": "q",
                "nomad": {"job": "ml-ocr", "group": "workers"},
                "capacity_per_node": 10,
                "min": 1,
                "max": pool_max,
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture
def capped(fake_nomad: FakeNomad) -> FakeNomad:
    fake_nomad.add_job("ml-ocr", groups={"workers": 5}, scaling={"workers": (1, 30)})
    return fake_nomad


def test_config_check_refuses_a_max_above_the_jobs_scaling_max(
    tmp_path: Path, capped: FakeNomad, capsys: Any, monkeypatch: Any
) -> None:
    res = run_cli(["config", "check", str(write(tmp_path, capped))], capsys, monkeypatch)
    assert res.code == 2, res.text
    assert "pools[0] (ocr).max: 50 is above the scaling max 30 of job ml-ocr group workers in Nomad" in res.text
    assert "set max to 30" in res.text


def test_config_check_says_what_it_checked(tmp_path: Path, capped: FakeNomad, capsys: Any, monkeypatch: Any) -> None:
    res = run_cli(["config", "check", str(write(tmp_path, capped, pool_max=30))], capsys, monkeypatch)
    assert res.code == 0, res.text
    assert "scaling bounds checked against 1 job group(s) in Nomad" in res.text


def test_an_unreachable_nomad_is_a_note_not_a_problem(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    class Gone:
        address = f"http://127.0.0.1:{free_port()}"

    res = run_cli(["config", "check", str(write(tmp_path, Gone(), pool_max=50))], capsys, monkeypatch)  # type: ignore[arg-type]
    assert res.code == 0, res.text
    assert "scaling bounds not checked against Nomad" in res.text


def test_override_set_refuses_a_pin_the_job_caps(
    tmp_path: Path, capped: FakeNomad, capsys: Any, monkeypatch: Any
) -> None:
    path = write(tmp_path, capped)
    args = ["override", "set", "ocr", "--pin", "40", "--for", "1h", "-r", "campaign", "-c", str(path), "--wait", "0"]
    res = run_cli(args, capsys, monkeypatch)
    assert res.code != 0, res.text
    assert "--pin 40 is above the scaling max 30 of job ml-ocr group workers in Nomad" in res.text
    assert not (tmp_path / "overrides.json").exists() or "40" not in (tmp_path / "overrides.json").read_text()
    args[4] = "30"
    assert run_cli(args, capsys, monkeypatch).code == 0


def test_plan_warns_about_the_bounds(tmp_path: Path, capped: FakeNomad, capsys: Any, monkeypatch: Any) -> None:
    res = run_cli(["plan", "-c", str(write(tmp_path, capped))], capsys, monkeypatch)
    assert "warning" in res.err and "is above the scaling max 30" in " ".join(res.err.split())


def test_a_rendered_jobspec_agrees_by_construction(fake_nomad: FakeNomad) -> None:
    """The rendered job's scaling block is the pool's min/max: once deployed, nothing to report."""
    from autoscaler.jobspec.bounds import GroupBounds, pool_problems

    cfg = make_config(pool_dict("ocr", min=2, max=40), nomad={"address": fake_nomad.address, "retries": 0})
    pool = cfg.pool("ocr")
    assert pool_problems(pool, GroupBounds(pool.min, pool.max, "the rendered jobspec"), "pools[0] (ocr)") == []
    fake_nomad.add_job("ml-ocr", groups={"workers": 5}, scaling={"workers": (2, 40)})
    assert check_pools(cfg).problems == []
