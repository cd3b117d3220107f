"""How tick and plan show a TickReport: a Rich table, or JSON for scripts."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from autoscaler.core.decision import Decision, Estimate
from autoscaler.core.durations import format_duration_s
from autoscaler.core.nodes import NodeReport
from autoscaler.core.report import TickReport
from autoscaler.core.text import markup_safe, redact


def report_table(report: TickReport, title: str) -> Table:
    """The numbers, one row per pool (never wrapped); the reasons follow the table in full sentences.

    Pools with a node provider add two columns: machines (provider capacity before → after) and the boot
    times observed (p50/p95, which ``lead_time: auto`` plans with).
    """
    with_nodes = any(o.nodes is not None for o in report.outcomes)
    caption = (
        "now: the group's count in Nomad; placed: running or starting there (+Nq: N queued, not placeable yet); "
        "fcst/obs: forecast peak and observed rate, req/s; need: nodes for the higher of the two"
    )
    if with_nodes:
        caption += "; machines: provider capacity; boot: observed p50/p95 (ask → allocation running)"
    table = Table(title=title, caption=caption)
    columns = [
        ("pool", "left"),
        ("now", "right"),
        ("placed", "right"),
        ("fcst", "right"),
        ("obs", "right"),
        ("need", "right"),
        ("shaped by", "left"),
        ("final", "right"),
        ("action", "left"),
        ("status", "left"),
    ]
    if with_nodes:
        columns[-1:-1] = [("machines", "right"), ("boot", "right")]
    for col, just in columns:
        if just == "right":  # numbers never wrap
            table.add_column(col, justify="right", no_wrap=True)
        else:  # words may fold on a narrow terminal
            table.add_column(col, overflow="fold")
    for o in report.outcomes:
        d = o.decision
        extra = [machines_cell(o.nodes), boot_cell(o.nodes)] if with_nodes else []
        if o.status == "off":
            table.add_row(o.pool, "", "", "", "", "", "mode: off", "", "", *["" for _ in extra], "off")
            continue
        if d is None:
            e = o.estimate
            if e is None:
                table.add_row(o.pool, "?", "", "", "", "", "", "", "", *extra, "[red]failed[/]")
            else:  # the count is unknown (e.g. Nomad unreachable) but the forecast is not
                fcst, obs = f"{e.forecast_rps:.4g}", f"{e.observed_rps:.4g}"
                count = "?" if e.count is None else str(e.count)
                shaped = shaped_by(e)
                table.add_row(o.pool, "?", "", fcst, obs, str(e.need), shaped, count, "", *extra, "[red]failed[/]")
            continue
        table.add_row(
            d.pool,
            str(d.current),
            placed_cell(d),
            "—"
            if d.forecast_rps is None
            else f"{d.forecast_rps:.4g}" + (" [yellow](degraded)[/]" if d.degraded else ""),
            "—" if d.observed_rps is None else f"{d.observed_rps:.4g}",
            "—" if d.need is None else str(d.need),
            shaped_by(d),
            str(d.desired),
            "held: no metrics" if d.held else ("unchanged" if not d.changed else d.action),
            *extra,
            ("shadow: would scale" if o.status == "shadow" else o.status.replace("_", " "))
            + (" [red](machines)[/]" if o.nodes is not None and o.nodes.failed else ""),
        )
    return table


def machines_cell(nodes: NodeReport | None) -> str:
    if nodes is None:
        return "—"
    if nodes.error:
        return "[red]?[/]"
    before, after = nodes.capacity_before, nodes.capacity_after
    if before is None or after is None:
        return "?"
    return f"{before} → {after}" if before != after else str(after)


def boot_cell(nodes: NodeReport | None) -> str:
    lead = nodes.lead_time if nodes is not None else None
    if lead is None or lead.p50_s is None or lead.p95_s is None:
        return "—"
    return f"{format_duration_s(round(lead.p50_s))}/{format_duration_s(round(lead.p95_s))}"


def node_lines(pool: str, nodes: NodeReport) -> list[str]:
    """The node step in sentences: the fleet, the group's state, every action with its reason, the lead time,
    errors in red."""
    if nodes.error:
        return [f"[red]{pool}: machines[/]: {markup_safe(nodes.error)}"]
    lines = []
    if nodes.counts is not None:
        when = "if this plan runs" if nodes.dry_run else "after this step"
        lines.append(f"{pool}: fleet {when}: {fleet_text(nodes)}")
    for note in nodes.notes:
        lines.append(f"[yellow]{pool}: group[/]: {markup_safe(note)}")
    for a in nodes.actions:
        prefix = "would " if nodes.dry_run and a.status == "planned" else ""
        if a.kind == "warning":
            lines.append(f"[yellow]{pool}: group[/]: {markup_safe(a.message)}")
        elif a.status == "failed":
            tail = f": {markup_safe(a.error)}" if a.error else ""
            lines.append(f"[red]{pool}: machines[/]: {prefix}{markup_safe(a.message)}{tail}")
        else:
            lines.append(f"{pool}: machines: {prefix}{markup_safe(a.message)}")
    if nodes.lead_time is not None:
        lines.append(f"{pool}: {markup_safe(nodes.lead_time.explain())}")
    return lines


def fleet_text(nodes: NodeReport) -> str:
    """'4 machines: 2 serving, 1 booting, 1 draining; capacity 4' (only the states that have machines)."""
    c = nodes.counts
    if c is None:
        return ""
    parts = [
        f"{n} {word}"
        for n, word in (
            (c.serving, "serving"),
            (c.booting, "booting"),
            (c.draining, "draining"),
            (c.unregistered, "never registered"),
            (c.down, "down"),
            (c.foreign, "of another node pool"),
            (c.other, "held/standby/ambiguous"),
        )
        if n
    ]
    text = f"{c.machines} machine{'s' if c.machines != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")
    text += f"; capacity {c.capacity}"
    if nodes.backoff is not None:
        text += f"; scale-out backs off until {nodes.backoff.until:%H:%M} UTC ({nodes.backoff.reason})"
    return text


def placed_cell(decision: Decision) -> str:
    """'10' or '10+2q' (2 queued: Nomad cannot place them yet); '—' when the target did not say."""
    if decision.placed is None:
        return "—"
    return f"{decision.placed}+{decision.queued}q" if decision.queued else str(decision.placed)


def shaped_by(decision: Decision | Estimate) -> str:
    """Short labels of what moved the count off the forecast: 'schedule floor 50, pool max 80'."""
    labels = [
        r.code.replace("_", " ") + (f" {r.nodes}" if r.nodes is not None else "")
        for r in decision.reasons
        if r.code not in ("forecast", "observed", "metrics_unavailable")
    ]
    return markup_safe(", ".join(labels)) or "—"


def explanations(report: TickReport) -> list[str]:
    """Per pool: every reason of its decision, then what went wrong applying it."""
    lines = []
    for o in report.outcomes:
        if o.decision is not None:
            lines.append(f"[bold]{o.pool}[/]: " + "; ".join(markup_safe(r.message) for r in o.decision.reasons))
        elif o.estimate is not None:
            reasons = "; ".join(markup_safe(r.message) for r in o.estimate.reasons)
            lines.append(f"[bold]{o.pool}[/]: {reasons} (current count unknown: nothing decided)")
        if o.status == "shadow":
            lines.append(f"[yellow]{o.pool}: {markup_safe(o.note)}[/]")
        elif o.status == "applied" and o.note:  # Nomad's answer, e.g. "eval 116f3ede": what to look up in Nomad
            lines.append(f"{o.pool}: applied: {markup_safe(o.note)}")
        if o.error:
            lines.append(f"[red]{o.pool}: {o.status}[/]: {markup_safe(o.error)}")
        if o.nodes is not None:
            lines.extend(node_lines(o.pool, o.nodes))
    return lines


def report_json(report: TickReport) -> str:
    """The report as JSON; configured secrets and URL credentials (e.g. in an error text) are redacted."""
    return redact(
        json.dumps(
            {
                "at": report.at.isoformat(),
                "dry_run": report.dry_run,
                "guard": report.guard,
                "duration_s": round(report.duration_s, 4),
                "skipped": list(report.skipped),  # not started before the deadline: first next tick
                "pools": [
                    {
                        "pool": o.pool,
                        "status": o.status,
                        "note": o.note,
                        "error": o.error,
                        "decision": o.decision.to_dict() if o.decision else None,
                        "nodes": o.nodes.to_dict() if o.nodes else None,
                        "estimate": o.estimate.to_dict() if o.estimate else None,
                    }
                    for o in report.outcomes
                ],
                "events": [
                    {"kind": e.kind, "pool": e.pool, "message": e.message, "details": e.details} for e in report.events
                ],
            },
            indent=2,
            default=str,
        )
    )


def print_report(console: Console, report: TickReport, title: str, as_json: bool) -> None:
    if as_json:
        console.print_json(report_json(report))
    elif report.guard and not report.outcomes:
        console.print(f"{title}: every pool within capacity (or its rate unavailable); nothing to do")
    else:
        console.print(report_table(report, title))
        for line in explanations(report):  # full sentences, not squeezed into table cells
            console.print(line, highlight=False)
        if report.skipped:
            console.print(
                f"[yellow]deadline[/]: {len(report.skipped)} pool(s) not decided before the tick deadline, first next "
                f"tick: {markup_safe(', '.join(report.skipped))}",
                highlight=False,
            )
