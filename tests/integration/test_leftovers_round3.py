"""Issue 22, item 14: the leftovers a first-time SRE hit, each as it shows on the terminal.

`tick` prints each decision once; `render` embeds the compose entrypoint once and names the pools it skips; the
deploy diff prints durations as durations; urllib3's retry warnings stay off the terminal; a schedule file's
problems come in one report; `backtest` prints progress where no live bar can be drawn, titles a Prometheus
replay after its pool, and separates what floors and pins cost from what the forecast costs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from autoscaler.cli.main import QUIET_LIBRARIES, configure_logging
from autoscaler.jobspec.deploy import plan_changes
from tests import REPO
from tests.fakes.nomad import FakeNomad
from tests.fixtures.faults import run_forescale
from tests.fixtures.prometheus import PrometheusWithTrace
from tests.helpers import free_port

JOB = "demo-web"


def forescale(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "SLACK_", "FORESCALE_"))}
    env["COLUMNS"] = "250"  # tables at their natural width
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture
def nasa_config(prometheus_nasa: PrometheusWithTrace, fake_nomad: FakeNomad, tmp_path: Path) -> Path:
    fake_nomad.add_job(JOB, groups={"workers": 3}, scaling={"workers": (1, 80)})
    cfg = {
        "prometheus": {"url": prometheus_nasa.url},
        "nomad": {"address": fake_nomad.address, "retries": 0, "timeout": "5s"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "overrides": {"path": str(tmp_path / "overrides.json")},
        "leader": {"enabled": False},
        "pools": [
            {
                "name": "web",
                "query": prometheus_nasa.query,
                "nomad": {"job": JOB, "group": "workers"},
                "capacity_per_node": round(float(prometheus_nasa.trace.rps.max()) / 50, 4),
                "max": 80,
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_tick_prints_each_decision_once(nasa_config: Path, prometheus_nasa: PrometheusWithTrace) -> None:
    from typer.testing import CliRunner

    from autoscaler.cli.common import CliState
    from autoscaler.cli.main import app
    from autoscaler.core.clock import ManualClock

    trace = prometheus_nasa.trace
    at = prometheus_nasa.at(int(np.searchsorted(trace.t, datetime(1995, 7, 11, 14, 0, tzinfo=UTC).timestamp())))
    result = CliRunner().invoke(app, ["tick", "-c", str(nasa_config)], obj=CliState(clock=ManualClock(at)))
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    first_reason = out.split("web: ", 2)[-1].split(";")[0]  # the explanation line's first reason
    assert out.count(first_reason) == 1, out  # was 3: console line, table, explanation
    assert "forescale tick at" in out


def test_render_embeds_the_entrypoint_once_and_names_skipped_pools(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "forescale.example.yaml").read_text())
    cfg["pools"].append(
        {"name": "legacy", "query": "q", "nomad": {"job": "legacy-job", "group": "g"}, "capacity_per_node": 1, "max": 3}
    )
    for pool in cfg["pools"]:
        if pool.get("jobspec"):
            pool["jobspec"]["nomad_client_config"] = str(REPO / "nomad.hcl")
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = forescale(["render", "-c", str(path), "-o", str(tmp_path / "jobs")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "skipped pool legacy: no jobspec: section" in " ".join(done.stdout.split())
    (job_file,) = (tmp_path / "jobs").glob("*.nomad.hcl")
    hcl = job_file.read_text()
    first_line = (REPO / "scripts" / "forescale-compose-entrypoint").read_text().splitlines()[0]
    groups = hcl.count('group "')
    assert hcl.count(first_line) == groups  # once per group (was twice: the cleanup task had its own copy)


def test_the_deploy_diff_prints_durations() -> None:
    field = {"Type": "Edited", "Name": "KillTimeout", "Old": "90000000000", "New": "150000000000"}
    task = {"Type": "Edited", "Name": "workers", "Fields": [field], "Objects": []}
    group = {"Type": "Edited", "Name": "ocr", "Fields": [], "Objects": [], "Tasks": [task]}
    changes = plan_changes({"Type": "Edited", "TaskGroups": [group], "Fields": [], "Objects": []}, {})
    assert any("KillTimeout: 1m30s → 2m30s" in c for c in changes), changes


def test_urllib3_retry_warnings_stay_off_the_terminal(tmp_path: Path) -> None:
    configure_logging(False)
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.ERROR for name in QUIET_LIBRARIES)
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = {
        "prometheus": {"url": dead, "timeout": "2s"},
        "nomad": {"address": dead, "retries": 0, "timeout": "2s"},
        "pools": [{"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 3}],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = run_forescale(["plan", "-c", str(path)], timeout=120)
    assert run.code is not None and "Retrying (Retry(" not in run.err, run.err


def test_schedule_file_problems_come_in_one_report(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "rules:\n"
        "  - {name: a, pool: ocr, timezone: UTC, days: mon-fri, window: '25:00-18:00', min: 5}\n"
        "  - {name: b, pool: nope, timezone: UTC, days: mon-fri, window: '09:00-18:00', min: 5}\n"
        "  - {name: c, pool: ocr, days: mon-fri, window: '09:00-18:00', min: 5}\n"
    )
    cfg = {
        "nomad": {"address": "http://127.0.0.1:9"},
        "overrides": {"schedule_file": "s.yaml"},
        "pools": [{"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 3}],
    }
    (tmp_path / "forescale.yaml").write_text(yaml.safe_dump(cfg))
    done = forescale(["config", "check", "--no-env", "forescale.yaml"], tmp_path)
    assert done.returncode == 2
    err = " ".join(done.stderr.split())
    assert "rules[0] (a).window" in err and "rules[1] (b).pool" in err and "rules[2] (c).timezone" in err, err


@pytest.fixture
def diurnal(tmp_path: Path) -> Path:
    path = tmp_path / "diurnal.csv"
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "requests"])
        for i in range(2 * 288):
            t = t0 + 300 * i
            rate = 100 + 80 * np.sin(2 * np.pi * (t % 86400) / 86400)
            w.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), int(rate * 300)])
    return path


def test_backtest_progress_title_and_the_cost_of_floors(diurnal: Path, tmp_path: Path) -> None:
    (tmp_path / "schedule.yaml").write_text(
        "rules:\n  - {name: morning, pool: web, timezone: UTC, days: daily, window: '06:00-09:00', min: 40}\n"
    )
    cfg: dict[str, Any] = {
        "overrides": {"schedule_file": "schedule.yaml", "path": str(tmp_path / "o.json")},
        "pools": [
            {"name": "web", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 10, "max": 80}
        ],
    }
    (tmp_path / "forescale.yaml").write_text(yaml.safe_dump(cfg))
    done = forescale(["backtest", "--trace", str(diurnal), "-c", "forescale.yaml"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "replaying diurnal: 50%" in done.stderr, done.stderr  # plain progress lines into a pipe
    out = " ".join(done.stdout.split())
    assert "floors/pins" in out
    match = re.search(r"forescale\W+([\d,.]+)\W+([\d,.]+)", done.stdout)
    assert match is not None, done.stdout
    total, floors = (float(g.replace(",", "")) for g in match.groups())
    assert 0 < floors < total, done.stdout  # the morning floor costs node-hours above what the forecast needed


def test_a_prometheus_backtest_is_titled_after_its_pool(
    nasa_config: Path, prometheus_nasa: PrometheusWithTrace, tmp_path: Path
) -> None:
    trace = prometheus_nasa.trace
    until = datetime.fromtimestamp(float(trace.t[3 * 288] + trace.step_s), UTC)
    args = ["backtest", "-c", str(nasa_config), "--since", "2d", "--step", "5m", "--until", until.isoformat(), "--json"]
    done = forescale(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trace"] == "pool web"
