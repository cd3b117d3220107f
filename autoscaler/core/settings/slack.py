"""The ``slack:`` section of forescale.yaml (owned by the Slack notifier).

Two modes: a bot token + channel (``chat.postMessage``, Block Kit) or an incoming-webhook URL. Secrets are
read from environment variables by default; they may also sit in the file, but are never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from autoscaler.core.durations import Duration, format_duration
from autoscaler.core.errors import NotifierError
from autoscaler.core.settings.base import EnvName, StrictModel
from autoscaler.core.settings.marks import Credentials, Secret

Mode = Literal["auto", "bot", "webhook"]


class SlackSettings(StrictModel):
    """Bot token + channel (chat.postMessage) or an incoming webhook. Secrets come from env."""

    mode: Mode = Field("auto", description="bot, webhook, or auto (bot when a token and channel are set, else webhook)")
    token_env: EnvName = Field("SLACK_BOT_TOKEN", description="env var holding the bot token (xoxb-…)")
    token: Annotated[SecretStr | None, Secret("token_env")] = Field(
        None, description="bot token in the file (prefer token_env)"
    )
    channel: str | None = Field(None, description="channel ID (C0123…) or #name for chat.postMessage")
    webhook_url_env: EnvName = Field("SLACK_WEBHOOK_URL", description="env var holding an incoming-webhook URL")
    webhook_url: Annotated[SecretStr | None, Secret("webhook_url_env")] = Field(
        None, description="incoming-webhook URL in the file (prefer the env var)"
    )
    base_url: Annotated[str | None, Credentials()] = Field(
        None, description="Web API base URL (tests point this at a local server)"
    )
    timeout: Duration = Field(timedelta(seconds=5), description="per-request timeout")
    max_retry_time: Duration = Field(timedelta(seconds=30), description="bound on retries per message")
    repeat_failure_after: Duration = Field(
        timedelta(hours=1), description="re-announce an unchanged failure after this long"
    )
    mention: str | None = Field(
        None, description="prefix of messages about held/failed pools, e.g. '<!here>' or '<!subteam^S0123>'"
    )
    large_scale_in_nodes: int = Field(
        3, ge=1, le=100_000, description="a scale-in is flagged 'large' only when it removes at least this many nodes"
    )
    large_scale_in_pct: float = Field(
        25.0,
        ge=0,
        le=100,
        description="… and more than this % of the pool (or more than max_step_down); both must hold",
    )
    async_delivery: bool = Field(True, description="post from a background thread so Slack never delays a tick")
    queue_size: int = Field(100, ge=1, le=10_000, description="messages waiting for Slack before the oldest is dropped")

    @field_validator("channel")
    @classmethod
    def _channel_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not v or " " in v:
            raise ValueError("write a channel ID such as C0123ABCD or a name such as #ops-scaling (no spaces)")
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL such as https://slack.com/api/")
        return v if v.endswith("/") else v + "/"

    @field_validator("timeout", "max_retry_time")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SlackSettings:
        if self.max_retry_time < self.timeout:
            raise ValueError(
                f"max_retry_time ({format_duration(self.max_retry_time)}) is shorter than timeout "
                f"({format_duration(self.timeout)}); raise max_retry_time"
            )
        if self.mode == "bot" and not self.channel:
            raise ValueError("mode is 'bot' but channel is not set; set slack.channel to the channel ID or #name")
        return self

    def resolve(self, environ: Mapping[str, str] | None = None) -> SlackTarget:
        """Pick the mode and read the secret; NotifierError (naming the env var, never the value) if unusable."""
        env = os.environ if environ is None else environ
        token = env.get(self.token_env) or (self.token.get_secret_value() if self.token else None)
        webhook = env.get(self.webhook_url_env) or (self.webhook_url.get_secret_value() if self.webhook_url else None)
        mode = self.mode
        if mode == "auto":
            if token and self.channel:
                mode = "bot"
            elif webhook:
                mode = "webhook"
            elif token:
                raise NotifierError(
                    f"${self.token_env} is set but slack.channel is not; set slack.channel to the channel ID or #name"
                )
            else:
                raise NotifierError(
                    f"Slack is configured but neither ${self.token_env} nor ${self.webhook_url_env} is set; "
                    f"export the bot token (xoxb-…) and set slack.channel, or export an incoming-webhook URL"
                )
        if mode == "bot":
            if not token:
                raise NotifierError(
                    f"slack.mode is 'bot' but ${self.token_env} is empty; export the bot token (xoxb-…)"
                )
            if not token.startswith(("xoxb-", "xoxp-")):
                raise NotifierError(
                    f"${self.token_env} does not look like a Slack bot token (it should start with 'xoxb-'); "
                    "copy the Bot User OAuth Token from the app's OAuth & Permissions page"
                )
            source = f"${self.token_env}" if env.get(self.token_env) else "slack.token"
            return SlackTarget("bot", token, self.channel, source)
        if not webhook:
            raise NotifierError(
                f"slack.mode is 'webhook' but ${self.webhook_url_env} is empty; export the incoming-webhook URL"
            )
        if urlsplit(webhook).scheme not in ("http", "https") or not urlsplit(webhook).netloc:
            raise NotifierError(
                f"${self.webhook_url_env} is not a URL; it should look like https://hooks.slack.com/services/T…/B…/…"
            )
        source = f"${self.webhook_url_env}" if env.get(self.webhook_url_env) else "slack.webhook_url"
        return SlackTarget("webhook", webhook, None, source)


@dataclass(frozen=True)
class SlackTarget:
    """The resolved destination. ``secret`` is the token or webhook URL: never log or print it."""

    mode: Literal["bot", "webhook"]
    secret: str
    channel: str | None
    source: str  # where the secret came from: "$SLACK_BOT_TOKEN" or "slack.token"

    def __repr__(self) -> str:
        return f"SlackTarget(mode={self.mode!r}, channel={self.channel!r}, secret=<from {self.source}>)"

    def describe(self) -> str:
        """Where messages go, without the secret."""
        if self.mode == "bot":
            return f"channel {self.channel} with the bot token from {self.source}"
        parts = urlsplit(self.secret)
        host = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
        return f"the incoming webhook from {self.source} (host {host})"
