"""Fault class 7 (files and arguments): one clear line naming the cause and the fix, never a traceback; a broken
override store falls back to its ``.last-good`` copy.

The real CLI entry point runs in-process (``run_cli``): an exception escaping it fails the test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from tests.cli_helpers import CliResult, run_cli, write_config

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NESTED = "[" * 100_000


def cli(args: list[str], capsys: Any, monkeypatch: Any) -> CliResult:
    monkeypatch.setenv("COLUMNS", "200")
    return run_cli(args, capsys, monkeypatch, clock=ManualClock(NOW))


def one_line_error(res: CliResult, *words: str, code: int | None = None) -> None:
    assert res.code != 0 if code is None else res.code == code, res.text
    assert "Traceback" not in res.text
    lines = [line for line in res.err.splitlines() if line.strip()]
    # A bad option value is a Click usage error: "Usage: …", the help hint, then one "Error: …" line.
    usage_error = res.code == 2 and bool(lines) and lines[0].startswith("Usage:")
    usage_error = usage_error and any(line.startswith("Error: ") for line in lines)
    assert lines and (lines[0].startswith("error") or usage_error), res.err
    for word in words:
        assert word in res.text, (word, res.text)


def test_a_config_that_is_not_utf8(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = write_config(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"ocr", "ocr-é".encode("latin-1"), 1))
    one_line_error(cli(["config", "check", str(path)], capsys, monkeypatch), "UTF-8", code=2)


def test_a_schedule_file_that_is_not_utf8(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = write_config(tmp_path, schedule="rules: []\n")
    (tmp_path / "schedule.yaml").write_bytes("rules: [] # é\n".encode("latin-1"))
    one_line_error(cli(["config", "check", str(path)], capsys, monkeypatch), "UTF-8", "schedule.yaml", code=2)


def test_an_absurd_duration_in_a_schedule_rule(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    schedule = (
        "rules:\n  - name: open\n    pool: ocr\n    timezone: UTC\n    days: mon-fri\n"
        "    window: '09:00-18:00'\n    min: 5\n    lead: 99999999999999d\n"
    )
    path = write_config(tmp_path, schedule=schedule)
    one_line_error(cli(["config", "check", str(path)], capsys, monkeypatch), "lead", code=2)


def test_a_deeply_nested_config(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text("pools: " + NESTED + "\n")
    one_line_error(cli(["config", "check", str(path)], capsys, monkeypatch), str(path), code=2)


@pytest.mark.parametrize(
    "expiry", [["--for", "99999999999999d"], ["--for", "9" * 400 + "s"], ["--until", "9999-12-31T23:59:59Z"]]
)
def test_an_expiry_that_overflows(tmp_path: Path, capsys: Any, monkeypatch: Any, expiry: list[str]) -> None:
    path = write_config(tmp_path)
    res = cli(["override", "set", "ocr", "--pin", "5", *expiry, "--reason", "x", "-c", str(path)], capsys, monkeypatch)
    one_line_error(res)
    assert not (tmp_path / "overrides.json").exists()


@pytest.mark.parametrize("at", ["0001-01-01T00:00Z", "9999-12-31T23:59Z"])
def test_plan_at_the_ends_of_time(tmp_path: Path, capsys: Any, monkeypatch: Any, at: str) -> None:
    path = write_config(tmp_path)
    one_line_error(cli(["plan", "-c", str(path), "--at", at], capsys, monkeypatch), "--at")


@pytest.mark.parametrize("command", [["tick"], ["plan"]])
def test_an_audit_log_that_is_a_directory(tmp_path: Path, capsys: Any, monkeypatch: Any, command: list[str]) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("audit_log: audit.jsonl", "audit_log: audit-dir"))
    (tmp_path / "audit-dir").mkdir()
    one_line_error(cli([*command, "-c", str(path)], capsys, monkeypatch), "audit_log", "directory")


def test_an_override_store_of_nested_brackets_is_one_line(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = write_config(tmp_path)
    (tmp_path / "overrides.json").write_text(NESTED)
    one_line_error(cli(["override", "list", "-c", str(path)], capsys, monkeypatch), "overrides.json")


def test_tick_falls_back_to_the_last_good_store(tmp_path: Path, capsys: Any, monkeypatch: Any, fake_nomad: Any) -> None:
    """A pin is set, then the store is wrecked: the tick still obeys the pin (from .last-good) and says so."""
    from tests.fakes.hostile import HostileServer, PrometheusScript

    fake_nomad.add_job("ocr", groups={"workers": 10}, scaling={"workers": (1, 100)})
    fake_nomad.add_job("face", groups={"workers": 2}, scaling={"workers": (1, 20)})
    with HostileServer(PrometheusScript(lambda _t, _e: 50.0)) as prom:
        path = write_config(tmp_path)
        path.write_text(
            f"prometheus: {{url: '{prom.url}'}}\nnomad: {{address: '{fake_nomad.address}', retries: 0}}\n"
            "predictor: {model: trend_lr}\n" + path.read_text()
        )
        assert (
            cli(
                ["override", "set", "ocr", "--pin", "7", "--for", "1h", "--reason", "x", "-c", str(path)],
                capsys,
                monkeypatch,
            ).code
            == 0
        )
        (tmp_path / "overrides.json").write_text(NESTED)
        res = cli(["tick", "-c", str(path), "--json"], capsys, monkeypatch)
    assert res.code == 0, res.text
    pools = {p["pool"]: p for p in json.loads(res.out)["pools"]}
    assert pools["ocr"]["decision"]["desired"] == 7
    assert fake_nomad.group_count("ocr", "workers") == 7
    assert "last-good" in json.dumps(json.loads(res.out)["events"]) or "last-good" in res.err


def test_a_nomad_variable_of_nested_json_is_one_line(
    tmp_path: Path, capsys: Any, monkeypatch: Any, fake_nomad: Any
) -> None:
    fake_nomad.put_variable("forescale/overrides/ocr", {"format": "forescale-overrides/1", "active": NESTED})
    path = write_config(tmp_path, overrides="store: nomad")
    path.write_text(f"nomad: {{address: '{fake_nomad.address}', retries: 0}}\n" + path.read_text())
    one_line_error(cli(["override", "list", "-c", str(path)], capsys, monkeypatch), "forescale/overrides/ocr")
