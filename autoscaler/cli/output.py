"""How tick and plan show a TickReport: a Rich table, or JSON for scripts."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from autoscaler.core.decision import Decision
from autoscaler.core.report import TickReport


def report_table(report: TickReport, title: str) -> Table:
    """The numbers, one row per pool (never wrapped); the reasons follow the table in full sentences."""
    table = Table(title=title, caption="fcst/obs: forecast peak and observed rate, req/s; need: nodes for the higher")
    for col, just in (
        ("pool", "left"),
        ("now", "right"),
        ("fcst", "right"),
        ("obs", "right"),
        ("need", "right"),
        ("shaped by", "left"),
        ("final", "right"),
        ("action", "left"),
        ("status", "left"),
    ):
        if just == "right":  # numbers never wrap
            table.add_column(col, justify="right", no_wrap=True)
        else:  # words may fold on a narrow terminal
            table.add_column(col, overflow="fold")
    for o in report.outcomes:
        d = o.decision
        if d is None:
            table.add_row(o.pool, "?", "", "", "", "", "", "", "[red]failed[/]")
            continue
        table.add_row(
            d.pool,
            str(d.current),
            "—" if d.forecast_rps is None else f"{d.forecast_rps:.4g}",
            "—" if d.observed_rps is None else f"{d.observed_rps:.4g}",
            "—" if d.forecast_nodes is None else str(max(d.forecast_nodes, d.reactive_nodes or 0)),
            shaped_by(d),
            str(d.desired),
            "held" if d.held else d.action,
            o.status.replace("_", " "),
        )
    return table


def shaped_by(decision: Decision) -> str:
    """Short labels of what moved the count off the forecast: 'schedule floor 50, pool max 80'."""
    labels = [
        r.code.replace("_", " ") + (f" {r.nodes}" if r.nodes is not None else "")
        for r in decision.reasons
        if r.code not in ("forecast", "observed", "metrics_unavailable")
    ]
    return ", ".join(labels) or "—"


def explanations(report: TickReport) -> list[str]:
    """Per pool: every reason of its decision, then what went wrong applying it."""
    lines = []
    for o in report.outcomes:
        if o.decision is not None:
            lines.append(f"[bold]{o.pool}[/]: " + "; ".join(r.message for r in o.decision.reasons))
        if o.error:
            lines.append(f"[red]{o.pool}: {o.status}[/]: {o.error}")
    return lines


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
        for line in explanations(report):  # full sentences, not squeezed into table cells
            console.print(line, highlight=False)
