"""A simulated cluster (DESIGN.md "Backtest"): new nodes are ready after lead_time; scale-down is
immediate, still-warming nodes first (newest first)."""

from __future__ import annotations

import bisect

from autoscaler.core.decision import Decision
from autoscaler.core.ports import Clock
from autoscaler.core.settings.forescale import PoolConfig


class SimulatedCluster:
    """Implements Target for any number of pools; counts running + warming nodes as current."""

    def __init__(self, clock: Clock, initial: dict[str, int] | None = None) -> None:
        self.clock = clock
        self._ready_at: dict[str, list[float]] = {}
        for pool, count in (initial or {}).items():
            self.set_ready(pool, count)

    def set_ready(self, pool: str, count: int) -> None:
        """Start a pool with ``count`` nodes already ready."""
        self._ready_at[pool] = [float("-inf")] * count

    def nodes(self, pool: str) -> list[float]:
        return self._ready_at.setdefault(pool, [])

    def current_count(self, pool: PoolConfig) -> int:
        return len(self.nodes(pool.name))

    def ready_count(self, pool: str, at: float) -> int:
        return bisect.bisect_right(self.nodes(pool), at)

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        self.resize(pool.name, decision.desired, pool.lead_time.total_seconds())
        return "simulated"

    def resize(self, pool: str, count: int, lead_s: float) -> None:
        nodes = self.nodes(pool)  # sorted by ready time
        if count > len(nodes):
            ready = self.clock.now().timestamp() + lead_s
            nodes.extend([ready] * (count - len(nodes)))
        elif count < len(nodes):
            del nodes[count:]  # the latest-ready (warming, newest) go first
