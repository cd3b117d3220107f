"""Talking to Slack: a bot token (chat.postMessage) or an incoming webhook, through slack-sdk.

Retries of 429/5xx/timeouts/connection errors are slack-sdk's retry handlers, bounded in total time by a
``RetryBudget``. Each transport redacts its own secrets (token, webhook URL) from everything it reports and
from slack-sdk's log lines; no state is shared between transports.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any, Protocol
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from autoscaler.core.settings.slack import SlackSettings, SlackTarget
from autoscaler.notify.metrics import METRICS, NotifyMetrics
from autoscaler.notify.slack.messages import SlackMessage

NOTIFIER = "slack"
MAX_RETRIES = 10  # per message; the time budget usually ends retries first

TRANSIENT = ("rate_limited", "server_error", "timeout", "connection_error", "tls_error")
CONFIG_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "user_not_found",
    }
)
PAYLOAD_ERRORS = frozenset(
    {"invalid_payload", "invalid_blocks", "invalid_blocks_format", "no_text", "msg_too_long", "too_many_attachments"}
)


# -- secrets stay out of logs ---------------------------------------------------------------------------


class Redactor:
    """Replaces the secrets of one transport (its token or webhook URL, and the URL's path) in text."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets: set[str] = set()
        for secret in secrets:
            self.secrets.add(secret)
            path = urlsplit(secret).path
            if secret.startswith("http") and len(path) > 8:
                self.secrets.add(path)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


class _RedactingLogger:
    """What slack-sdk logs through (its ``logger=``): messages pass this transport's Redactor first.

    slack-sdk logs an ERROR per failed attempt and, at DEBUG, webhook URLs: it stays silent unless forescale
    runs with --debug.
    """

    def __init__(self, redact: Redactor) -> None:
        self._log = logging.getLogger("forescale.slack.sdk")
        self._redact = redact

    @property
    def level(self) -> int:
        return logging.DEBUG if logging.getLogger("forescale").isEnabledFor(logging.DEBUG) else logging.CRITICAL

    def _emit(self, level: int, msg: object, *args: object) -> None:
        if level >= self.level:
            text = str(msg) % args if args else str(msg)
            self._log.log(level, "%s", self._redact(text))

    def debug(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.DEBUG, msg, *args)

    def info(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.INFO, msg, *args)

    def warning(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.WARNING, msg, *args)

    def error(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, *args)

    def exception(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, *args)


# -- retries: slack-sdk's handlers, bounded in total time -------------------------------------------------


class RetryBudget:
    """All retries of one message must finish within ``max_time_s`` (an attempt may take ``attempt_timeout_s``).

    ``sleep``/``monotonic`` are injectable so tests honour Retry-After without sleeping.
    """

    def __init__(
        self,
        max_time_s: float,
        attempt_timeout_s: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.max_time_s = max_time_s
        self.attempt_timeout_s = attempt_timeout_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.on_retry = on_retry
        self.started = monotonic()
        self.retries: list[str] = []

    def start(self) -> None:
        self.started = self.monotonic()
        self.retries = []

    def total_s(self) -> float:
        """The longest one message may take, retries included: a dripping Slack is cut off after this."""
        return self.max_time_s + self.attempt_timeout_s

    def allows(self, delay_s: float) -> bool:
        return self.monotonic() - self.started + delay_s + self.attempt_timeout_s <= self.max_time_s

    def wait(self, state: RetryState, delay_s: float, cause: str) -> None:
        state.next_attempt_requested = True
        self.retries.append(cause)
        if self.on_retry is not None:
            self.on_retry(cause)
        self.sleep(delay_s)
        state.increment_current_attempt()


def retry_after_s(response: HttpResponse | None) -> float:
    """Seconds Slack asked us to wait (Retry-After), 1 if it did not say."""
    if response is None:
        return 1.0
    for key, values in response.headers.items():
        if key.lower() == "retry-after" and values:
            try:
                return max(0.0, float(values[0]))
            except ValueError:
                return 1.0
    return 1.0


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """429: wait exactly Retry-After (slack-sdk adds up to 1 s of jitter and sleeps unbounded)."""

    def __init__(self, budget: RetryBudget) -> None:
        super().__init__(max_retry_count=MAX_RETRIES)
        self.budget = budget

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        allowed = super().can_retry(state=state, request=request, response=response, error=error)
        return allowed and self.budget.allows(retry_after_s(response))

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.budget.wait(state, retry_after_s(response), "rate_limited")


class _BudgetedBackoff(RetryHandler):
    """Backoff retries within the message's time budget.

    slack-sdk's interval includes random jitter, so the delay is drawn once in ``can_retry`` and that
    same delay is slept: the wait is exactly what the budget approved.
    """

    budget: RetryBudget
    _approved_delay: float = 0.0

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super().can_retry(state=state, request=request, response=response, error=error):
            return False
        self._approved_delay = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        return self.budget.allows(self._approved_delay)

    def _cause(self, error: Exception | None) -> str:
        raise NotImplementedError

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self.budget.wait(state, self._approved_delay, self._cause(error))


class BoundedServerErrorRetryHandler(_BudgetedBackoff, ServerErrorRetryHandler):
    """5xx (slack-sdk retries 500/503; Slack also answers 502/504 behind its load balancers)."""

    def __init__(self, budget: RetryBudget) -> None:
        ServerErrorRetryHandler.__init__(self, max_retry_count=MAX_RETRIES)
        self.budget = budget

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500

    def _cause(self, error: Exception | None) -> str:
        return "server_error"


class BoundedConnectionErrorRetryHandler(_BudgetedBackoff, ConnectionErrorRetryHandler):
    """Refused/reset connections and timeouts (slack-sdk's default list lacks read timeouts)."""

    def __init__(self, budget: RetryBudget) -> None:
        ConnectionErrorRetryHandler.__init__(
            self,
            max_retry_count=MAX_RETRIES,
            error_types=[URLError, ConnectionError, RemoteDisconnected, TimeoutError],
        )
        self.budget = budget

    def _cause(self, error: Exception | None) -> str:
        return "timeout" if _is_timeout(error) else "connection_error"


def retry_handlers(budget: RetryBudget) -> list[RetryHandler]:
    return [
        BoundedRateLimitRetryHandler(budget),
        BoundedServerErrorRetryHandler(budget),
        BoundedConnectionErrorRetryHandler(budget),
    ]


def _is_timeout(error: BaseException | None) -> bool:
    if isinstance(error, TimeoutError):
        return True
    return isinstance(error, URLError) and isinstance(error.reason, TimeoutError)


# -- transports --------------------------------------------------------------------------------------------


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
    kind = "timeout" if _is_timeout(exc) else "tls_error" if _is_tls(exc) else "connection_error"
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
            logger=_RedactingLogger(self.redact),  # type: ignore[arg-type]
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
            logger=_RedactingLogger(self.redact),  # type: ignore[arg-type]
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


def fix_for(error: str | None, target: SlackTarget, base_url: str | None = None) -> str:
    """What the user should do about a Slack error (one line); ``base_url``: slack.base_url, if configured."""
    src, channel = target.source, target.channel or "the channel"
    where = target.secret if target.mode == "webhook" else (base_url or "https://slack.com/api/")
    parts = urlsplit(where)
    host = (parts.hostname or "slack.com") + (f":{parts.port}" if parts.port else "")
    reinstall = f"reinstall the Slack app to the workspace and update {src}"
    fixes = {
        "invalid_auth": f"check {src}: Slack does not accept this token (use the app's Bot User OAuth Token, xoxb-…)",
        "not_authed": f"check {src}: no token was sent",
        "account_inactive": f"the app or its user was deactivated: {reinstall}",
        "token_revoked": f"the token was revoked: {reinstall}",
        "token_expired": f"the token expired: {reinstall}",
        "no_permission": "give the Slack app the chat:write scope and reinstall it",
        "missing_scope": "give the Slack app the chat:write scope and reinstall it",
        "channel_not_found": f"invite the bot to the channel (/invite @your-bot in {channel}) or fix slack.channel",
        "not_in_channel": f"invite the bot to {channel} (/invite @your-bot) or fix slack.channel",
        "is_archived": f"{channel} is archived: unarchive it or change slack.channel",
        "restricted_action": f"a workspace admin restricts posting in {channel}: allow the app or change slack.channel",
        "invalid_token": f"the incoming webhook is invalid or was revoked: create a new one and update {src}",
        "no_service": f"the incoming webhook is disabled or was removed: create a new one and update {src}",
        "no_service_id": f"the webhook URL is incomplete: copy it again into {src}",
        "no_team": f"the webhook's workspace no longer exists: create a new webhook and update {src}",
        "team_disabled": f"the webhook's workspace is disabled: create a new webhook and update {src}",
        "channel_is_archived": f"the webhook's channel is archived: unarchive it or create a new webhook, update {src}",
        "action_prohibited": "a workspace admin restricted posting to the webhook's channel",
        "posting_to_general_channel_denied": "only admins may post to #general: use another channel",
        "user_not_found": f"the webhook's user no longer exists: create a new webhook and update {src}",
        "rate_limited": "Slack rate-limited the app for longer than slack.max_retry_time; later messages still go out",
        "server_error": "Slack had a server error (see https://slack-status.com); later messages still go out",
        "timeout": f"no answer from {host} within slack.timeout: check the network path (proxy, firewall)",
        "connection_error": f"cannot connect to {host}: check DNS, HTTPS_PROXY and firewall rules",
        "tls_error": f"the TLS certificate of {host} is not trusted: check slack.base_url, or add its CA to the "
        "system trust store (SSL_CERT_FILE)",
    }
    if error in PAYLOAD_ERRORS:
        return "Slack rejected the message forescale built: please report this bug with the log line"
    return fixes.get(error or "", "see https://api.slack.com/methods/chat.postMessage#errors")


