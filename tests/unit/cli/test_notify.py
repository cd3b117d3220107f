"""`forescale notify test`: one message, and exactly what Slack answered (against the local fake)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests.fakes.slack import rate_limited, server_error
from tests.helpers import pool_dict

runner = CliRunner()
CLEAN_ENV = {"SLACK_BOT_TOKEN": "", "SLACK_WEBHOOK_URL": ""}


def write_config(tmp_path: Path, slack: dict | None) -> Path:
    data: dict = {"pools": [pool_dict("ocr"), pool_dict("asr")]}
    if slack is not None:
        data["slack"] = slack
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def invoke(cfg: Path, **env: str):
    return runner.invoke(app, ["notify", "test", "--config", str(cfg)], env={**CLEAN_ENV, **env})


def bot_section(fake, **over) -> dict:
    return {"channel": "#ops-scaling", "base_url": fake.base_url, "timeout": "2s", "max_retry_time": "5s", **over}


def test_bot_mode_reports_the_workspace_channel_and_ts(tmp_path, fake_slack) -> None:
    cfg = write_config(tmp_path, bot_section(fake_slack))
    result = invoke(cfg, SLACK_BOT_TOKEN=fake_slack.token)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Slack (bot): posting to channel #ops-scaling with the bot token from $SLACK_BOT_TOKEN"
    assert lines[1] == "auth.test: ok — authenticated as forescale in workspace Acme (https://acme.slack.com/)"
    assert lines[2] == "chat.postMessage: ok — posted to C0123OPS (ts 1700000000.000001)"
    (posted,) = fake_slack.posted
    assert posted["channel"] == "#ops-scaling"
    assert posted["text"].startswith("forescale test message from ")
    assert posted["text"].endswith(": scaling changes of ocr, asr will be posted here.")
    assert posted["blocks"][0]["text"]["text"].startswith(":wave: *forescale test message* from `")
    assert fake_slack.token not in result.output


def test_webhook_mode(tmp_path, fake_slack) -> None:
    cfg = write_config(tmp_path, {"timeout": "2s", "max_retry_time": "5s"})
    result = invoke(cfg, SLACK_WEBHOOK_URL=fake_slack.webhook_url)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Slack (webhook): posting to the incoming webhook from $SLACK_WEBHOOK_URL (host 127.0.0.1:{fake_slack.port})",
        "incoming webhook: ok — Slack answered 'ok'",
    ]
    assert len(fake_slack.posted) == 1
    assert "XXXXsecretXXXX" not in result.output


def test_invalid_auth_says_which_env_var_to_check(tmp_path, fake_slack) -> None:
    cfg = write_config(tmp_path, bot_section(fake_slack))
    result = invoke(cfg, SLACK_BOT_TOKEN="xoxb-9999-not-the-right-one")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[1] == "auth.test: error invalid_auth (HTTP 200)"
    assert lines[2].startswith("fix: check $SLACK_BOT_TOKEN: Slack does not accept this token")
    assert "xoxb-9999-not-the-right-one" not in result.output
    assert fake_slack.calls("/api/chat.postMessage") == []


def test_channel_not_found_says_to_invite_the_bot(tmp_path, fake_slack) -> None:
    cfg = write_config(tmp_path, bot_section(fake_slack, channel="#nope"))
    result = invoke(cfg, SLACK_BOT_TOKEN=fake_slack.token)
    assert result.exit_code == 1
    assert "chat.postMessage: error channel_not_found (HTTP 200)" in result.output
    assert "fix: invite the bot to the channel (/invite @your-bot in #nope) or fix slack.channel" in result.output


def test_retries_are_reported_and_a_final_5xx_fails(tmp_path, fake_slack) -> None:
    fake_slack.script("/api/chat.postMessage", rate_limited(0))
    cfg = write_config(tmp_path, bot_section(fake_slack))
    ok = invoke(cfg, SLACK_BOT_TOKEN=fake_slack.token)
    assert ok.exit_code == 0, ok.output
    assert "chat.postMessage: ok after 1 retries (rate_limited) — posted to C0123OPS" in ok.output
    fake_slack.script(fake_slack.webhook_path, *[server_error()] * 50)
    hook_cfg = write_config(tmp_path, {"timeout": "1s", "max_retry_time": "1s"})  # no time for any retry
    bad = invoke(hook_cfg, SLACK_WEBHOOK_URL=fake_slack.webhook_url)
    assert bad.exit_code == 1
    assert "incoming webhook: error server_error (HTTP 500)" in bad.output
    assert "fix: Slack had a server error" in bad.output


def test_missing_secret_and_missing_section(tmp_path) -> None:
    cfg = write_config(tmp_path, {"channel": "#ops"})
    result = invoke(cfg)
    assert result.exit_code == 1
    assert "neither $SLACK_BOT_TOKEN nor $SLACK_WEBHOOK_URL is set" in result.output
    none = write_config(tmp_path, None)
    result = invoke(none)
    assert result.exit_code == 1
    assert "no 'slack:' section in" in result.output and "docs/slack.md" in result.output
