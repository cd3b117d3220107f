"""The daemon's decisions as log records (``daemon.log_format: json``): one structured line per pool per tick.

With ``json`` the console notifier's Rich lines would be the only non-JSON output, so the daemon logs each
outcome instead, with its fields (pool, status, current, desired, reason codes) next to the sentence.
"""

from __future__ import annotations

import logging

from autoscaler.core.ports import Notifier
from autoscaler.core.report import Event, PoolOutcome, TickReport

log = logging.getLogger("forescale.decision")


class LogNotifier(Notifier):
    """Logs every evaluated pool's outcome and every event (override changes) at INFO."""

    def notify(self, report: TickReport) -> None:
        for outcome in report.outcomes:
            if outcome.status == "off":
                continue
            level = logging.WARNING if outcome.status == "failed" else logging.INFO
            log.log(level, _sentence(outcome), extra=fields(report, outcome))
        for event in report.events:
            self.announce(event)

    def announce(self, event: Event) -> None:
        log.info(event.message, extra={"event": event.kind, "pool": event.pool, "at": event.at.isoformat()})


def fields(report: TickReport, outcome: PoolOutcome) -> dict[str, object]:
    """The machine-readable part of a decision record."""
    out: dict[str, object] = {
        "event": "decision",
        "tick_at": report.at.isoformat(),
        "pool": outcome.pool,
        "status": outcome.status,
        "note": outcome.note or None,
        "error": outcome.error,
    }
    d = outcome.decision
    if d is not None:
        out |= {
            "current": d.current,
            "desired": d.desired,
            "placed": d.placed,
            "queued": d.queued,
            "action": "held" if d.held else d.action,
            "forecast_rps": d.forecast_rps,
            "observed_rps": d.observed_rps,
            "reasons": d.reason_codes(),
        }
    return out


def _sentence(outcome: PoolOutcome) -> str:
    d = outcome.decision
    if d is None:
        return f"{outcome.pool}: {outcome.status}: {outcome.error}"
    text = d.explain()
    if outcome.status == "shadow":
        text += f" [{outcome.note}]"
    elif outcome.error:
        text += f" [{outcome.status}: {outcome.error}]"
    return text
