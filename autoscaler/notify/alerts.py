"""Which pool problems to announce, and when: once, again when they change or after a while, then the recovery.

Pure code, shared by notifiers: ``FailureTracker`` turns each TickReport into alerts and recoveries, and
``digest`` gives what one tick has to say.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from autoscaler.core.decision import Decision
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.core.settings.forescale import PoolConfig

ProblemKind = Literal["held", "degraded", "deferred", "failed"]
AlertState = Literal["new", "changed", "repeat"]


# -- what went wrong with a pool, and whether to say so again ------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pool this tick: held (metrics), a degraded forecast (a gap, a warming rate(), an
    unconfirmed sample), or Nomad deferred/failed the change."""

    kind: ProblemKind
    cause: str


def problems_of(outcome: PoolOutcome) -> tuple[Problem, ...]:
    out: list[Problem] = []
    d = outcome.decision
    if d is not None and d.held:
        out.append(Problem("held", d.hold_cause or "metrics unavailable"))
    if d is not None and d.degraded:
        out.append(Problem("degraded", d.degraded))
    if outcome.status in ("failed", "deferred"):
        out.append(Problem(outcome.status, outcome.error or "unknown error"))
    nodes = outcome.nodes
    if nodes is not None and not nodes.dry_run:
        # API failures of the node step repeat and recover like any failure; one-time problems (a stuck drain,
        # a machine that never registered) are events instead, announced once.
        failures = [nodes.error] if nodes.error else []
        failures += [f"{a.message}: {a.error}" for a in nodes.actions if a.status == "failed" and a.kind != "problem"]
        if failures:
            out.append(Problem("failed", "machines: " + "; ".join(f for f in failures if f)))
    return tuple(out)


