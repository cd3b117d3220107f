"""A simulated cluster (DESIGN.md "Backtest"): new nodes are ready after lead_time; scale-down is
immediate, still-warming nodes first (newest first).

It reports the same three counts as Nomad (PoolState): every node asked for is *desired*; a node whose
machine is still booting is *queued* (as in Nomad, where the allocation waits for a registered node), and a
ready one is *placed*. Decisions step from the desired count, exactly as against Nomad.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime

from autoscaler.core.decision import Decision, PoolState
from autoscaler.core.durations import format_duration
from autoscaler.core.ports import Clock
from autoscaler.core.settings.forescale import PoolConfig


class SimulatedCluster:
    """Implements Target for any number of pools."""

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

    def desired_count(self, pool: str) -> int:
        return len(self.nodes(pool))

    def ready_count(self, pool: str, at: float) -> int:
        return bisect.bisect_right(self.nodes(pool), at)

    def status(self, pool: PoolConfig) -> PoolState:
        desired = self.desired_count(pool.name)
        placed = self.ready_count(pool.name, self.clock.now().timestamp())
        queued = desired - placed
        reason = f"{queued} machine(s) still booting (simulated lead time {format_duration(pool.lead_time)})"
        return PoolState(desired, placed, queued, running=placed, queued_reason=reason if queued else None)

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        before = self.desired_count(pool.name)
        lead_s = pool.lead_time.total_seconds()
        self.resize(pool.name, decision.desired, lead_s)
        if decision.desired > before:
            ready = datetime.fromtimestamp(self.clock.now().timestamp() + lead_s, UTC)
            return f"simulated: {decision.desired - before} node(s) queued while booting, ready at {ready:%H:%M} UTC"
        return f"simulated: {before - decision.desired} node(s) stopped"

    def resize(self, pool: str, count: int, lead_s: float) -> None:
        nodes = self.nodes(pool)  # sorted by ready time
        if count > len(nodes):
            ready = self.clock.now().timestamp() + lead_s
            nodes.extend([ready] * (count - len(nodes)))
        elif count < len(nodes):
            del nodes[count:]  # the latest-ready (warming, newest) go first
