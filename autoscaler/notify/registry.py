"""The builder side of the notifier registry: which notifiers a command gets, and how each is built.

One row per notifier, keyed like ``autoscaler.core.settings.adapters.NOTIFIERS`` (the schema side; a unit test
keeps the keys equal). A row says when it is wanted (its config section is present, or the command asks for
it) and builds it, importing its client library only then. A notifier whose section cannot be used (e.g. the
token's variable is empty) raises NotifierError: it is logged with the fix and counted, and scaling goes on
without it.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from autoscaler.core.errors import NotifierError
from autoscaler.core.ports import Clock, Notifier
from autoscaler.core.settings.forescale import Config
from autoscaler.notify.metrics import METRICS, NotifyMetrics

log = logging.getLogger("forescale.wiring")


@dataclass(frozen=True)
class NotifierOptions:
    """What the command asks of its notifiers: a console (not with --json), decisions as log records (the
    daemon's JSON logs), the clock and the metrics they count on."""

    console: bool = True
    log_decisions: bool = False
    clock: Clock | None = None
    metrics: NotifyMetrics = field(default=METRICS)


@dataclass(frozen=True)
class NotifierBuilder:
    """How one notifier is chosen and built. ``title`` names it in the "notifications are off" log line."""

    name: str
    title: str
    wanted: Callable[[Config, NotifierOptions], bool]
    build: Callable[[Config, NotifierOptions], Notifier]


def _console(config: Config, options: NotifierOptions) -> Notifier:
    from autoscaler.notify.console import ConsoleNotifier

    return ConsoleNotifier()


def _log(config: Config, options: NotifierOptions) -> Notifier:
    from autoscaler.notify.log import LogNotifier

    return LogNotifier()


def _slack(config: Config, options: NotifierOptions) -> Notifier:
    from autoscaler.notify.slack.notifier import SlackNotifier

    slack = SlackNotifier.from_config(config, clock=options.clock, metrics=options.metrics)
    atexit.register(slack.close)  # a one-shot `forescale tick` still posts its message before exiting
    return slack


NOTIFIERS: Mapping[str, NotifierBuilder] = {
    "console": NotifierBuilder("console", "Console", lambda c, o: o.console, _console),
    "log": NotifierBuilder("log", "Log", lambda c, o: o.log_decisions, _log),
    "slack": NotifierBuilder("slack", "Slack", lambda c, o: c.slack is not None, _slack),
}


def selected(config: Config, options: NotifierOptions | None = None) -> list[str]:
    """The notifiers ``config`` (and ``options``) select, in table order."""
    options = options or NotifierOptions()
    return [name for name, row in NOTIFIERS.items() if row.wanted(config, options)]


def build_notifiers(config: Config, options: NotifierOptions | None = None) -> list[Notifier]:
    """Every selected notifier that can be built; one that cannot is logged with the fix and counted
    (``forescale_notifier_errors_total{error="not_configured"}``), never stopping scaling."""
    options = options or NotifierOptions()
    out: list[Notifier] = []
    for name in selected(config, options):
        row = NOTIFIERS[name]
        try:
            out.append(row.build(config, options))
        except NotifierError as exc:
            log.error("%s notifications are off: %s", row.title, exc)
            options.metrics.errors.labels(name, "not_configured").inc()
            options.metrics.healthy.labels(name).set(0)
    return out
