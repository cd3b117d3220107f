"""What a tick did: one PoolOutcome per pool, the events around it, all in one TickReport."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from autoscaler.core.decision import Decision, Estimate

if TYPE_CHECKING:  # an annotation only: keeps pydantic (via core.durations) out of the CLI's start-up
    from autoscaler.core.nodes import NodeReport

# shadow: decided and reported as "would scale", never applied (mode: shadow, or `run --dry-run`);
# off: the pool's mode is off, it was not evaluated.
Status = Literal["applied", "unchanged", "dry_run", "shadow", "deferred", "failed", "off"]


@dataclass(frozen=True)
class PoolOutcome:
    """What the tick did for one pool: the decision and whether/how it was applied."""

    pool: str
    status: Status
    decision: Decision | None
    note: str = ""
    error: str | None = None
    nodes: NodeReport | None = None  # what the node step did with the pool's machines (provider set)
    estimate: Estimate | None = None  # the forecast alone, when the decision failed for want of the current count


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
    guard: bool = False  # a fast guard check between ticks: only the pools it scaled are listed
    skipped: tuple[str, ...] = ()  # pools not started before the deadline (they go first next tick)

    @property
    def changes(self) -> list[PoolOutcome]:
        return [o for o in self.outcomes if o.status == "applied"]

    @property
    def would_scale(self) -> list[PoolOutcome]:
        """Changes decided but not applied because the pool is in shadow (or the daemon runs with --dry-run)."""
        return [o for o in self.outcomes if o.status == "shadow"]
