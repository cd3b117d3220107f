"""Fault class 6b (issue 22, item 4): secrets on the new surfaces — the node providers.

* ``--debug`` never lets botocore or urllib3 print the AWS access key id or session token;
* ``config check --json`` never prints the password of ``nodes.aws.endpoint_url``;
* a ``nodes.command.env`` value that the command echoes on stderr is masked in the error, on the console, in the
  audit log and in Slack: forescale knows the value, so it never repeats it.

Every value forescale knows comes from one function (``core.settings.secrets.configured_secrets``).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.slack import FakeSlack
from tests.fixtures.faults import CANARY_SLACK_TOKEN, CANARY_WEBHOOK_SECRET, FaultWorld, run_forescale
from tests.fixtures.moto import MotoServer

AWS_KEY_ID = "AKIACANARY5ECRET0D7C"
AWS_SECRET = "canary/aws/5ecret/access/key/0d7c0d7c0d7c0d7c0d7c"
AWS_SESSION = "IQoJcanarySess5ecretToken0d7c0d7c0d7cFwoGZXIvYXdz"
COMMAND_SECRET = "deploy-5ecret-0d7c-canary"
ENDPOINT_PASSWORD = "endpointPa55-5ecret"
ALL = (AWS_KEY_ID, AWS_SECRET, AWS_SESSION, COMMAND_SECRET, ENDPOINT_PASSWORD, "5ecret")


def assert_clean(*texts: str) -> None:
    for text in texts:
        for canary in ALL:
            assert canary not in text, f"{canary!r} leaked:\n{text[:3000]}"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=CANARY_SLACK_TOKEN, webhook_secret=CANARY_WEBHOOK_SECRET) as server:
        yield server


def node_pool(world: FaultWorld, nodes: dict[str, Any]) -> dict[str, Any]:
    cfg = world.base_config()
    cfg["pools"][0]["nodes"] = {"node_class": "gpu", **nodes}
    return cfg


def test_debug_logs_never_print_aws_credentials(fault_world: FaultWorld, moto_server: MotoServer) -> None:
    fault_world.script.value = lambda t, end: 150.0
    cfg = node_pool(
        fault_world,
        {"provider": "aws_asg", "aws": {"asg_name": "gpu-ocr", "region": "eu-west-1", "endpoint_url": moto_server.url}},
    )
    env = {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    run = run_forescale(["--debug", "tick", "-c", str(fault_world.write(cfg))], env=env, timeout=120)
    assert run.code in (0, 1), run.text
    assert "DEBUG" in run.err, "--debug printed no debug line at all"
    assert_clean(run.out, run.err, (fault_world.tmp / "audit.jsonl").read_text())


def test_config_check_json_never_prints_the_endpoint_password(fault_world: FaultWorld) -> None:
    cfg = node_pool(
        fault_world,
        {
            "provider": "aws_asg",
            # A non-loopback endpoint (TEST-NET-1: never contacted, config check calls nothing), so that the
            # check names the key — and must still not print the password.
            "aws": {"asg_name": "gpu-ocr", "endpoint_url": f"http://admin:{ENDPOINT_PASSWORD}@192.0.2.1:9"},
        },
    )
    path = fault_world.write(cfg)
    for args in (["config", "check", "--json", str(path)], ["config", "check", str(path)]):
        run = run_forescale(args)
        assert run.code is not None and "Traceback" not in run.err, run.text
        assert "endpoint_url" in run.text
        assert_clean(run.out, run.err)


def test_a_command_env_value_echoed_on_stderr_is_masked_everywhere(fault_world: FaultWorld, slack: FakeSlack) -> None:
    fault_world.script.value = lambda t, end: 150.0
    script = fault_world.tmp / "provider.sh"
    script.write_text('#!/bin/sh\necho "auth failed with token $DEPLOY_TOKEN" >&2\nexit 3\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    cfg = node_pool(
        fault_world, {"provider": "command", "command": {"path": str(script), "env": {"DEPLOY_TOKEN": COMMAND_SECRET}}}
    )
    cfg["slack"] = {"channel": "C0123OPS", "base_url": slack.base_url, "async_delivery": False, "timeout": "2s"}
    path = fault_world.write(cfg)
    env = {"SLACK_BOT_TOKEN": CANARY_SLACK_TOKEN, "FAULT_NOMAD_TOKEN": "x"}
    runs = [run_forescale([*args, "-c", str(path)], env=env, timeout=120) for args in (["tick"], ["tick", "--json"])]
    audit = (fault_world.tmp / "audit.jsonl").read_text()
    texts = [r.out + r.err for r in runs] + [audit] + [json.dumps(m) for m in slack.posted]
    assert any("auth failed with token" in t for t in texts), "the command's stderr should still be reported"
    assert any("[redacted]" in t for t in texts), texts[0][:2000]
    assert "auth failed with token [redacted]" in audit
    assert_clean(*texts)
