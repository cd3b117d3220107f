"""build_notifiers, the `slack:` config section and how secrets are resolved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autoscaler.config import load_config
from autoscaler.core.errors import ConfigError, NotifierError
from autoscaler.core.settings.slack import SlackSettings
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.notify.slack.notifier import SlackNotifier
from autoscaler.notify.slack.transport import BotTransport, WebhookTransport
from autoscaler.wiring import build_notifiers
from tests import REPO
from tests.fixtures.slack import sample
from tests.helpers import make_config, pool_dict


def test_console_only_without_a_slack_section(notify_metrics) -> None:
    notifiers = build_notifiers(make_config(pool_dict()), metrics=notify_metrics)
    assert [type(n) for n in notifiers] == [ConsoleNotifier]
    assert build_notifiers(make_config(pool_dict()), console=False) == []


def test_slack_is_added_when_configured(monkeypatch, fake_slack, notify_metrics) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake_slack.token)
    cfg = make_config(pool_dict(), slack={"channel": "C0123OPS", "base_url": fake_slack.base_url})
    console, slack = build_notifiers(cfg, metrics=notify_metrics)
    assert isinstance(console, ConsoleNotifier)
    assert isinstance(slack, SlackNotifier) and isinstance(slack.transport, BotTransport)
    assert console.close(5) is True and slack.close(5) is True


def test_unusable_slack_config_is_logged_counted_and_scaling_goes_on(monkeypatch, notify_metrics, caplog) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    cfg = make_config(pool_dict(), slack={"channel": "C0123OPS"})
    with caplog.at_level(logging.ERROR, logger="forescale.notifiers"):
        notifiers = build_notifiers(cfg, metrics=notify_metrics)
    assert [type(n) for n in notifiers] == [ConsoleNotifier]
    assert "Slack notifications are off: Slack is configured but neither $SLACK_BOT_TOKEN" in caplog.text
    assert sample(notify_metrics, "forescale_notifier_errors_total", notifier="slack", error="not_configured") == 1


def test_mode_resolution() -> None:
    s = SlackSettings(channel="C1")
    bot = s.resolve({"SLACK_BOT_TOKEN": "xoxb-1-2-3", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"})
    assert (bot.mode, bot.channel, bot.source) == ("bot", "C1", "$SLACK_BOT_TOKEN")
    hook = SlackSettings().resolve({"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"})
    assert (hook.mode, hook.source) == ("webhook", "$SLACK_WEBHOOK_URL")
    assert "x" not in repr(hook).replace("mode", "").replace("webhook", "").replace("$SLACK", "")
    forced = SlackSettings(mode="webhook", channel="C1").resolve(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}
    )
    assert forced.mode == "webhook"
    from_file = SlackSettings(channel="C1", token="xoxb-in-file", token_env="NOPE").resolve({})
    assert (from_file.secret, from_file.source) == ("xoxb-in-file", "slack.token")
    assert "xoxb-in-file" not in repr(SlackSettings(channel="C1", token="xoxb-in-file"))


@pytest.mark.parametrize(
    ("settings", "env", "expected"),
    [
        ({}, {}, "neither $SLACK_BOT_TOKEN nor $SLACK_WEBHOOK_URL is set"),
        ({}, {"SLACK_BOT_TOKEN": "xoxb-1"}, "$SLACK_BOT_TOKEN is set but slack.channel is not"),
        ({"channel": "C1"}, {"SLACK_BOT_TOKEN": "https://hooks.slack.com/x"}, "does not look like a Slack bot token"),
        ({"mode": "webhook"}, {"SLACK_BOT_TOKEN": "xoxb-1"}, "slack.mode is 'webhook' but $SLACK_WEBHOOK_URL is empty"),
        ({"token_env": "MY_TOKEN", "channel": "C1", "mode": "bot"}, {}, "$MY_TOKEN is empty"),
        ({}, {"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "$SLACK_WEBHOOK_URL is not a URL"),
    ],
)
def test_resolution_errors_name_the_variable_never_the_value(settings, env, expected) -> None:
    with pytest.raises(NotifierError) as info:
        SlackSettings(**settings).resolve(env)
    assert expected in str(info.value)
    for value in env.values():
        assert value not in str(info.value)


def test_config_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "pools:\n"
        "  - {name: ocr, query: q, nomad: {job: ml-ocr, group: workers}, capacity_per_node: 10, max: 5}\n"
        "slack:\n"
        "  mode: bot\n"
        "  timeout: 10s\n"
        "  max_retry_time: 5s\n"
        "  chanel: '#ops'\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "; ".join(info.value.problems)
    assert "slack.chanel (line 7): unknown key; did you mean 'channel'?" in text
    path.write_text(path.read_text().replace("chanel", "channel"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "max_retry_time (5s) is shorter than timeout (10s)" in str(info.value)


def test_webhook_transport_chosen_from_env(fake_slack, notify_metrics) -> None:
    cfg = make_config(pool_dict(), slack={})
    n = SlackNotifier.from_config(cfg, metrics=notify_metrics, environ={"SLACK_WEBHOOK_URL": fake_slack.webhook_url})
    assert isinstance(n.transport, WebhookTransport)
    with pytest.raises(NotifierError, match="no 'slack:' section"):
        SlackNotifier.from_config(make_config(pool_dict()))




def test_the_yaml_in_docs_slack_md_is_valid() -> None:
    import re

    import yaml

    doc = (REPO / "docs" / "slack.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert len(snippets) >= 2
    for snippet in snippets:
        settings = SlackSettings.model_validate(yaml.safe_load(snippet)["slack"] or {})
        assert settings.channel == "#ops-scaling"


def test_the_module_registry_exposes_the_notifier_metrics_for_the_daemon() -> None:
    from prometheus_client import generate_latest

    from autoscaler.notify import metrics as notify_metrics

    assert notify_metrics.METRICS.registry is notify_metrics.REGISTRY
    notify_metrics.METRICS.errors.labels("slack", "invalid_auth").inc(0)
    text = generate_latest(notify_metrics.REGISTRY).decode()
    for name in (
        "forescale_notifier_messages_total",
        "forescale_notifier_errors_total",
        "forescale_notifier_retries_total",
        "forescale_notifier_healthy",
        "forescale_notifier_last_success_timestamp_seconds",
        "forescale_notifier_queue_length",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text
    assert 'forescale_notifier_errors_total{error="invalid_auth",notifier="slack"}' in text