_HEX_ID = re.compile(r"\b[0-9a-f]{8}(?:-?[0-9a-f]{4}){3}-?[0-9a-f]{12}\b|\b[0-9a-f]{12,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def signature(problems: tuple[Problem, ...]) -> str:
    """Identity of a failure: numbers and IDs (ages, eval IDs, indexes) vary tick to tick; the cause does not."""
    parts = []
    for p in problems:
        cause = _NUMBER.sub("#", _HEX_ID.sub("<id>", p.cause.strip().lower()))
        parts.append(f"{p.kind}:{cause}")
    return " | ".join(parts)


@dataclass(frozen=True)
class Alert:
    """A pool problem to announce in this tick's message."""

    outcome: PoolOutcome
    problems: tuple[Problem, ...]
    since: datetime
    state: AlertState
    signature: str


@dataclass(frozen=True)
class Recovery:
    """A pool that had a problem and no longer has one."""

    outcome: PoolOutcome
    problems: tuple[Problem, ...]
    since: datetime


@dataclass
class _Open:
    problems: tuple[Problem, ...]
    signature: str
    since: datetime
    announced_at: datetime | None


class FailureTracker:
    """Announce a failure once, again when it changes or after ``repeat_after``; announce the recovery.

    Thread-safe: the tick updates it, the delivery thread re-arms alerts whose message did not get through.
    """

    def __init__(self, repeat_after: timedelta) -> None:
        self.repeat_after = repeat_after
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()

    def update(
        self, outcomes: tuple[PoolOutcome, ...], now: datetime, close: bool = True
    ) -> tuple[list[Alert], list[Recovery]]:
        """``close=False`` (a guard check's outcomes): problems are opened, never closed — a guard's clean
        scale-up says nothing about the tick's metrics or forecast."""
        alerts: list[Alert] = []
        recoveries: list[Recovery] = []
        with self._lock:
            for outcome in outcomes:
                problems = problems_of(outcome)
                known = self._open.get(outcome.pool)
                if not problems:
                    if known is not None and close:
                        del self._open[outcome.pool]
                        recoveries.append(Recovery(outcome, known.problems, known.since))
                    continue
                sig = signature(problems)
                state: AlertState | None
                if known is None:
                    known = self._open[outcome.pool] = _Open(problems, sig, now, None)
                    state = "new"
                elif known.signature != sig:
                    known.problems, known.signature = problems, sig
                    state = "changed" if known.announced_at is not None else "new"
                elif known.announced_at is None:
                    state = "new"
                elif now - known.announced_at >= self.repeat_after:
                    state = "repeat"
                else:
                    state = None
                if state is not None:
                    known.announced_at = now
                    alerts.append(Alert(outcome, problems, known.since, state, sig))
        return alerts, recoveries

    def rearm(self, pool: str, sig: str) -> None:
        """The message announcing this failure was not delivered: announce it again next tick."""
        with self._lock:
            known = self._open.get(pool)
            if known is not None and known.signature == sig:
                known.announced_at = None

    def open_pools(self) -> list[str]:
        with self._lock:
            return sorted(self._open)


class ShadowTracker:
    """Shadow pools' "would scale" changes, announced once per (current, desired): a shadow fleet never moves, so
    the same wish would otherwise be posted every tick."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def update(self, outcomes: tuple[PoolOutcome, ...]) -> list[PoolOutcome]:
        fresh = []
        with self._lock:
            for o in outcomes:
                d = o.decision
                if o.status != "shadow" or d is None:
                    if o.status not in ("failed", "off"):  # a pool back at its wish (or active) starts over
                        self._last.pop(o.pool, None)
                    continue
                if self._last.get(o.pool) != (d.current, d.desired):
                    self._last[o.pool] = (d.current, d.desired)
                    fresh.append(o)
        return fresh


LARGE_SCALE_IN_SHARE = 0.25
LARGE_SCALE_IN_NODES = 3


def large_scale_in(
    decision: Decision,
    pool: PoolConfig | None,
    *,
    min_nodes: int = LARGE_SCALE_IN_NODES,
    min_share: float = LARGE_SCALE_IN_SHARE,
) -> str | None:
    """Why a scale-in deserves attention: large in nodes (at least ``min_nodes``) *and* in share (more than
    ``min_share`` of the pool, or more nodes than ``max_step_down`` allows). Both, so that 3 → 2 (one node,
    33 %) or 400 → 390 (ten nodes, 2.5 %) is no alarm (``slack.large_scale_in_nodes``/``_pct``).

    None for anything else. With the default step limit (25 %) this happens only when an override, a pool
    max or the end of a pin takes the count down.
    """
    removed = decision.current - decision.desired
    if removed <= 0 or decision.current == 0 or removed < min_nodes:
        return None
    share = removed / decision.current
    limit = pool.step_down_nodes(decision.current) if pool is not None else None
    if limit is not None and removed > limit:
        return (
            f"large scale-in: −{removed} nodes ({share:.0%} of {decision.current}), more than max_step_down ({limit})"
        )
    if share > min_share:
        return f"large scale-in: −{removed} nodes, {share:.0%} of {decision.current}"
    return None


@dataclass(frozen=True)
class TickDigest:
    """What one tick has to say: applied changes, shadow "would scale" changes, alerts, recoveries, events."""

    at: datetime
    changes: list[PoolOutcome] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    would_scale: list[PoolOutcome] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.alerts or self.recoveries or self.events or self.would_scale)


def digest(
    report: TickReport, tracker: FailureTracker, now: datetime, shadow: ShadowTracker | None = None
) -> TickDigest:
    """Nothing for dry runs; otherwise the changes, new shadow wishes, the alerts the tracker lets through,
    recoveries and events."""
    if report.dry_run:
        return TickDigest(report.at)
    alerts, recoveries = tracker.update(report.outcomes, now, close=not report.guard)
    changes = [o for o in report.outcomes if o.status == "applied" and o.decision is not None]
    would = shadow.update(report.outcomes) if shadow is not None else report.would_scale
    return TickDigest(report.at, changes, alerts, recoveries, list(report.events), would)
