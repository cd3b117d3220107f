"""What a tick did: one PoolOutcome per pool, the events around it, all in one TickReport."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from autoscaler.core.decision import Decision
from autoscaler.core.nodes import NodeReport

Status = Literal["applied", "unchanged", "dry_run", "deferred", "failed"]


@dataclass(frozen=True)
class PoolOutcome:
    """What the tick did for one pool: the decision and whether/how it was applied."""

    pool: str
    status: Status
    decision: Decision | None
    note: str = ""
    error: str | None = None
    nodes: NodeReport | None = None  # what the node step did with the pool's machines (provider set)


@dataclass(frozen=True)
class Event:
    """Something other than a tick's decisions that notifiers announce (override set/cleared/expired)."""

    kind: str
    pool: str
    message: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TickReport:
    """Everything one tick did, in pool order; handed to notifiers once per tick."""

    at: datetime
    outcomes: tuple[PoolOutcome, ...]
    events: tuple[Event, ...] = ()
    dry_run: bool = False
    duration_s: float = 0.0

    @property
    def changes(self) -> list[PoolOutcome]:
        return [o for o in self.outcomes if o.status == "applied"]
