"""The small plugin interfaces of the tick (nomad-autoscaler style): source, target, notifier, overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from overrides.effects import OverrideEffect
from predictor.series import RateSeries

if TYPE_CHECKING:
    from autoscaler.config import PoolConfig
    from autoscaler.decision import Decision


class MetricsSource(Protocol):
    """Gives the request-rate history of a pool. Raises MetricsUnavailable when it cannot."""

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries: ...


class Target(Protocol):
    """Where counts are read and applied (Nomad, or the simulated cluster)."""

    def current_count(self, pool: PoolConfig) -> int:
        """Running + pending allocations of the pool's group. Raises TargetError."""
        ...

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        """Apply ``decision.desired``; return a short note (e.g. the eval ID). Raises TargetError."""
        ...


Status = Literal["applied", "unchanged", "dry_run", "deferred", "failed"]


@dataclass(frozen=True)
class PoolOutcome:
    """What the tick did for one pool: the decision and whether/how it was applied."""

    pool: str
    status: Status
    decision: Decision | None
    note: str = ""
    error: str | None = None


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


class Notifier(Protocol):
    """Tells people. Must never raise into the tick (implementations catch and count their errors)."""

    def notify(self, report: TickReport) -> None:
        """Once per tick, after the target has answered: changes, holds, failures, events."""
        ...

    def announce(self, event: Event) -> None:
        """Outside a tick: e.g. `forescale override set` announcing the new override at once."""
        ...


class OverrideProvider(Protocol):
    """Active schedule rules and manual overrides of a pool at a time."""

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]: ...

    def drain_events(self, now: datetime) -> Sequence[Event]:
        """Events produced since the last call (e.g. overrides that expired), each reported once."""
        ...


class NoOverrides:
    """The provider when no schedule or store is configured."""

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        return ()

    def drain_events(self, now: datetime) -> Sequence[Event]:
        return ()
