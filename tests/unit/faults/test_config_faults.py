"""Fault class 5: numbers and addresses no one means must fail `config check`, in the shape every config error
has: "file, key path (line N): fix" (exit 2, no traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import run_cli

BASE = """\
prometheus:
  url: {prom_url}
nomad:
  address: {nomad_address}
daemon:
  interval: {interval}
pools:
  - name: ocr
    query: sum(rate(ocr_requests_total[5m]))
    nomad: {{job: ml-ocr, group: workers}}
    capacity_per_node: {capacity}
    target_utilization: {utilization}
    min: {min}
    max: {max}
    lead_time: {lead}
"""
GOOD = {
    "prom_url": "http://127.0.0.1:9090",
    "nomad_address": "http://127.0.0.1:4646",
    "interval": "20m",
    "capacity": "10",
    "utilization": "1.0",
    "min": "1",
    "max": "50",
    "lead": "10m",
}
LINES = {
    "prom_url": 2,
    "nomad_address": 4,
    "interval": 6,
    "capacity": 11,
    "utilization": 12,
    "min": 13,
    "max": 14,
    "lead": 15,
}
KEYS = {
    "prom_url": "prometheus.url",
    "nomad_address": "nomad.address",
    "interval": "daemon.interval",
    "capacity": "pools[0] (ocr).capacity_per_node",
    "utilization": "pools[0] (ocr).target_utilization",
    "min": "pools[0] (ocr).min",
    "max": "pools[0] (ocr).max",
    "lead": "pools[0] (ocr).lead_time",
}


def check(tmp_path: Path, capsys: Any, monkeypatch: Any, text: str) -> Any:
    path = tmp_path / "forescale.yaml"
    path.write_text(text, encoding="utf-8")
    return run_cli(["config", "check", str(path)], capsys, monkeypatch), path


def test_the_base_config_is_valid(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    res, _ = check(tmp_path, capsys, monkeypatch, BASE.format(**GOOD))
    assert res.code == 0, res.text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("capacity", ".inf"),
        ("capacity", "1e400"),
        ("capacity", ".nan"),
        ("capacity", "1e300"),
        ("utilization", ".nan"),
        ("min", "true"),
        ("max", "true"),
        ("max", "1e400"),
        ("max", "100000000000000000000"),
        ("capacity", "true"),
        ("interval", ".inf"),
        ("interval", "99999999999999d"),
        ("lead", "99999999999999d"),
        ("lead", "1e400"),
        ("prom_url", "ftp://127.0.0.1:9090"),
        ("prom_url", "file:///etc/passwd"),
        ("prom_url", "127.0.0.1:9090"),
        ("prom_url", "http://"),
        ("nomad_address", "unix:///var/run/nomad.sock"),
        ("nomad_address", "javascript:alert(1)"),
    ],
)
def test_absurd_values_are_rejected_with_key_line_and_fix(
    tmp_path: Path, capsys: Any, monkeypatch: Any, key: str, value: str
) -> None:
    res, path = check(tmp_path, capsys, monkeypatch, BASE.format(**{**GOOD, key: value}))
    assert res.code == 2, f"{KEYS[key]}: {value} was accepted: {res.text}"
    assert f"invalid config {path}" in res.text
    assert f"{KEYS[key]} (line {LINES[key]})" in res.text, res.text


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (BASE.format(**GOOD) + "pools: []\n", "pools (line 16)"),
        (BASE.format(**GOOD).replace("    min: 1\n", "    min: 1\n    min: 30\n"), "pools[0] (ocr).min (line 14)"),
        (
            "nomad:\n  namespace: a\nnomad:\n  namespace: b\n" + BASE.format(**GOOD)[0:0] + "pools: []\n",
            "nomad (line 3)",
        ),
    ],
)
def test_duplicate_keys_are_rejected(tmp_path: Path, capsys: Any, monkeypatch: Any, text: str, where: str) -> None:
    res, _ = check(tmp_path, capsys, monkeypatch, text)
    assert res.code == 2, res.text
    assert where in res.text and "duplicate key" in res.text.lower(), res.text


def test_duplicate_keys_in_a_schedule_file_are_rejected(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    (tmp_path / "schedule.yaml").write_text(
        "rules:\n  - name: open\n    pool: ocr\n    timezone: UTC\n    days: mon-fri\n"
        "    window: '09:00-18:00'\n    min: 5\n    min: 40\n",
        encoding="utf-8",
    )
    text = BASE.format(**GOOD) + "overrides:\n  schedule_file: schedule.yaml\n"
    res, _ = check(tmp_path, capsys, monkeypatch, text)
    assert res.code == 2, res.text
    assert "schedule.yaml" in res.text and "duplicate key" in res.text.lower() and "line 8" in res.text, res.text


@pytest.mark.parametrize(
    "section",
    [
        "nomad:\n  retries: true\n",
        "daemon:\n  listen_port: true\n",
        "predictor:\n  slo_unserved_pct: .nan\n",
        "predictor:\n  slo_unserved_pct: true\n",
        "nomad:\n  ui_url: ftp://nomad.example.com\n",
        "slack:\n  channel: C0123\n  timeout: .inf\n",
    ],
)
def test_other_sections_reject_the_same_mistakes(tmp_path: Path, capsys: Any, monkeypatch: Any, section: str) -> None:
    text = BASE.format(**GOOD).replace("prometheus:\n", section + "prometheus:\n", 1)
    if section.startswith(("nomad:", "daemon:")):  # merge into the existing section instead of a duplicate
        name, body = section.split("\n", 1)
        text = BASE.format(**GOOD).replace(name + "\n", name + "\n" + body, 1)
    res, _ = check(tmp_path, capsys, monkeypatch, text)
    assert res.code == 2, res.text
    assert "(line " in res.text
