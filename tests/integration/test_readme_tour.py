"""The README's tour, command by command, as a new SRE would run it: the example config copied and pointed at a
real Prometheus (backfilled so that *now* lies inside real traffic), the fake Nomad through ``$NOMAD_ADDR`` and
the fake Slack. The pools start in shadow: the daemon decides, audits, posts "would scale" and reacts to
overrides within seconds, and Nomad never receives a single write.

The commands are read from README.md itself, so the tour cannot drift from what the test runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import REPO
from tests.fakes.nomad import FakeNomad
from tests.fakes.slack import FakeSlack
from tests.fixtures.prometheus import PrometheusWithTrace
from tests.helpers import free_port, http_get

WRITES = ("POST", "PUT", "DELETE", "PATCH")


def tour_commands() -> list[str]:
    """Every command line in the README's tour (shell blocks of "## A five-minute tour"), comments removed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    lines = []
    for block in blocks:
        for raw in block.splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def edit_like_an_sre(path: Path, prom: PrometheusWithTrace, slack: FakeSlack, port: int) -> None:
    """"Edit prometheus.url and the pools": point the copied example at this test's servers."""
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    capacity = round(float(prom.trace.rps.max()) / 50, 4)
    cfg["prometheus"]["url"] = prom.url
    cfg["nomad"] = {**(cfg.get("nomad") or {}), "retries": 0, "timeout": "5s"}
    cfg["daemon"]["listen_port"] = port
    cfg["slack"] = {"channel": "C0123OPS", "base_url": slack.base_url, "timeout": "2s"}
    for pool in cfg["pools"]:
        pool["query"] = prom.query
        pool["capacity_per_node"] = capacity
        pool["jobspec"] = None
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = shlex.split(line)
    assert args[0] == "forescale", line
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def wait_healthy(port: int, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """/healthz once the first tick has finished (bounded)."""
    for _ in range(600):  # each attempt waits at most 0.1 s
        try:
            status, body = http_get(f"http://127.0.0.1:{port}/healthz")
            if status == 200 and "pools" in json.loads(body):
                return dict(json.loads(body))
        except (urllib.error.URLError, ConnectionError):
            pass
        if proc.poll() is not None:
            break
        threading.Event().wait(0.1)
    raise AssertionError(f"the daemon never became healthy: {proc.stdout.read() if proc.poll() is not None else ''}")


def test_the_readme_tour_in_shadow_never_writes_to_nomad(
    prometheus_live: PrometheusWithTrace, fake_nomad: FakeNomad, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    for job in ("ml-ocr", "ml-face-match"):
        fake_nomad.add_job(job, groups={"workers": 3}, scaling={"workers": (1, 100)})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "SLACK_", "FORESCALE_", "COLUMNS"))}
    env["SLACK_BOT_TOKEN"] = fake_slack.token
    commands = tour_commands()
    assert [c.split()[:3] for c in commands] == [
        ["cp", "forescale.example.yaml", "forescale.yaml"],
        ["export", "NOMAD_ADDR=https://nomad.example.com:4646", "NOMAD_TOKEN=…"],
        ["forescale", "config", "check"],
        ["forescale", "plan", "-c"],
        ["forescale", "run", "-c"],
        ["forescale", "override", "set"],
        ["forescale", "override", "clear"],
    ], "the README's tour changed: update this test with it"
    daemon: subprocess.Popen[str] | None = None
    outputs: dict[str, str] = {}
    try:
        for line in commands:
            verb = line.split()[:2]
            if verb[0] == "cp":
                (tmp_path / "forescale.yaml").write_text((REPO / "forescale.example.yaml").read_text())
                edit_like_an_sre(tmp_path / "forescale.yaml", prometheus_live, fake_slack, port)
            elif verb[0] == "export":
                env["NOMAD_ADDR"] = fake_nomad.address  # the tour's address, pointed at the fake
            elif verb == ["forescale", "run"]:
                assert line.endswith("&")
                args = shlex.split(line.rstrip("&"))
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "autoscaler", *args[1:]],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                health = wait_healthy(port, daemon)
                assert {p: s["status"] for p, s in health["pools"].items()} == {"ocr": "shadow", "face-match": "shadow"}
                assert {p: s["mode"] for p, s in health["pools"].items()} == {"ocr": "shadow", "face-match": "shadow"}
            else:
                done = run(line, tmp_path, env)
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                outputs[" ".join(verb + line.split()[2:3])] = " ".join(done.stdout.split())
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon_out, _ = daemon.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon_out, _ = daemon.communicate()
        else:
            daemon_out = ""
    assert daemon is not None and daemon.returncode == 0, daemon_out

    check = outputs["forescale config check"]
    assert "is valid (2 pool(s): ocr (shadow), face-match (shadow))" in check
    assert f"Nomad: {fake_nomad.address} (from $NOMAD_ADDR)" in check
    plan = outputs["forescale plan -c"]
    assert "forescale plan at" in plan and "ocr" in plan and "face-match" in plan and "forecast" in plan
    pinned = outputs["forescale override set"]
    assert "pinned ocr to 40 until" in pinned and ": Diwali campaign" in pinned
    assert "in effect: the daemon ticked ocr at" in pinned
    assert "would scale 3 → 40 (shadow: Nomad not changed)" in pinned
    cleared = outputs["forescale override clear"]
    assert "returns to the forecast at its next tick, without waiting for the scale-in cooldown" in cleared
    assert "in effect: the daemon ticked ocr at" in cleared

    # The point of shadow: Nomad was read, never written.
    writes = [f"{r.method} {r.path}" for r in fake_nomad.requests if r.method in WRITES]
    assert writes == []
    assert fake_nomad.requests_to("GET", "/v1/job/ml-ocr/scale"), "cooldowns were rebuilt from Nomad's events"
    assert fake_nomad.group_count("ml-ocr", "workers") == 3

    # The daemon audited "would scale", including the override-triggered tick, and said so on the console.
    audit = [json.loads(line) for line in (tmp_path / "forescale-audit.jsonl").read_text().splitlines()]
    decisions = [r for r in audit if r["type"] == "decision"]
    assert decisions and {r["status"] for r in decisions} <= {"shadow", "unchanged"}
    assert any(r["pool"] == "ocr" and r["status"] == "shadow" and r["decision"]["desired"] == 40 for r in decisions)
    assert [r["type"] for r in audit if r["type"].startswith("override_")] == ["override_set", "override_cleared"]
    assert "would scale 3 → 40 (shadow: Nomad not changed)" in daemon_out
    assert "override store changed for pool ocr: ticking it now" in daemon_out

    # Slack heard it all: the shadow wishes and the overrides, each as one sentence.
    texts = [m["text"] for m in fake_slack.posted]
    assert any("ocr would scale 3 → 40 (shadow)" in t for t in texts), texts
    assert any(re.search(r"pinned ocr to 40 until .*: Diwali campaign", t) for t in texts), texts
    assert any("cleared the pin of ocr to 40" in t for t in texts), texts


