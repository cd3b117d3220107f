"""Fault class 8: a hand-edited expiry cannot outlive max_duration, a file name cannot inject a rendered line, and
the Slack TLS error names the server it actually talked to."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from autoscaler.core.clock import ManualClock
from tests.cli_helpers import CliResult, run_cli, write_config
from tests.fakes.hostile import Answer, HostileServer

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def cli(args: list[str], capsys: Any, monkeypatch: Any, at: datetime = NOW) -> CliResult:
    monkeypatch.setenv("COLUMNS", "250")
    return run_cli(args, capsys, monkeypatch, clock=ManualClock(at))


def test_a_hand_edited_expiry_cannot_outlive_max_duration(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    path = write_config(tmp_path)
    set_ = ["override", "set", "ocr", "--pin", "40", "--for", "2h", "--reason", "campaign", "-c", str(path)]
    assert cli(set_, capsys, monkeypatch).code == 0
    for store in (tmp_path / "overrides.json", tmp_path / "overrides.json.last-good"):
        if store.exists():
            doc = json.loads(store.read_text())
            doc["pools"]["ocr"]["active"][0]["expires_at"] = "9999-12-31T23:59:59+00:00"
            store.write_text(json.dumps(doc))
    listed = cli(["override", "list", "-c", str(path)], capsys, monkeypatch)
    assert listed.code == 0, listed.text
    assert "9999" not in listed.text and "12-08" in listed.text  # capped at created + 7d (overrides.max_duration)
    later = cli(["schedule", "show", "-c", str(path)], capsys, monkeypatch, at=NOW + timedelta(days=8))
    assert later.code == 0, later.text
    assert "pinned to 40" not in later.text


def test_a_config_file_name_cannot_inject_a_rendered_line(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    cfg = {
        "prometheus": {"url": "http://prometheus.service.consul:9090"},
        "nomad": {"address": "https://nomad.service.consul:4646"},
        "pools": [
            {
                "name": "ocr",
                "query": "q",
                "nomad": {"job": "ml-ocr", "group": "workers"},
                "capacity_per_node": 10,
                "max": 10,
                "jobspec": {"image": "registry.example.com/ml/ocr:1.4.2", "workers_per_gpu": 2},
            }
        ]
    }
    path = tmp_path / 'forescale\njob "evil" {}\n#.yaml'
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "jobs"
    res = cli(["render", "-c", str(path), "-o", str(out), "--self"], capsys, monkeypatch)
    assert res.code == 0, res.text
    for rendered in out.glob("*.hcl"):
        lines = rendered.read_text().splitlines()
        assert not [line for line in lines if line.startswith('job "evil"')], rendered


def test_the_slack_tls_error_names_the_configured_server(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with HostileServer(lambda _req: Answer(200, {"ok": True}), tls=(str(cert), str(key))) as server:
        cfg = {
            "slack": {"channel": "C0123OPS", "base_url": server.url + "/api/", "timeout": "2s", "max_retry_time": "3s"},
            "pools": [
                {"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "w"}, "capacity_per_node": 1, "max": 2}
            ],
        }
        path = tmp_path / "forescale.yaml"
        path.write_text(yaml.safe_dump(cfg))
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-tls")
        res = cli(["notify", "test", "-c", str(path)], capsys, monkeypatch)
    assert res.code == 1, res.text
    assert f"127.0.0.1:{server.port}" in res.text.split("fix:")[-1]
    assert "slack.com" not in res.text.split("fix:")[-1]
