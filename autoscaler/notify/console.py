"""The default notifier: decisions and their reasons on the terminal (used by demo, tick and run)."""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console

from autoscaler.core.ports import Notifier
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.core.text import markup_safe

log = logging.getLogger("forescale.console")

_STYLE = {"up": "green", "down": "yellow", "hold": "dim"}
PIPE_WIDTH = 100_000  # "unlimited": tables keep their natural width, lines are never folded


def terminal_console(stderr: bool = False, **kwargs: object) -> Console:
    """A Rich console that wraps for people and not for machines: on a terminal (or with $COLUMNS) it fits the
    width; into a pipe or a file every line stays whole, so `grep`, `awk` and log shippers see one line per
    line printed."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    options: dict[str, object] = {"stderr": stderr, **kwargs}
    if not (tty or os.environ.get("COLUMNS")):
        options |= {"soft_wrap": True, "width": PIPE_WIDTH}
    return Console(**options)  # type: ignore[arg-type]


class ConsoleNotifier(Notifier):
    """Prints one line per pool per tick; ``changes_only`` keeps long replays readable; ``events_only`` prints
    only the events (override expiries, warnings) — for `tick`, whose table already shows every decision. A terminal
    that cannot be written (closed, a pipe whose reader left) is logged once and never fails the tick
    (``ports.Notifier``)."""

    def __init__(self, console: Console | None = None, changes_only: bool = False, events_only: bool = False) -> None:
        self.console = console or terminal_console()
        self.changes_only = changes_only
        self.events_only = events_only
        self._failed = False

    def notify(self, report: TickReport) -> None:
        for outcome in () if self.events_only else report.outcomes:
            if outcome.status == "off":
                continue
            if self.changes_only and outcome.status == "unchanged" and not (outcome.decision and outcome.decision.held):
                continue
            self._print(format_outcome(report, outcome))
        for event in report.events:
            self.announce(event)

    def announce(self, event: Event) -> None:
        self._print(
            f"[bold]{event.at:%Y-%m-%d %H:%M}[/] [magenta]{markup_safe(event.kind)}[/] {markup_safe(event.message)}"
        )

    def _print(self, line: str) -> None:
        try:
            self.console.print(line, highlight=False, soft_wrap=True)
        except (OSError, ValueError) as exc:  # closed stream, broken pipe
            if not self._failed:
                self._failed = True
                log.warning(
                    "cannot write decisions to the console (%s); the audit log and other notifiers have them", exc
                )


def format_outcome(report: TickReport, outcome: PoolOutcome) -> str:
    stamp = f"[bold]{report.at:%Y-%m-%d %H:%M}[/]"
    if outcome.decision is None:
        return f"{stamp} [red]{outcome.pool}: failed[/]: {markup_safe(outcome.error)}"
    d = outcome.decision
    style = "red" if d.held else _STYLE[d.action]
    head = d.counts_text()
    counts = f" [dim]({d.placed} placed, {d.queued or 0} queued)[/]" if d.placed is not None else ""
    if outcome.status == "shadow":
        head = f"would scale {d.current} → {d.desired} (shadow: Nomad not changed)"
    reasons = "; ".join(markup_safe(r.message) for r in d.reasons)
    tail = f" [red]{outcome.status}: {markup_safe(outcome.error)}[/]" if outcome.error else ""
    if outcome.status == "applied" and outcome.note:
        tail += f" [dim]→ {markup_safe(outcome.note)}[/]"
    if outcome.nodes is not None and outcome.nodes.failed:
        tail += " [red]machines: " + markup_safe("; ".join(outcome.nodes.failures())) + "[/]"
    return f"{stamp} [{style}]{d.pool}: {head}[/]{counts} — {reasons}{tail}"
