"""Fault class 6b (issue 22, item 4), in-process: the one list of configured secrets, and what masks them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from autoscaler.core.settings.secrets import configured_secrets
from autoscaler.core.text import RedactFilter, forget_secrets, redact, remember_secrets, safe
from tests.helpers import make_config, pool_dict


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_every_configured_secret_is_collected_from_one_walk() -> None:
    cfg = make_config(
        pool_dict(
            "ocr",
            nodes={
                "provider": "command",
                "node_class": "gpu",
                "command": {"path": "/bin/true", "env": {"DEPLOY_TOKEN": "deploy-token-value", "REGION": "eu"}},
            },
        ),
        pool_dict(
            "asr",
            nodes={
                "provider": "aws_asg",
                "node_class": "gpu",
                "aws": {"asg_name": "g", "endpoint_url": "http://admin:endpoint-pass@127.0.0.1:5000"},
            },
        ),
        prometheus={"url": "https://u:prom-password@prom.example.com", "headers_env": {"Authorization": "PROM_AUTH"}},
        nomad={"address": "https://nomad.example.com:4646", "token_env": "MY_NOMAD_TOKEN"},
        slack={"channel": "C1", "token_env": "MY_SLACK"},
    )
    env = {
        "MY_NOMAD_TOKEN": "nomad-token-value",
        "PROM_AUTH": "Bearer prom-bearer-value",
        "MY_SLACK": "xoxb-slack-token-value",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID0001",
        "AWS_SESSION_TOKEN": "session-token-value",
        "UNRELATED": "not-configured-anywhere",
    }
    found = configured_secrets(cfg, env)
    for value in (
        "deploy-token-value",
        "endpoint-pass",
        "prom-password",
        "nomad-token-value",
        "Bearer prom-bearer-value",
        "prom-bearer-value",
        "xoxb-slack-token-value",
        "AKIAEXAMPLEKEYID0001",
        "session-token-value",
    ):
        assert value in found, value
    assert "eu" not in found  # too short to mask without garbling output
    assert "not-configured-anywhere" not in found


def test_remembered_secrets_are_masked_in_every_safe_text() -> None:
    remember_secrets(["deploy-token-value"])
    assert safe("auth failed: token deploy-token-value") == "auth failed: token [redacted]"
    assert "deploy-token-value" not in redact(json.dumps({"error": "x deploy-token-value y"}))


@pytest.mark.parametrize(
    "line",
    [
        "Sending http request: <AWSPreparedRequest headers={'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=AKIAEXAMPLEKEYID0001/20261207/eu-west-1/autoscaling/aws4_request, Signature=abc', "
        "'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEXAMPLE'}>",
        "CanonicalRequest:\nPOST\n/\n\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE\n",
    ],
)
def test_library_debug_lines_lose_their_credentials(line: str) -> None:
    cleaned = redact(line)
    assert "AKIAEXAMPLEKEYID0001" not in cleaned and "IQoJb3JpZ2luX2VjEXAMPLE" not in cleaned


def test_the_log_filter_masks_json_logs_too() -> None:
    from pythonjsonlogger.json import JsonFormatter

    remember_secrets(["deploy-token-value"])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter("{message}", style="{"))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    try:
        log.warning("command failed: %s", "stderr: deploy-token-value")
    finally:
        log.removeHandler(handler)
    assert json.loads(out.getvalue())["message"] == "command failed: stderr: [redacted]"
