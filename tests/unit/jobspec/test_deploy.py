"""`forescale deploy` against the fake Nomad over HTTP: parse → read → plan (Nomad's diff) → register."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config import load_config
from autoscaler.core.errors import JobIndexConflict, NomadError
from autoscaler.core.settings.forescale import Config, NomadSettings
from autoscaler.jobspec.deploy import deploy_jobs, plan_changes
from autoscaler.jobspec.workers import render_jobs
from autoscaler.nomad.client import NomadClient
from tests import REPO
from tests.fakes.nomad import FakeNomad

EXAMPLE = REPO / "tests" / "golden" / "forescale.jobspec-example.yaml"


def example_config(tmp_path: Path, fake: FakeNomad, **ocr: Any) -> Config:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["nomad"] = {"address": fake.address, "token_env": "FORESCALE_TEST_NOMAD_TOKEN", "timeout": "2s"}
    data["pools"][1]["jobspec"]["nomad_client_config"] = str(REPO / "nomad.hcl")
    for key, value in ocr.items():
        if key in ("min", "max"):
            data["pools"][0][key] = value
        else:
            data["pools"][0]["jobspec"][key] = value
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def registers(fake: FakeNomad) -> list[Any]:
    return [r for r in fake.requests_to("POST") if r.path == "/v1/jobs"]


def test_dry_run_of_a_new_job_parses_but_registers_nothing(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    (result,) = deploy_jobs(config, render_jobs(config), dry_run=True, client=nomad_client)
    assert result.action == "create"
    assert result.changes == ["+ job ml-workers: new, groups ocr (count 2), face-match (count 1)"]
    assert [r.path for r in fake_nomad.requests_to("POST")] == ["/v1/jobs/parse", "/v1/job/ml-workers/plan"]
    (plan,) = fake_nomad.requests_to("POST", "/v1/job/ml-workers/plan")
    assert plan.body["Diff"] is True and plan.body["Job"]["ID"] == "ml-workers"
    assert fake_nomad.job("ml-workers") is None


def test_deploy_registers_with_preserve_counts_and_redeploy_keeps_the_scaled_count(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    (created,) = deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    assert created.action == "create" and created.eval_id
    (first,) = registers(fake_nomad)
    assert first.body["PreserveCounts"] is True
    assert first.body["EnforceIndex"] is True and first.body["JobModifyIndex"] == 0
    assert fake_nomad.group_count("ml-workers", "ocr") == 2

    # forescale scales the pool up; then an operator ships a new image.
    nomad_client.scale_job("ml-workers", {"Count": 7, "Target": {"Group": "ocr"}, "Message": "forescale"})
    assert fake_nomad.group_count("ml-workers", "ocr") == 7
    version = fake_nomad.job("ml-workers")["Version"]  # type: ignore[index]
    config = example_config(tmp_path, fake_nomad, image="registry.example.com/ml/ocr:1.5.0")

    (plan,) = deploy_jobs(config, render_jobs(config), dry_run=True, client=nomad_client)
    assert plan.action == "update"
    assert plan.kept_counts == {"ocr": 7, "face-match": 1}
    image_lines = [c for c in plan.changes if "EmbeddedTmpl" in c or "Templates" in c]
    assert image_lines, plan.changes
    assert not any("Count" in c for c in plan.changes), "counts are never part of the change set"
    assert len(registers(fake_nomad)) == 1, "dry run registered nothing"

    read_index = fake_nomad.job("ml-workers")["JobModifyIndex"]  # type: ignore[index]
    (updated,) = deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    assert updated.action == "update"
    second = registers(fake_nomad)[-1]
    assert second.body["PreserveCounts"] is True
    assert second.body["JobModifyIndex"] == read_index, "EnforceIndex against the job that was diffed"
    assert fake_nomad.group_count("ml-workers", "ocr") == 7, "the autoscaled count survived the redeploy"
    assert fake_nomad.job("ml-workers")["Version"] == version + 1  # type: ignore[index]


def test_redeploy_without_changes_registers_nothing(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    (again,) = deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    assert again.action == "unchanged" and again.changes == []
    assert len(registers(fake_nomad)) == 1


def test_changed_scaling_bounds_show_in_the_plan(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    config = example_config(tmp_path, fake_nomad, max=30, drain_timeout="90s")
    (plan,) = deploy_jobs(config, render_jobs(config), dry_run=True, client=nomad_client)
    assert "~ TaskGroups[ocr].Scaling.Max: 20 → 30" in plan.changes
    assert any(c.startswith("~ TaskGroups[ocr].Tasks[workers].KillTimeout:") for c in plan.changes)
    assert any(c.startswith("~ TaskGroups[ocr].Tasks[workers].Config.args[") for c in plan.changes)


def test_preserved_count_outside_new_bounds_is_kept_by_nomad_and_reported(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    # Nomad validates the *submitted* count against the new bounds, then swaps in the preserved one without
    # re-checking it (nomad-facts §5): the register succeeds and the live count stays; the next scale is checked.
    config = example_config(tmp_path, fake_nomad)
    deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    nomad_client.scale_job("ml-workers", {"Count": 15, "Target": {"Group": "ocr"}})
    config = example_config(tmp_path, fake_nomad, max=10)
    (result,) = deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    assert result.action == "update"
    assert any(
        "group ocr of job ml-workers runs 15 allocation(s), outside the new scaling bounds 2..10" in w
        and "keeps 15" in w
        for w in result.warnings
    ), result.warnings
    (_, second) = registers(fake_nomad)
    assert next(tg for tg in second.body["Job"]["TaskGroups"] if tg["Name"] == "ocr")["Count"] == 10
    assert fake_nomad.group_count("ml-workers", "ocr") == 15
    assert fake_nomad.job("ml-workers")["TaskGroups"][0]["Scaling"]["Max"] == 10  # type: ignore[index]
    with pytest.raises(NomadError, match="greater than scaling policy maximum: 15 > 10"):
        nomad_client.scale_job("ml-workers", {"Count": 15, "Target": {"Group": "ocr"}})
    nomad_client.scale_job("ml-workers", {"Count": 10, "Target": {"Group": "ocr"}})
    assert fake_nomad.group_count("ml-workers", "ocr") == 10


def test_parse_error_from_nomad_is_one_clear_error(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    fake_nomad.fail_next(400, body="Failed to parse job: bad block", method="POST", path="/v1/jobs/parse")
    with pytest.raises(NomadError, match="Failed to parse job: bad block"):
        deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    assert registers(fake_nomad) == []


def test_job_changed_between_read_and_register_is_reported(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    config = example_config(tmp_path, fake_nomad)
    deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)
    config = example_config(tmp_path, fake_nomad, image="registry.example.com/ml/ocr:2.0.0")
    body = "Enforcing job modify index 101: job exists with conflicting job modify index: 105"
    fake_nomad.fail_next(500, body=body, method="POST", path=re.compile(r"^/v1/jobs$"))
    with pytest.raises(JobIndexConflict, match=r"job ml-workers changed in Nomad while deploying .*--dry-run"):
        deploy_jobs(config, render_jobs(config), dry_run=False, client=nomad_client)


def _fd(kind: str, name: str, old: str = "", new: str = "") -> dict[str, Any]:
    return {"Type": kind, "Name": name, "Old": old, "New": new, "Annotations": None}


def test_plan_changes_reads_nomads_job_diff() -> None:
    template_before = [_fd("Deleted", "DestPath", old="local/c.yml"), _fd("Deleted", "EmbeddedTmpl", old="a\nb\n")]
    template_after = [_fd("Added", "DestPath", new="local/c.yml"), _fd("Added", "EmbeddedTmpl", new="a\nc\n")]
    task = {
        "Type": "Edited",
        "Name": "t",
        "Fields": [],
        "Objects": [
            {"Type": "Deleted", "Name": "Templates", "Objects": [], "Fields": template_before},
            {"Type": "Added", "Name": "Templates", "Objects": [], "Fields": template_after},
        ],
        "Annotations": ["forces create/destroy update"],
    }
    group_a = {"Type": "Edited", "Name": "a", "Fields": [_fd("Edited", "Count", "4", "1")], "Objects": []}
    diff = {
        "Type": "Edited",
        "ID": "j",
        "Fields": [_fd("None", "Priority", "50", "50")],
        "Objects": [],
        "TaskGroups": [
            {**group_a, "Tasks": [task]},
            {"Type": "Deleted", "Name": "b", "Fields": [], "Objects": [], "Tasks": []},
        ],
    }
    assert plan_changes(diff, {"ID": "j"}) == [
        "~ TaskGroups[a].Tasks[t].Templates.EmbeddedTmpl: text changed (+1 -1 lines)",
        "- TaskGroups[b]: removed (its allocations stop)",
    ]
    assert plan_changes({"Type": "None"}, {"ID": "j"}) == []


def test_deploy_cli_dry_run_prints_the_plan(tmp_path: Path, fake_nomad: FakeNomad) -> None:
    config = example_config(tmp_path, fake_nomad)
    result = CliRunner().invoke(app, ["deploy", "--config", str(config.source), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "job ml-workers: create (dry run: nothing registered)" in result.output
    assert registers(fake_nomad) == []

    result = CliRunner().invoke(app, ["deploy", "--config", str(config.source), "--pool", "ocr"])
    assert result.exit_code == 0, result.output
    assert "registered: JobModifyIndex" in result.output
    assert fake_nomad.group_count("ml-workers", "ocr") == 2


def test_settings_fixture_is_plain_http(nomad_settings: NomadSettings) -> None:
    assert nomad_settings.address.startswith("http://127.0.0.1:")


def test_the_example_plans_onto_t4_nodes_and_a_nominal_size_would_not(
    tmp_path: Path, fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    # The fake's clients are T4s reporting 15109 MiB (NVML total ÷ 2^20), in datacenter eu-west-1a, pool gpu.
    config = example_config(tmp_path, fake_nomad)
    (result,) = deploy_jobs(config, render_jobs(config), dry_run=True, client=nomad_client)
    assert result.action == "create" and result.warnings == []
    (plan,) = fake_nomad.requests_to("POST", "/v1/job/ml-workers/plan")
    ocr = next(tg for tg in plan.body["Job"]["TaskGroups"] if tg["Name"] == "ocr")
    (workers,) = [t for t in ocr["Tasks"] if t["Name"] == "workers"]
    assert (workers["Resources"]["CPU"], workers["Resources"]["MemoryMB"]) == (15200, 24832)

    # Unknown to render's table (only a warning there), a nominal 16GiB is caught by Nomad's dry run.
    config = example_config(tmp_path, fake_nomad, gpu_memory="16GiB", gpu_model="unknown-gpu")
    (result,) = deploy_jobs(config, render_jobs(config), dry_run=True, client=nomad_client)
    (warning,) = result.warnings
    assert warning.startswith("Nomad could not place 2 allocation(s) of group ocr:")
    assert "ruled out by missing devices" in warning
    assert registers(fake_nomad) == []
