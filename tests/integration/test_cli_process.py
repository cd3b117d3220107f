"""The CLI as a user meets it: help, demo, config check, and one-line errors (no tracebacks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests import REPO

runner = CliRunner()


def forescale(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a process (main() maps errors to exit codes)."""
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("command", [[], ["demo"], ["tick"], ["plan"], ["run"], ["config", "check"]])
def test_help_describes_every_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_demo_prints_decisions_with_reasons_and_a_summary() -> None:
    result = runner.invoke(app, ["demo", "--days", "1", "--pace", "0"])
    assert result.exit_code == 0, result.output
    assert "forescale demo" in result.output
    assert "forecast" in result.output and "observed" in result.output and "→" in result.output
    assert "node-hours" in result.output and "scale actions" in result.output
    # the simulated cluster's three counts: every line shows placed and queued, scale-ups when nodes are ready
    assert "placed, 0 queued)" in result.output and "queued while booting, ready at" in result.output
    assert "booting)" in result.output  # node-hours spent booting, in the summary


def test_config_check_accepts_the_example() -> None:
    result = forescale("config", "check", str(REPO / "forescale.example.yaml"))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


def test_config_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "pools:\n  - name: ocr\n    query: up\n    nomad: {job: ml-ocr, group: w}\n"
        "    capacity_per_node: -1\n    max: 10\n    lead_tim: 5m\n"
    )
    result = forescale("config", "check", str(bad))
    assert result.returncode == 2
    assert f"invalid config {bad}" in result.stderr
    assert "pools[0] (ocr).capacity_per_node (line 5)" in result.stderr
    assert "did you mean 'lead_time'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    result = forescale("plan", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = forescale("--debug", "plan", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_unknown_pool_is_a_clear_error() -> None:
    result = forescale("plan", "--config", str(REPO / "forescale.example.yaml"), "--pool", "nope")
    assert result.returncode == 2
    assert "unknown pool 'nope'" in result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "forescale 0." in result.output


def test_nothing_wraps_into_a_pipe(tmp_path: Path) -> None:
    """A long line stays one line when stdout is a pipe (Rich would fold it at 80 columns): grep-able output."""
    import os

    from tests.cli_helpers import write_config

    path = write_config(tmp_path)
    long_reason = "a reason long enough to pass the eighty columns of a default terminal " * 2
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"FORESCALE_CONFIG": str(path)}
    args = ["override", "set", "ocr", "--pin", "5", "--for", "1h", "--by", "alice", "--wait", "0", "-r", long_reason]
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("set ov-") and first.endswith(long_reason.strip())
    listed = subprocess.run(
        [sys.executable, "-m", "autoscaler", "override", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    row = next(line for line in listed.stdout.splitlines() if "alice" in line)
    assert long_reason.strip() in row  # the table keeps its natural width: the reason is not folded


HEAVY = ("numpy", "sklearn", "scipy", "pydantic", "yaml", "slack_sdk", "nomad", "apscheduler", "matplotlib", "boto3",
         "google", "azure", "grpc")  # the [gcp] and [azure] extras load only when a pool uses them


@pytest.mark.parametrize("command", [["--help"], ["override", "set", "--help"], ["backtest", "--help"]])
def test_start_up_imports_nothing_heavy(command: list[str]) -> None:
    """Shell completion and --help stay fast: command modules import their libraries when they run.
    (Typer itself imports pydantic to build a subcommand's parameters; forescale's own modules do not.)"""
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['forescale', *{command!r}]\n"
        "try:\n    runpy.run_module('autoscaler', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('LOADED:' + ','.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    loaded = set(next(line for line in done.stdout.splitlines() if line.startswith("LOADED:"))[7:].split(","))
    allowed = {"pydantic", "pydantic_core"} if command != ["--help"] else set()
    assert loaded & set(HEAVY) <= allowed, sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", [["override", "list"], ["schedule", "show"], ["config", "check"]])
def test_commands_that_never_forecast_do_not_load_scikit_learn(command: list[str], tmp_path: Path) -> None:
    """scikit-learn (with scipy) costs seconds at start: only commands that forecast may load it."""
    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(
        f"overrides: {{path: {tmp_path / 'overrides.json'}}}\n"
        "pools:\n  - name: web\n    query: sum(rate(x[5m]))\n    nomad: {job: web, group: workers}\n"
        "    capacity_per_node: 5\n    max: 80\n"
    )
    args = [*command, str(cfg)] if command[0] == "config" else [*command, "-c", str(cfg)]
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['forescale', *{args!r}]\n"
        "try:\n    runpy.run_module('autoscaler', run_name='__main__')\nexcept SystemExit as exc:\n"
        "    print('EXIT:', exc.code)\n"
        "print('LOADED:' + ','.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "EXIT: 0" in done.stdout or "EXIT: None" in done.stdout, done.stdout + done.stderr
    loaded = set(next(line for line in done.stdout.splitlines() if line.startswith("LOADED:"))[7:].split(","))
    assert not loaded & {"sklearn", "scipy", "matplotlib"}, sorted(loaded & {"sklearn", "scipy", "matplotlib"})
