"""Retries of one Slack message: slack-sdk's retry handlers (429 with Retry-After, 5xx, timeouts and refused
connections), all bounded in total time by one ``RetryBudget`` per message."""

from __future__ import annotations

import time
from collections.abc import Callable
from http.client import RemoteDisconnected
from urllib.error import URLError

from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

MAX_RETRIES = 10  # per message; the time budget usually ends retries first


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
        return "timeout" if is_timeout(error) else "connection_error"


def retry_handlers(budget: RetryBudget) -> list[RetryHandler]:
    return [
        BoundedRateLimitRetryHandler(budget),
        BoundedServerErrorRetryHandler(budget),
        BoundedConnectionErrorRetryHandler(budget),
    ]


def is_timeout(error: BaseException | None) -> bool:
    if isinstance(error, TimeoutError):
        return True
    return isinstance(error, URLError) and isinstance(error.reason, TimeoutError)
