"""Issue 22, item 11: `config check` never says "ok" for a Slack section that cannot post in this environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.cli_helpers import run_cli

POOL = {"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 30}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "forescale.yaml"
    cfg = {"nomad": {"address": "http://127.0.0.1:9"}, "slack": {"channel": "C0123"}, "pools": [POOL]}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_slack_without_its_env_var_is_a_problem(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    res = run_cli(["config", "check", str(write(tmp_path))], capsys, monkeypatch)
    assert res.code == 2, res.text
    assert "ok" not in res.text.split()
    assert "slack:" in res.text and "$SLACK_BOT_TOKEN" in res.text and "console-only" in res.text


def test_no_env_checks_the_file_only(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    res = run_cli(["config", "check", "--no-env", str(write(tmp_path))], capsys, monkeypatch)
    assert res.code == 0, res.text


def test_slack_with_its_token_is_ok(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    res = run_cli(["config", "check", str(write(tmp_path))], capsys, monkeypatch)
    assert res.code == 0, res.text
    assert "is valid" in res.text
