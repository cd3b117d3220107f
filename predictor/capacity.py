"""Capacity maths: request rate → nodes, from the per-node throughput measured in load tests."""

from __future__ import annotations

import math


def nodes_for(rps: float, capacity_per_node: float, target_utilization: float = 1.0) -> int:
    """Smallest node count that serves ``rps`` with each node at most ``target_utilization`` busy."""
    if capacity_per_node <= 0:
        raise ValueError("capacity_per_node must be > 0")
    if not 0 < target_utilization <= 1:
        raise ValueError("target_utilization must be in (0, 1]")
    if not math.isfinite(rps) or rps <= 0:
        return 0
    # A tiny epsilon keeps 100.0000001 % from costing a whole extra node due to float noise.
    return max(0, math.ceil(rps / (capacity_per_node * target_utilization) - 1e-9))
