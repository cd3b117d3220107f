"""Helpers shared by the overrides tests (no tests here): configs on disk and running the real CLI entry point."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from autoscaler.core.ports import Clock

POOLS_YAML = """
pools:
  - name: ocr
    query: sum(rate(ocr_requests_total[5m]))
    nomad: {job: ocr, group: workers}
    capacity_per_node: 10
    min: 2
    max: 100
    lead_time: 10m
  - name: face
    query: sum(rate(face_requests_total[5m]))
    nomad: {job: face, group: workers}
    capacity_per_node: 5
    min: 1
    max: 20
    lead_time: 15m
"""


def write_config(tmp_path: Path, schedule: str | None = None, overrides: str = "") -> Path:
    """forescale.yaml (+ schedule.yaml) in ``tmp_path``; the store and audit log live there too.

    ``daemon.listen_port`` is a port nothing listens on, so `override set/clear` never find a daemon (of
    another test run) to wait for.
    """
    from tests.helpers import free_port

    lines = ["audit_log: audit.jsonl", "daemon:", f"  listen_port: {free_port()}"]
    lines += ["overrides:", "  path: overrides.json"]
    if schedule is not None:
        (tmp_path / "schedule.yaml").write_text(dedent(schedule), encoding="utf-8")
        lines.append("  schedule_file: schedule.yaml")
    lines += ["  " + line for line in dedent(overrides).splitlines() if line.strip()]
    path = tmp_path / "forescale.yaml"
    path.write_text("\n".join(lines) + "\n" + POOLS_YAML, encoding="utf-8")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout + stderr with Rich's line wrapping undone, for substring assertions."""
        return " ".join((self.out + " " + self.err).split())


def run_cli(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock | None = None,
) -> CliResult:
    """Run ``forescale ARGS`` through the console-script entry point (errors → one line + exit code).

    ``clock`` replaces the system clock (through the CLI's context, as the CLI itself gets it)."""
    from autoscaler.cli.common import CliState
    from autoscaler.cli.main import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["forescale", *args])
    code = 0
    try:
        main(CliState(clock=clock) if clock is not None else None)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
