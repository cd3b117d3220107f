"""What the node step did, as events for Slack, the console and the audit log (pure)."""

from __future__ import annotations

from datetime import datetime

from autoscaler.core.durations import format_duration_s
from autoscaler.core.nodes import NodeAction, NodeReport
from autoscaler.core.report import Event

PROBLEMS = (
    "launch_failed",
    "no_node",
    "node_down",
    "drain_timeout",
    "ambiguous",
    "unreadable",
    "no_attribute",
    "foreign",
    "az_rebalance",
)
"""The families of node problems and warnings (the ``problem`` label of forescale_node_problems_total)."""


def problem_kind(key: str | None) -> str:
    """'launch_failed:ASG x:123' → 'launch_failed' (the problem's family, a metric label)."""
    return (key or "other").split(":", 1)[0]


def node_events(pool: str, report: NodeReport, at: datetime) -> list[Event]:
    """One event per kind of action done, one per problem reported for the first time, one for new boots
    (nothing for dry runs, nor when the step could not read anything)."""
    if report.dry_run or report.error:
        return []
    out = []
    by_kind: dict[str, list[NodeAction]] = {}
    for action in report.actions:
        if action.status == "done":
            by_kind.setdefault(action.kind, []).append(action)
    for kind, acts in by_kind.items():
        details: dict[str, object] = {"group": report.group}
        details["actions"] = [
            {"node": a.node, "node_id": a.node_id, "machine": a.machine, "seconds": a.seconds} for a in acts
        ]
        out.append(Event(f"nodes.{kind}", pool, "; ".join(a.message for a in acts), at, details))
    for action in report.actions:
        if action.reported_once:
            details = {"key": action.key, "machine": action.machine, "problem": problem_kind(action.key)}
            out.append(Event(f"nodes.{action.kind}", pool, action.message, at, details))
    if report.boots:
        message = "; ".join(
            f"{b.node} ({b.machine}) booted in {format_duration_s(b.seconds)} (asked {b.asked_at:%H:%M:%S}, "
            f"allocation running {b.running_at:%H:%M:%S} UTC)"
            for b in report.boots
        )
        out.append(Event("nodes.boot", pool, message, at, {"boots": [b.to_dict() for b in report.boots]}))
    return out
