"""Talking to Slack: a bot token (chat.postMessage) or an incoming webhook, through slack-sdk.

Retries of 429/5xx/timeouts/connection errors are slack-sdk's retry handlers, bounded in total time by a
``RetryBudget`` (``retry.py``). Each transport redacts its own secrets (token, webhook URL) from everything it
reports and from slack-sdk's log lines (``redact.py``); no state is shared between transports. What each
error means and its fix: ``errors.py`` (its names are re-exported here for one release).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError

from autoscaler.core.settings.slack import SlackSettings, SlackTarget
from autoscaler.notify.metrics import METRICS, NotifyMetrics
from autoscaler.notify.slack.errors import CONFIG_ERRORS, PAYLOAD_ERRORS, TRANSIENT, fix_for
from autoscaler.notify.slack.messages import SlackMessage
from autoscaler.notify.slack.redact import RedactingLogger, Redactor
from autoscaler.notify.slack.retry import MAX_RETRIES, RetryBudget, is_timeout, retry_after_s, retry_handlers

__all__ = [
    "CONFIG_ERRORS",
    "MAX_RETRIES",
    "NOTIFIER",
    "PAYLOAD_ERRORS",
    "TRANSIENT",
    "BotTransport",
    "Delivery",
    "Redactor",
    "RetryBudget",
    "SlackDeadlineExceeded",
    "Transport",
    "WebhookTransport",
    "bounded",
    "fix_for",
    "make_transport",
    "retry_after_s",
]

NOTIFIER = "slack"


@dataclass(frozen=True)
class Delivery:
    """What Slack answered to one message (after retries). ``error`` is Slack's code or our class of failure."""

    ok: bool
    error: str | None = None
    status: int | None = None
    detail: str = ""
    channel: str | None = None
    ts: str | None = None
    retries: tuple[str, ...] = ()


class Transport(Protocol):
    target: SlackTarget
    redact: Redactor

    def post(self, message: SlackMessage) -> Delivery: ...


class SlackDeadlineExceeded(TimeoutError):
    """slack-sdk's timeout bounds each socket read; this bounds the whole call (retries included)."""


def bounded(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    """``fn()`` on a helper thread, given at most ``seconds`` (slack-sdk's urllib offers no total deadline).

    A call still running then is abandoned (its thread ends when the server does) and SlackDeadlineExceeded is
    raised, so a server that drips its answer can never hold `notify test`, a shutdown or the delivery thread.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name="forescale-slack-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SlackDeadlineExceeded(
            f"no complete answer from {what} within {seconds:g}s (slack.max_retry_time + timeout)"
        )
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _is_tls(error: BaseException | None) -> bool:
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ssl.SSLError)


def _exception_delivery(exc: Exception, retries: list[str], redact: Redactor) -> Delivery:
    kind = "timeout" if is_timeout(exc) else "tls_error" if _is_tls(exc) else "connection_error"
    detail = redact(f"{type(exc).__name__}: {exc}")
    return Delivery(False, kind, None, detail, retries=tuple(retries))


class BotTransport:
    """chat.postMessage with a bot token (Block Kit)."""

    def __init__(self, target: SlackTarget, settings: SlackSettings, budget: RetryBudget) -> None:
        self.redact = Redactor([target.secret])
        self.target = target
        self.budget = budget
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {}
        if settings.base_url:
            kwargs["base_url"] = settings.base_url
        self.host = urlsplit(settings.base_url or "https://slack.com/api/").netloc.rsplit("@", 1)[-1]
        self.client = WebClient(
            token=target.secret,
            timeout=settings.timeout.total_seconds(),  # type: ignore[arg-type]  # urllib takes float seconds
            logger=RedactingLogger(self.redact),  # type: ignore[arg-type]
            retry_handlers=retry_handlers(budget),
            **kwargs,
        )

    def post(self, message: SlackMessage) -> Delivery:
        body = message.payload(self.target.channel)
        return self._call(lambda: self.client.chat_postMessage(**body, unfurl_links=False, unfurl_media=False))

    def auth_test(self) -> Delivery:
        """Who the token belongs to (used by `forescale notify test`)."""
        return self._call(self.client.auth_test)

    def _call(self, fn: Callable[[], Any]) -> Delivery:
        with self._lock:
            self.budget.start()
            try:
                resp = bounded(fn, self.budget.total_s(), f"Slack at {self.host}")
            except SlackApiError as exc:
                return _api_error(exc, self.budget.retries, self.redact)
            except Exception as exc:  # timeouts, refused connections, bad URLs: never into the tick
                return _exception_delivery(exc, self.budget.retries, self.redact)
            data = resp.data if isinstance(resp.data, dict) else {}
            detail = ""
            if "user" in data or "team" in data:
                detail = f"authenticated as {data.get('user')} in workspace {data.get('team')} ({data.get('url', '')})"
            return Delivery(
                True,
                status=resp.status_code,
                detail=detail,
                channel=data.get("channel"),
                ts=data.get("ts"),
                retries=tuple(self.budget.retries),
            )


def _api_error(exc: SlackApiError, retries: list[str], redact: Redactor) -> Delivery:
    resp = exc.response
    status = int(resp.status_code)
    data = resp.data if isinstance(resp.data, dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429:
        code = "rate_limited"
    elif status >= 500:
        code = "server_error"
    detail = code if code == data.get("error") else f"HTTP {status}: {data.get('error', '')}"
    needed = data.get("needed")
    if needed:
        detail += f" (needed scope: {needed})"
    return Delivery(False, code, status, redact(detail[:300]), retries=tuple(retries))


class WebhookTransport:
    """An incoming webhook (its channel is fixed when the webhook is created)."""

    def __init__(self, target: SlackTarget, settings: SlackSettings, budget: RetryBudget) -> None:
        self.redact = Redactor([target.secret])
        self.target = target
        self.budget = budget
        self._lock = threading.Lock()
        self.client = WebhookClient(
            url=target.secret,
            timeout=settings.timeout.total_seconds(),  # type: ignore[arg-type]
            logger=RedactingLogger(self.redact),  # type: ignore[arg-type]
            retry_handlers=retry_handlers(budget),
        )

    def post(self, message: SlackMessage) -> Delivery:
        with self._lock:
            self.budget.start()
            try:
                resp = bounded(lambda: self.client.send_dict(message.payload()), self.budget.total_s(), "Slack")
            except Exception as exc:
                return _exception_delivery(exc, self.budget.retries, self.redact)
            retries = tuple(self.budget.retries)
            body = (resp.body or "").strip()
            if resp.status_code == 200:
                return Delivery(True, status=200, detail=body, retries=retries)
            code = body if body and " " not in body and len(body) < 64 else f"http_{resp.status_code}"
            if resp.status_code == 429:
                code = "rate_limited"
            elif resp.status_code >= 500:
                code = "server_error"
            return Delivery(False, code, resp.status_code, self.redact(body[:300]), retries=retries)


def make_transport(
    target: SlackTarget,
    settings: SlackSettings,
    *,
    metrics: NotifyMetrics = METRICS,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> BotTransport | WebhookTransport:
    budget = RetryBudget(
        settings.max_retry_time.total_seconds(),
        settings.timeout.total_seconds(),
        sleep=sleep,
        monotonic=monotonic,
        on_retry=lambda cause: metrics.retries.labels(NOTIFIER, cause).inc(),
    )
    if target.mode == "bot":
        return BotTransport(target, settings, budget)
    return WebhookTransport(target, settings, budget)
