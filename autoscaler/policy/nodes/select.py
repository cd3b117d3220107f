"""Which serving nodes scale-in drains (pure; ties are deterministic).

A node's work is its allocations still wanted by their jobs (desired status ``run``): right after a count
drops, Nomad's stopped allocations read ``running`` for shutdown_delay + kill_timeout, and a node holding only
those is emptying, not busy.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.core.nodes import PoolNode

STRATEGIES = ("least_busy", "newest", "empty_first")


def select_nodes(
    nodes: Sequence[PoolNode], count: int, strategy: str, ignore_system: bool
) -> list[tuple[PoolNode, str]]:
    """The ``count`` nodes to drain, best first, each with why it was picked.

    least_busy   fewest allocations still wanted; ties: newest (highest create index)
    newest       highest create index (the node registered last), whatever runs on it
    empty_first  nodes with no wanted allocation (system jobs ignored) first, newest first; then least_busy
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}")
    if count <= 0 or not nodes:
        return []

    def busy(n: PoolNode) -> int:
        return len(n.work())

    if strategy == "newest":
        ranked = sorted(nodes, key=lambda n: (-n.create_index, n.id))
    elif strategy == "empty_first":
        ranked = sorted(nodes, key=lambda n: (len(n.work(ignore_system=True)) > 0, busy(n), -n.create_index, n.id))
    else:
        ranked = sorted(nodes, key=lambda n: (busy(n), -n.create_index, n.id))
    chosen = ranked[:count]
    kept = ranked[count:]
    out = []
    for node in chosen:
        n_allocs = busy(node)
        stopping = len(node.live_allocations()) - n_allocs
        what = f"{n_allocs} live allocation{'s' if n_allocs != 1 else ''}"
        if stopping:
            what += f", {stopping} stopping"
        if strategy == "newest":
            why = f"newest (create index {node.create_index}; {what})"
        elif strategy == "empty_first" and not node.work(ignore_system=True):
            why = "empty (no live allocation" + (", system jobs ignored)" if n_allocs else ")")
        else:
            why = f"least busy ({what})"
        if kept:
            other = kept[0]
            why += f"; next candidate {other.name} has {busy(other)}"
        out.append((node, why))
    return out
