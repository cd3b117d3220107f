"""Builds the notifiers a config asks for (console by default; Slack when configured)."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Sequence

from autoscaler.clock import Clock
from autoscaler.config import Config
from autoscaler.console_notifier import ConsoleNotifier
from autoscaler.errors import NotifierError
from autoscaler.interfaces import Notifier
from autoscaler.notify_metrics import METRICS, NotifyMetrics

log = logging.getLogger("forescale.notifiers")


def build_notifiers(
    config: Config,
    console: bool = True,
    *,
    clock: Clock | None = None,
    metrics: NotifyMetrics = METRICS,
) -> list[Notifier]:
    """Console (unless ``console=False``) plus Slack when ``slack:`` is configured.

    A Slack section that cannot be used (e.g. the token env var is empty) is logged with the fix and
    counted (``forescale_notifier_errors_total{error="not_configured"}``), but never stops scaling.
    """
    out: list[Notifier] = []
    if console:
        out.append(ConsoleNotifier())
    if config.slack is not None:
        from autoscaler.slack_notifier import SlackNotifier

        try:
            slack = SlackNotifier.from_config(config, clock=clock, metrics=metrics)
        except NotifierError as exc:
            log.error("Slack notifications are off: %s", exc)
            metrics.errors.labels("slack", "not_configured").inc()
            metrics.healthy.labels("slack").set(0)
        else:
            atexit.register(slack.close)  # a one-shot `forescale tick` still posts its message before exiting
            out.append(slack)
    return out


def close_notifiers(notifiers: Sequence[Notifier], timeout_s: float | None = None) -> bool:
    """Flush and stop notifiers that deliver in the background (the daemon calls this on shutdown)."""
    ok = True
    for notifier in notifiers:
        close = getattr(notifier, "close", None)
        if callable(close):
            try:
                ok = bool(close(timeout_s)) and ok
            except Exception:
                log.exception("closing notifier %s failed", type(notifier).__name__)
                ok = False
    return ok