@pytest.mark.parametrize("fmt", ["json"])
def test_the_daemon_logs_one_json_object_per_line(
    prometheus_live: PrometheusWithTrace, fake_nomad: FakeNomad, tmp_path: Path, fmt: str
) -> None:
    """`run --dry-run --log-format json`: every line of output parses, decisions carry their fields."""
    fake_nomad.add_job("ml-ocr", groups={"workers": 3})
    port = free_port()
    cfg = {
        "prometheus": {"url": prometheus_live.url},
        "nomad": {"address": fake_nomad.address, "retries": 0},
        "daemon": {"listen_port": port},
        "pools": [
            {
                "name": "ocr",
                "query": prometheus_live.query,
                "nomad": {"job": "ml-ocr", "group": "workers"},
                "capacity_per_node": round(float(prometheus_live.trace.rps.max()) / 50, 4),
                "max": 100,
            }
        ],
    }
    (tmp_path / "forescale.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "SLACK_", "FORESCALE_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "-c", "forescale.yaml", "--dry-run", "--log-format", fmt],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(port, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    decision = next(r for r in records if r.get("event") == "decision")
    assert decision["pool"] == "ocr" and decision["status"] in ("shadow", "unchanged")
    assert decision["current"] == 3 and isinstance(decision["reasons"], list)
    messages = [r["message"] for r in records]
    assert any(m.startswith("forescale daemon started") and "ocr (shadow)" in m for m in messages)
    assert any(m.startswith("dry run: every pool in shadow") for m in messages)
    assert "forescale daemon stopped" in messages
    assert [r for r in fake_nomad.requests if r.method in WRITES] == []


def test_a_taken_port_is_one_line_naming_daemon_listen_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = {
            "daemon": {"listen_port": port},
            "nomad": {"address": "http://127.0.0.1:9"},
            "pools": [
                {"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 3}
            ],
        }
        path = tmp_path / "forescale.yaml"
        path.write_text(yaml.safe_dump(cfg))
        done = subprocess.run(
            [sys.executable, "-m", "autoscaler", "run", "-c", str(path)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: daemon.listen_port in {path}: 127.0.0.1:{port} is already in use (another `forescale run`, or "
        "another service); stop that process, or set daemon.listen_port to a free port (0 picks one)"
    )
