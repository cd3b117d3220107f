"""Boots forescale saw, and the lead time learned from them (``lead_time: auto``) (pure).

A boot is sampled only for a machine forescale saw *booting* — present in the group with no ready node of the
pool — and later saw serving with the pool's allocation running: from the machine's launch (else forescale's
last ask before it was first seen, else when it was first seen) to the allocation's start. A machine that was
already serving when forescale first saw it (an existing fleet, a restart) teaches nothing: its boot is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import numpy as np

from autoscaler.core.nodes import BootSample, LeadTime
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes.fleet import Slot


def boots(
    pool: PoolConfig,
    slots: Iterable[Slot],
    now: datetime,
    *,
    booting_seen: frozenset[str],
    sampled: frozenset[str],
    first_seen: Mapping[str, datetime],
    last_ask: datetime | None,
) -> list[BootSample]:
    out = []
    for slot in slots:
        machine, node = slot.machine, slot.node
        if slot.kind != "serving" or node is None or machine.id in sampled or machine.id not in booting_seen:
            continue
        running = [
            a
            for a in node.allocations
            if a.job == pool.nomad.job and a.group == pool.nomad.group and a.client_status == "running"
        ]
        if not running:
            continue
        seen = first_seen.get(machine.id, now)
        start = machine.launched_at
        if start is None:
            start = last_ask if last_ask is not None and last_ask <= seen else seen
        known = [a.running_since for a in running if a.running_since is not None]
        at = min(known, default=now)
        out.append(BootSample(pool.name, machine.id, node.name, start, max(at, start)))
    return out


def lead_time(pool: PoolConfig, samples: Sequence[BootSample], now: datetime) -> LeadTime:
    """The lead time a pool plans with: configured, or (``lead_time: auto``) the p95 of recent boots."""
    window = [b.seconds for b in samples if b.pool == pool.name and b.running_at >= now - pool.nodes.boot_window]
    p50 = float(np.percentile(window, 50)) if window else None
    p95 = float(np.percentile(window, 95)) if window else None
    configured = pool.lead_time.total_seconds()
    if not pool.lead_time_auto:
        return LeadTime(configured, "configured", len(window), p50, p95)
    if len(window) < pool.nodes.min_boots or p95 is None:
        return LeadTime(configured, "initial", len(window), p50, p95)
    return LeadTime(p95, "learned", len(window), p50, p95)


class PoolLeadTimes:
    """Implements ``LeadTimes``: every pool's lead time from one source of boots (the node step's memory, the
    audit log's boots for a backtest; none: every pool its configured value)."""

    def __init__(self, boots: Callable[[], Sequence[BootSample]] = tuple) -> None:
        self._boots = boots

    def of(self, pool: PoolConfig, now: datetime) -> LeadTime:
        return lead_time(pool, self._boots(), now)
