"""Nomad's placement metrics (``structs.AllocMetric`` of an evaluation's ``FailedTGAllocs``) in one line.

Used where forescale has to say why Nomad cannot place allocations: ``deploy`` (the plan's dry run) and the
Nomad target (the blocked evaluation behind a pool's queued workers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def unplaced(metric: Mapping[str, Any]) -> int:
    """Allocations the metric stands for: the first failure plus the coalesced ones."""
    return int(metric.get("CoalescedFailures") or 0) + 1


def explain_metric(metric: Mapping[str, Any]) -> str:
    """How many nodes were looked at and what filtered or exhausted them, e.g.
    "3 of 3 node(s) in pool 'gpu' evaluated; 3 ruled out by missing devices"."""
    pool = metric.get("NodePool") or "default"
    in_pool = int(metric.get("NodesInPool") or 0)
    evaluated = int(metric.get("NodesEvaluated") or 0)
    if in_pool == 0:
        return f"no node in node pool '{pool}' (machines still to be started, or a wrong node_pool)"
    parts = [f"{evaluated} of {in_pool} node(s) in pool '{pool}' evaluated"]
    reasons = {**(metric.get("ConstraintFiltered") or {}), **(metric.get("DimensionExhausted") or {})}
    for reason, count in sorted(reasons.items(), key=lambda kv: -int(kv[1])):
        parts.append(f"{count} ruled out by {reason}")
    if not evaluated:
        available = metric.get("NodesAvailable") or {}
        dcs = ", ".join(f"{dc}: {n}" for dc, n in sorted(available.items())) or "none"
        parts.append(f"none ready and eligible in the job's datacenters ({dcs})")
    return "; ".join(parts)
