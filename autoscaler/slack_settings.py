"""The ``slack:`` section of forescale.yaml (owned by the Slack notifier)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.durations import Duration


class SlackSettings(BaseModel):
    """Bot token + channel (chat.postMessage) or an incoming webhook. Secrets come from env."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field("SLACK_BOT_TOKEN", description="env var holding the bot token (xoxb-…)")
    channel: str | None = Field(None, description="channel ID or #name for chat.postMessage")
    webhook_url_env: str = Field("SLACK_WEBHOOK_URL", description="env var holding an incoming-webhook URL")
    base_url: str | None = Field(None, description="Web API base URL (tests point this at a local server)")
    timeout: Duration = Field(timedelta(seconds=5), description="per-request timeout")
    max_retry_time: Duration = Field(timedelta(seconds=30), description="bound on retries per message")
    repeat_failure_after: Duration = Field(
        timedelta(hours=1), description="re-announce an unchanged failure after this long"
    )
