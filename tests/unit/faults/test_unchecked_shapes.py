"""Fault class 5b (issue 22, item 6): shapes `config check` must see. (The AWS and command reply shapes of the
same item are in the node-provider tests.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_helpers import run_cli

POOL = {"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 30}


@pytest.mark.parametrize(("key", "section"), [("audit_log", None), ("overrides.path", "overrides")])
def test_a_directory_where_a_file_belongs_fails_config_check(
    tmp_path: Path, capsys: Any, monkeypatch: Any, key: str, section: str | None
) -> None:
    (tmp_path / "logs").mkdir()
    cfg: dict[str, Any] = {"nomad": {"address": "http://127.0.0.1:9"}, "pools": [POOL]}
    if section is None:
        cfg["audit_log"] = "logs"
    else:
        cfg[section] = {"path": "logs"}
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = run_cli(["config", "check", str(path)], capsys, monkeypatch)
    assert res.code == 2, res.text
    assert f"{key} ({tmp_path / 'logs'}): is a directory; point it at a file" in res.text
