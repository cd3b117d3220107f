"""How tick and plan show a TickReport: a Rich table, or JSON for scripts."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from autoscaler.interfaces import TickReport

_BASE_CODES = {"forecast", "observed"}


def report_table(report: TickReport, title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for col in (
        "pool",
        "current",
        "forecast rps",
        "observed rps",
        "nodes needed",
        "floor / override / clamps",
        "final",
        "action",
        "status",
    ):
        table.add_column(col, overflow="fold")
    for o in report.outcomes:
        d = o.decision
        if d is None:
            table.add_row(o.pool, "?", "", "", "", "", "", "", "[red]failed[/] (below)")
            continue
        shaping = "\n".join(r.message for r in d.reasons if r.code not in _BASE_CODES) or "—"
        needed = "—" if d.forecast_nodes is None else f"{d.forecast_nodes} (observed {d.reactive_nodes})"
        status = o.status + (" (below)" if o.error else "") + (f" ({o.note})" if o.note and not o.error else "")
        table.add_row(
            d.pool,
            str(d.current),
            "—" if d.forecast_rps is None else f"{d.forecast_rps:.1f}",
            "—" if d.observed_rps is None else f"{d.observed_rps:.1f}",
            needed,
            shaping,
            str(d.desired),
            d.action + (" (held)" if d.held else ""),
            status,
        )
    return table


def report_json(report: TickReport) -> str:
    return json.dumps(
        {
            "at": report.at.isoformat(),
            "dry_run": report.dry_run,
            "duration_s": round(report.duration_s, 4),
            "pools": [
                {
                    "pool": o.pool,
                    "status": o.status,
                    "note": o.note,
                    "error": o.error,
                    "decision": o.decision.to_dict() if o.decision else None,
                }
                for o in report.outcomes
            ],
            "events": [{"kind": e.kind, "pool": e.pool, "message": e.message} for e in report.events],
        },
        indent=2,
        default=str,
    )


def print_report(console: Console, report: TickReport, title: str, as_json: bool) -> None:
    if as_json:
        console.print_json(report_json(report))
    else:
        console.print(report_table(report, title))
        for o in report.outcomes:
            if o.error:  # full sentences, not squeezed into a table cell
                console.print(f"[red]{o.pool}[/]: {o.status}: {o.error}", highlight=False)
