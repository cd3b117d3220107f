"""The Slack notifier: one message per tick with something to say, one per override event.

It never blocks or fails a tick: messages are built at once and posted from a background thread by the
transport (``transport.py``: bounded retries); failures are logged and counted (``autoscaler.notify.metrics``).
``invalid_auth``/``channel_not_found`` and other configuration errors are logged once, with the fix.
Secrets never reach a log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from autoscaler.core.clock import SystemClock
from autoscaler.core.errors import NotifierError
from autoscaler.core.ports import Clock, Notifier
from autoscaler.core.report import Event, TickReport
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.slack import SlackSettings
from autoscaler.notify.alerts import FailureTracker, ShadowTracker, digest
from autoscaler.notify.metrics import METRICS, NotifyMetrics
from autoscaler.notify.slack.errors import CONFIG_ERRORS, PAYLOAD_ERRORS, fix_for
from autoscaler.notify.slack.messages import MessageFormatter, SlackMessage
from autoscaler.notify.slack.transport import NOTIFIER, Delivery, Transport, make_transport

log = logging.getLogger("forescale.slack")


# -- background delivery ----------------------------------------------------------------------------------


class _Worker:
    """One daemon thread posting queued messages in order; flush/close wait with a bound."""

    def __init__(self, deliver: Callable[[SlackMessage], object], maxsize: int, metrics: NotifyMetrics) -> None:
        self._deliver = deliver
        self._maxsize = maxsize
        self._metrics = metrics
        self._items: deque[SlackMessage] = deque()
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, message: SlackMessage) -> None:
        with self._cond:
            if self._closed:
                self._metrics.messages.labels(NOTIFIER, message.kind, "dropped").inc()
                log.warning("Slack notifier is closed; %s message dropped", message.kind)
                return
            if len(self._items) >= self._maxsize:
                old = self._items.popleft()
                self._metrics.messages.labels(NOTIFIER, old.kind, "dropped").inc()
                self._metrics.errors.labels(NOTIFIER, "queue_full").inc()
                log.warning("Slack is too slow: %d messages waiting; dropped the oldest (%s)", self._maxsize, old.kind)
            self._items.append(message)
            self._metrics.queue_length.labels(NOTIFIER).set(len(self._items))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="forescale-slack", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._items or self._closed)
                if not self._items:
                    return
                message = self._items.popleft()
                self._busy = True
                self._metrics.queue_length.labels(NOTIFIER).set(len(self._items))
            try:
                self._deliver(message)
            except Exception:  # pragma: no cover - deliver() already catches; belt and braces for the thread
                log.exception("Slack delivery thread error")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout=timeout_s)

    def close(self, timeout_s: float) -> bool:
        done = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and done:
            thread.join(timeout=1.0)
        return done


# -- the notifier ---------------------------------------------------------------------------------------


class SlackNotifier(Notifier):
    """Notifier protocol over Slack: one message per tick with something to say, one per override event."""

    name = NOTIFIER

    def __init__(
        self,
        config: Config,
        transport: Transport,
        *,
        clock: Clock | None = None,
        metrics: NotifyMetrics = METRICS,
        async_delivery: bool | None = None,
    ) -> None:
        settings = config.slack or SlackSettings()
        self.settings = settings
        self.transport = transport
        self.clock = clock or SystemClock()
        self.metrics = metrics
        self.formatter = MessageFormatter(config, settings.mention)
        self.tracker = FailureTracker(settings.repeat_failure_after)
        self.shadow = ShadowTracker()
        self._reported: set[str] = set()
        use_async = settings.async_delivery if async_delivery is None else async_delivery
        self._worker = _Worker(self.deliver, settings.queue_size, metrics) if use_async else None
        self.close_timeout_s = settings.max_retry_time.total_seconds() + settings.timeout.total_seconds() + 1.0

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        metrics: NotifyMetrics = METRICS,
        environ: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        async_delivery: bool | None = None,
    ) -> SlackNotifier:
        """Build from the ``slack:`` section; NotifierError (with the fix) when it cannot be used."""
        if config.slack is None:
            raise NotifierError("no 'slack:' section in the config; add one (see docs/slack.md)")
        target = config.slack.resolve(environ)
        transport = make_transport(target, config.slack, metrics=metrics, sleep=sleep, monotonic=monotonic)
        return cls(config, transport, clock=clock, metrics=metrics, async_delivery=async_delivery)

    # -- Notifier protocol ------------------------------------------------------------------------------
    def notify(self, report: TickReport) -> None:
        try:
            message = self.formatter.tick(digest(report, self.tracker, self.clock.now(), self.shadow))
        except Exception:
            log.exception("cannot build the Slack message for the tick at %s", report.at)
            self.metrics.errors.labels(NOTIFIER, "internal").inc()
            return
        if message is not None:
            self.submit(message)

    def announce(self, event: Event) -> None:
        try:
            message = self.formatter.event(event)
        except Exception:
            log.exception("cannot build the Slack message for event %s", event.kind)
            self.metrics.errors.labels(NOTIFIER, "internal").inc()
            return
        self.submit(message)

    # -- delivery ---------------------------------------------------------------------------------------
    def submit(self, message: SlackMessage) -> None:
        """Queue for the background thread (or post now when async delivery is off)."""
        if self._worker is not None:
            self._worker.submit(message)
        else:
            self.deliver(message)

    def deliver(self, message: SlackMessage) -> Delivery:
        """Post now (with bounded retries), then log and count the outcome. Never raises."""
        try:
            delivery = self.transport.post(message)
        except Exception as exc:  # a transport bug must not escape either
            delivery = Delivery(False, "internal", detail=self.transport.redact(f"{type(exc).__name__}: {exc}"))
        self._record(message, delivery)
        return delivery

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued message was posted (or given up); False if ``timeout_s`` passed first."""
        if self._worker is None:
            return True
        return self._worker.flush(self.close_timeout_s if timeout_s is None else timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush with a bound and stop the thread; later messages are dropped (and counted)."""
        if self._worker is None:
            return True
        return self._worker.close(self.close_timeout_s if timeout_s is None else timeout_s)

    def _record(self, message: SlackMessage, delivery: Delivery) -> None:
        m = self.metrics
        if delivery.ok:
            m.messages.labels(NOTIFIER, message.kind, "ok").inc()
            m.healthy.labels(NOTIFIER).set(1)
            m.last_success.labels(NOTIFIER).set(time.time())
            if self._reported:
                log.warning("Slack accepts messages again (after %s)", ", ".join(sorted(self._reported)))
                self._reported.clear()
            return
        m.messages.labels(NOTIFIER, message.kind, "failed").inc()
        m.errors.labels(NOTIFIER, delivery.error or "unknown").inc()
        m.healthy.labels(NOTIFIER).set(0)
        for pool, sig in message.rearm:
            self.tracker.rearm(pool, sig)
        error = delivery.error or "unknown"
        fix = fix_for(error, self.transport.target, self.settings.base_url)
        if error in CONFIG_ERRORS or error in PAYLOAD_ERRORS:
            if error in self._reported:
                log.debug("Slack refused a %s message again: %s", message.kind, error)
                return
            self._reported.add(error)
            log.error(
                "Slack refused the %s message: %s — %s. Later messages fail the same way until this is fixed "
                "(reported once; counted in forescale_notifier_errors_total). Scaling is not affected.",
                message.kind,
                self.transport.redact(delivery.detail or error),
                fix,
            )
            return
        retried = f" after {len(delivery.retries)} retries" if delivery.retries else ""
        log.warning(
            "Slack %s message not delivered%s: %s (%s) — %s",
            message.kind,
            retried,
            error,
            self.transport.redact(delivery.detail),
            fix,
        )
