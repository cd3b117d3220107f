"""The node step: the pool's machines follow its count (docs/nodes.md).

It runs in the tick's apply step, after decide and the target. The pure parts plan from what the provider and
Nomad say now; the reconciler reads the state through the ports, executes the plan (unless it is a dry run)
and returns a ``NodeReport``:

    fleet.py       every machine → one slot (serving, booting, retiring, dead, foreign, ambiguous, …)
    select.py      which serving nodes scale-in drains (least_busy, newest, empty_first)
    drain.py       the drain deadline per node (Nomad's drainer), drains in progress → terminate / stuck
    launches.py    failed launches and gaps → reported once, capacity lowered, scale-out backed off
    boots.py       boots seen from launch to running → lead_time: auto
    plan.py        the steps in order (pure)
    events.py      the report → events for Slack, the console and the audit log
    reconciler.py  the I/O: read, plan, execute, remember
"""

from autoscaler.core.nodes import Backoff
from autoscaler.policy.nodes.boots import PoolLeadTimes, lead_time
from autoscaler.policy.nodes.drain import DEFAULT_DRAIN_DEADLINE, drain_deadline, node_drain_deadline
from autoscaler.policy.nodes.events import node_events, problem_kind
from autoscaler.policy.nodes.fleet import Fleet, Slot, classify
from autoscaler.policy.nodes.plan import NodeMemoryView, NodePlan, plan_nodes
from autoscaler.policy.nodes.reconciler import NodeMemory, NodeReconciler
from autoscaler.policy.nodes.select import select_nodes

__all__ = [
    "DEFAULT_DRAIN_DEADLINE",
    "Backoff",
    "Fleet",
    "NodeMemory",
    "NodeMemoryView",
    "NodePlan",
    "NodeReconciler",
    "PoolLeadTimes",
    "Slot",
    "classify",
    "drain_deadline",
    "lead_time",
    "node_drain_deadline",
    "node_events",
    "plan_nodes",
    "problem_kind",
    "select_nodes",
]
