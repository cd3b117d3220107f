"""Fault class 6: secrets never reach an output, a file or Slack — whatever path they were put in.

Canary secrets (``tests.fixtures.faults.CANARIES``) go into every place a user might put one: URL credentials in
``prometheus.url``/``nomad.address``/``nomad.ui_url``, tokens in the environment, a token pasted where an env var
*name* belongs, ``slack.token`` in the file. Each case then searches every output for them: stdout, stderr, the
audit log, what Slack received, rendered job files and the daemon's /healthz and /metrics.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import REPO
from tests.fakes.hostile import Answer
from tests.fakes.slack import FakeSlack
from tests.fixtures.faults import (
    CANARY_NOMAD_TOKEN,
    CANARY_PROM_AUTH,
    CANARY_SLACK_TOKEN,
    CANARY_URL_PASSWORD,
    CANARY_WEBHOOK_SECRET,
    FaultWorld,
    assert_no_canary,
    run_forescale,
)
from tests.helpers import free_port, http_get


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=CANARY_SLACK_TOKEN, webhook_secret=CANARY_WEBHOOK_SECRET) as server:
        yield server


def with_creds(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://canaryuser:{CANARY_URL_PASSWORD}@{rest}"


def config(world: FaultWorld, fake_slack: FakeSlack, **over: Any) -> dict[str, Any]:
    cfg = world.base_config()
    cfg["slack"] = {"channel": "C0123OPS", "base_url": fake_slack.base_url, "async_delivery": False, "timeout": "2s"}
    for section, values in over.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


ENV = {"SLACK_BOT_TOKEN": CANARY_SLACK_TOKEN, "FAULT_NOMAD_TOKEN": CANARY_NOMAD_TOKEN, "PROM_AUTH": CANARY_PROM_AUTH}


def outputs(world: FaultWorld, slack: FakeSlack, *runs: Any) -> list[str]:
    audit = world.tmp / "audit.jsonl"
    texts = [r.out for r in runs] + [r.err for r in runs]
    texts.append(audit.read_text() if audit.exists() else "")
    texts += [str(p) for p in slack.posted]
    return texts


@pytest.mark.parametrize("command", [["tick"], ["plan"], ["tick", "--json"], ["--debug", "tick"]])
def test_prometheus_url_credentials_never_leak(fault_world: FaultWorld, slack: FakeSlack, command: list[str]) -> None:
    fault_world.script.answer = lambda _req: Answer(500, "upstream timed out", content_type="text/plain")
    cfg = config(fault_world, slack, prometheus={"url": with_creds(fault_world.prometheus.url)})
    cfg["prometheus"]["headers_env"] = {"Authorization": "PROM_AUTH"}
    args = (
        [*command[:-1], command[-1], "-c", str(fault_world.write(cfg))]
        if command[0] == "--debug"
        else [*command, "-c", str(fault_world.write(cfg))]
    )
    run = run_forescale(args, env=ENV)
    assert run.code in (0, 1), run.text
    assert "127.0.0.1" in run.text  # the address is still named, only the credentials are hidden
    assert_no_canary(*outputs(fault_world, slack, run))


@pytest.mark.parametrize("command", [["tick"], ["plan"]])
def test_nomad_address_credentials_never_leak(fault_world: FaultWorld, slack: FakeSlack, command: list[str]) -> None:
    dead = free_port()
    cfg = config(fault_world, slack, nomad={"address": with_creds(f"http://127.0.0.1:{dead}")})
    run = run_forescale([*command, "-c", str(fault_world.write(cfg))], env=ENV)
    assert run.code == 1, run.text
    assert f"127.0.0.1:{dead}" in run.text
    assert_no_canary(*outputs(fault_world, slack, run))


def test_nomad_ui_url_credentials_never_reach_slack(fault_world: FaultWorld, slack: FakeSlack) -> None:
    fault_world.script.value = lambda t, end: 150.0
    cfg = config(fault_world, slack, nomad={"ui_url": with_creds("https://nomad.example.com")})
    run = run_forescale(["tick", "-c", str(fault_world.write(cfg))], env=ENV)
    assert run.code == 0, run.text
    assert slack.posted, "the change was not posted"
    assert_no_canary(*outputs(fault_world, slack, run))


def test_a_rejected_token_is_never_echoed(fault_world: FaultWorld, slack: FakeSlack) -> None:
    fault_world.nomad.enable_acl("management")
    cfg = config(fault_world, slack)
    run = run_forescale(["tick", "-c", str(fault_world.write(cfg))], env=ENV)
    assert run.code == 1 and "ACL token not found" in run.text
    assert_no_canary(*outputs(fault_world, slack, run))


@pytest.mark.parametrize("field", ["token_env", "webhook_url_env"])
def test_a_token_pasted_as_a_slack_env_var_name_is_never_echoed(
    fault_world: FaultWorld, slack: FakeSlack, field: str
) -> None:
    value = (
        CANARY_SLACK_TOKEN
        if field == "token_env"
        else f"https://hooks.slack.com/services/T0/B0/{CANARY_WEBHOOK_SECRET}"
    )
    cfg = config(fault_world, slack, slack={field: value})
    path = fault_world.write(cfg)
    runs = [run_forescale([*cmd, "-c", str(path)], env=ENV) for cmd in (["notify", "test"], ["tick"])]
    runs.append(run_forescale(["config", "check", str(path)], env=ENV))
    assert runs[-1].code == 2, runs[-1].text  # not an env var name: config check says so
    assert_no_canary(*outputs(fault_world, slack, *runs))


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("nomad", "token_env", CANARY_NOMAD_TOKEN),
        ("prometheus", "headers_env", {"Authorization": CANARY_PROM_AUTH}),
        ("prometheus", "url", with_creds("http://127.0.0.1:bad-port")),
    ],
)
def test_secrets_in_the_wrong_config_key_are_never_echoed(
    fault_world: FaultWorld, slack: FakeSlack, section: str, field: str, value: Any
) -> None:
    cfg = config(fault_world, slack)
    cfg[section][field] = value
    path = fault_world.write(cfg)
    runs = [run_forescale(["config", "check", str(path)], env=ENV), run_forescale(["tick", "-c", str(path)], env=ENV)]
    assert runs[0].code == 2, runs[0].text
    assert_no_canary(*outputs(fault_world, slack, *runs))


@pytest.mark.parametrize("secret_key", ["token", "webhook_url"])
def test_render_self_never_writes_a_secret_into_the_job(
    fault_world: FaultWorld, slack: FakeSlack, secret_key: str
) -> None:
    cfg = config(fault_world, slack, prometheus={"url": with_creds("https://prometheus.example.com")})
    cfg["nomad"]["address"] = with_creds("https://nomad.example.com:4646")
    cfg["pools"][0]["jobspec"] = {"image": "registry.example.com/ml/ocr:1.4.2", "workers_per_gpu": 2}
    cfg["slack"][secret_key] = (
        CANARY_SLACK_TOKEN
        if secret_key == "token"
        else f"https://hooks.slack.com/services/T0/B0/{CANARY_WEBHOOK_SECRET}"
    )
    out_dir = fault_world.tmp / "jobs"
    run = run_forescale(["render", "--self", "-c", str(fault_world.write(cfg)), "-o", str(out_dir)], env=ENV)
    assert run.code == 0, run.text
    job = out_dir / "forescale.nomad.hcl"
    files = [p.read_text() for p in out_dir.glob("*")] if out_dir.exists() else []
    assert_no_canary(run.out, run.err, *files)
    assert "nomadVar" in job.read_text()
    env_name = "SLACK_BOT_TOKEN" if secret_key == "token" else "SLACK_WEBHOOK_URL"
    assert env_name in job.read_text()


def test_the_daemon_never_serves_or_prints_a_secret(fault_world: FaultWorld, slack: FakeSlack) -> None:
    dead = free_port()
    port = free_port()
    cfg = config(
        fault_world,
        slack,
        nomad={"address": with_creds(f"http://127.0.0.1:{dead}")},
        prometheus={"url": with_creds(fault_world.prometheus.url)},
        daemon={"listen_port": port, "interval": "20m"},
    )
    path = fault_world.write(cfg)
    log = fault_world.tmp / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run", "-c", str(path)],
            stdout=out,
            stderr=out,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **ENV},
        )
    bodies: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http_get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                threading.Event().wait(0.2)
                continue
            threading.Event().wait(3)  # its first tick (or lock attempt) has met the unreachable Nomad
            bodies += [http_get(f"http://127.0.0.1:{port}/healthz")[1], http_get(f"http://127.0.0.1:{port}/metrics")[1]]
            break
        assert bodies, "the daemon never served /healthz"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert_no_canary(*bodies, log.read_text("utf-8", "replace"), *outputs(fault_world, slack))


def test_webhook_urls_are_redacted_in_notify_test(tmp_path: Path, slack: FakeSlack) -> None:
    """Held already: the webhook transport redacts its own URL."""
    cfg = {
        "slack": {"mode": "webhook", "timeout": "2s"},
        "pools": [
            {"name": "ocr", "query": "q", "nomad": {"job": "ml-ocr", "group": "w"}, "capacity_per_node": 1, "max": 3}
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    url = slack.base_url.replace("/api/", "") + slack.webhook_path.replace(CANARY_WEBHOOK_SECRET, "wrong" + "Hook")
    url = url.replace("wrongHook", CANARY_WEBHOOK_SECRET + "x")
    run = run_forescale(["notify", "test", "-c", str(path)], env={"SLACK_WEBHOOK_URL": url})
    assert run.code == 1, run.text
    assert_no_canary(run.out, run.err)
