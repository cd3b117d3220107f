"""Every plugin interface of forescale, in one place (nomad-autoscaler style: small, typed, swappable).

    Clock             what time it is (SystemClock, ManualClock for tests, demo and backtest)
    MetricsSource     request-rate history of a pool (Prometheus, a trace file)
    Target            where a pool's counts are read and its desired count applied (Nomad, the simulated cluster)
    NodeProvider      a pool's machines: capacity up, exact machines down (AWS Auto Scaling Group, a command)
    NodeDirectory     Nomad's view of a pool's nodes: list with allocations, drain, eligibility, purge
    LeadTimes         the one lead time of each pool, configured or learned from boots, asked by every reader
    ChangeHistory     a target's own record of recent changes (Nomad's scaling events), for cooldowns
    Notifier          who is told (console, Slack); close() flushes background delivery
    AuditTrail        where every tick's decisions are recorded for later (the JSONL audit log)
    History           what earlier runs left behind, read back (the same audit log): actions, needs, boots, queues
    OverrideProvider  schedule rules + manual overrides in force for a pool at a time
    OverrideStore     where manual overrides are kept (a file, Nomad Variables, memory)
    LeaderLock        who may act: a lock held while scaling (a Nomad Variables lock, a local flock)
    TickScoped        an adapter whose reads one tick's pools share (``for_tick``: the node directory's snapshot)

Implementations subclass the Protocol when they want its no-op defaults (``Notifier.close``,
``OverrideStore.read_last_good``, ``OverrideProvider.warnings``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from autoscaler.core.decision import Decision, PastAction, PastNeed, PoolState
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.report import Event, TickReport

if TYPE_CHECKING:  # annotations only: `forescale --help` must not pay for what these import
    from autoscaler.core.history import PlacementRecord
    from autoscaler.core.nodes import BootSample, LeadTime, MachineGroup, PoolNode, TerminateResult
    from autoscaler.core.series import RateSeries
    from autoscaler.core.settings.forescale import PoolConfig

T = TypeVar("T")
R = TypeVar("R")


class Clock(Protocol):
    """The only way forescale code asks what time it is (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class MetricsSource(Protocol):
    """Gives the request-rate history of a pool. Raises MetricsUnavailable when it cannot.

    ``step_s`` is the source's own resolution (seconds between samples it serves): the tick asks for history on
    it and judges staleness by it (a sample more than two steps old is stale). ``fetch`` answers samples of
    ``query`` (req/s, in the source's query language) within ``[start, end]``, oldest first, none after
    ``end``; ``step_s`` there is the resolution asked for (the tick passes the source's own).
    """

    step_s: float

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries: ...


class Target(Protocol):
    """Where counts are read and applied (Nomad, or the simulated cluster)."""

    def status(self, pool: PoolConfig) -> PoolState:
        """The pool's desired, placed and queued counts (PoolState). Raises TargetError."""
        ...

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        """Set the desired count to ``decision.desired``; return a short note (e.g. the eval ID). Raises
        TargetError. The tick calls it only when that differs from the desired count it read."""
        ...


class NodeProvider(Protocol):
    """A pool's machines (docs/nodes.md). Every method raises NodeProviderError when the provider fails.

    The provider never picks machines itself: scale-in names the exact machines, each already drained in Nomad.
    It owns the mapping from a Nomad node to its machine (as cluster-autoscaler's ``NodeGroupForNode``).
    ``tests/contract/test_node_provider_contract.py`` holds every implementation to these promises.
    """

    kind: str  # the ``nodes.provider`` value, e.g. aws_asg

    @property
    def where(self) -> str:
        """The group in words, for messages: 'ASG ml-ocr-gpu (eu-west-1)'."""
        ...

    def describe(self, pool: PoolConfig) -> MachineGroup:
        """The capacity asked for, its bounds, the machines that exist now and the group's state (suspended
        processes, refreshes, failed launches)."""
        ...

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        """The id of the machine a Nomad node runs on, from the node's attributes (None: cannot tell)."""
        ...

    def node_key(self, pool: PoolConfig) -> str:
        """Which node attribute names the machine, for messages (e.g. 'unique.platform.aws.instance-id')."""
        ...

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        """Raise the capacity to ``desired`` (> ``group.desired``, ≤ ``group.max``); return a short note."""
        ...

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        """Lower the capacity to ``desired`` without removing any machine that exists: only launches that have
        not appeared are cancelled. Refuses (NodeProviderError) when more machines than ``desired`` exist."""
        ...

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> Sequence[TerminateResult]:
        """Terminate exactly these machines, lowering the capacity by as many (``replace``: keep the capacity,
        the provider launches replacements); one result per machine."""
        ...


class NodeDirectory(Protocol):
    """Nomad's nodes (``/v1/nodes``, ``/v1/node/:id…``). Raises TargetError (NomadError) when Nomad fails."""

    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        """The nodes matching the pool's ``nodes:`` filters, each with its allocations (machine ids unmapped)."""
        ...

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        """Every node outside the pool's filters, with its attributes (no allocations)."""
        ...

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        """Start a drain (Nomad makes the node ineligible); ``meta`` is kept in the node's LastDrain."""
        ...

    def cancel_drain(self, node_id: str, meta: dict[str, str]) -> None:
        """Cancel a drain and make the node eligible again."""
        ...

    def purge(self, node_id: str) -> None:
        """Remove the node from Nomad (after its machine is terminated)."""
        ...


class LeadTimes(Protocol):
    """A pool's lead time (asking for a node → it serves), resolved in one place: configured, or learned from the
    boots forescale saw (``lead_time: auto``). The tick's horizon, schedule rules' pre-warming, the predictor's
    headroom calibration, the queued-too-long warning and the backtest all ask it."""

    def of(self, pool: PoolConfig, now: datetime) -> LeadTime:
        """The lead time ``pool`` plans with at ``now``, and where it came from."""
        ...


@runtime_checkable
class TickScoped(Protocol):
    """An adapter whose reads the pools of one tick share (a target's or node directory's per-tick snapshot).

    The tick asks for ``for_tick()`` once and hands the view to all its pools; what the view read is forgotten
    with it, so the next tick reads afresh. A write through the view is never cached: the view reads again after
    it, as the adapter itself would.
    """

    def for_tick(self) -> TickScoped: ...


@runtime_checkable
class ChangeHistory(Protocol):
    """A target that keeps its own record of recent count changes (Nomad: ``GET /v1/job/:id/scale`` events).

    The tick reads it once per pool and process, so a lost or moved audit log never resets a cooldown.
    """

    def recent_changes(self, pool: PoolConfig, since: datetime, until: datetime) -> Sequence[PastAction]:
        """Changes of the pool's count between ``since`` and ``until``, oldest first. Raises TargetError."""
        ...


class Notifier(Protocol):
    """Tells people. Must never raise into the tick (implementations catch and count their errors)."""

    def notify(self, report: TickReport) -> None:
        """Once per tick, after the target has answered: changes, holds, failures, events."""
        ...

    def announce(self, event: Event) -> None:
        """Outside a tick: e.g. `forescale override set` announcing the new override at once."""
        ...

    def close(self, timeout_s: float | None = None) -> bool:
        """Deliver what is queued and stop (bounded by ``timeout_s``); True when nothing was lost."""
        return True


class AuditTrail(Protocol):
    """A durable record of every tick (and override change). Raises OSError when it cannot write."""

    location: str

    def record_tick(self, report: TickReport) -> None: ...

    def record_event(self, event: Event) -> None: ...


class History(Protocol):
    """What earlier runs left behind, read back by a new process (a one-shot `forescale tick` under cron, a
    restarted daemon): cooldowns, the scale-in window, ``lead_time: auto``, the last good forecast and queued-too-long
    episodes survive it. Unreadable records are skipped, never fatal; an absent history is empty."""

    def recent_actions(self, since: datetime) -> Sequence[PastAction]:
        """Changes applied to the target since ``since``, oldest first (cooldowns)."""
        ...

    def recent_needs(self, since: datetime) -> Sequence[PastNeed]:
        """What the metrics called for at every decision since ``since`` (the scale-in window)."""
        ...

    def node_history(self, since: datetime) -> tuple[Sequence[BootSample], set[str]]:
        """Boots observed since ``since`` (``lead_time: auto``) and every node problem already reported."""
        ...

    def placement_history(self) -> Sequence[PlacementRecord]:
        """Every decision's queued count and queued-too-long warning/recovery, oldest first."""
        ...

    def last_forecasts(self, since: datetime) -> Mapping[str, tuple[datetime, Mapping[str, Any]]]:
        """Each pool's last decision since ``since`` made on a good forecast (the guard's headroom, a degraded
        tick's fallback); none by default."""
        return {}

    def late_pools(self, since: datetime) -> Sequence[str]:
        """The pools a tick since ``since`` left undecided on its deadline (they go first); none by default."""
        return ()


class OverrideProvider(Protocol):
    """Active schedule rules and manual overrides of a pool at a time."""

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]: ...

    def drain_events(self, now: datetime) -> Sequence[Event]:
        """Events produced since the last call (e.g. overrides that expired), each reported once."""
        ...

    def warnings(self) -> Sequence[Event]:
        """Problems met since the last call (an unreadable store, an invalid schedule edit), without
        expiring anything: what `override list` and `schedule show` print under their tables."""
        return ()

    def for_tick(self, pools: Sequence[str], now: datetime) -> OverrideProvider:
        """The provider for one tick over ``pools`` at ``now`` (a store is then read once for all of them, not
        once per pool); by default this provider itself."""
        return self


class NoOverrides(OverrideProvider):
    """The provider when no schedule or store is configured."""

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        return ()

    def drain_events(self, now: datetime) -> Sequence[Event]:
        return ()


class OverrideStore(Protocol[R]):
    """Persistent manual overrides, per pool (``R``: a pool's records, ``overrides.manual.PoolRecords``)."""

    location: str

    def read(self, pools: Sequence[str]) -> dict[str, R]:
        """Records of these pools (empty records for pools without any). Raises OverrideError."""
        ...

    def modify(self, pool: str, fn: Callable[[R], T]) -> T:
        """Atomically apply ``fn`` to ``pool``'s records (mutated in place) and persist them.

        If ``fn`` raises, nothing is written. Raises OverrideError when the store is unreadable.
        """
        ...

    def read_last_good(self, pools: Sequence[str]) -> tuple[dict[str, R], str] | None:
        """The last copy forescale itself wrote and where it is, for when ``read`` fails; None if there is none."""
        return None

    # True when ``version`` can wait for a change (Nomad's blocking queries); False: the daemon polls it.
    blocking_version: bool = False

    def version(self, after: Hashable | None = None, wait_s: float = 0.0) -> Hashable | None:
        """A token that changes whenever the stored overrides may have changed (None: the store cannot tell,
        so a watcher re-reads it each time). A blocking store waits up to ``wait_s`` for a token other than
        ``after``; the others answer at once. Raises OverrideError when the store cannot be reached."""
        return None


class LeaderLock(Protocol):
    """A lock that decides who may act (scale). ``acquire`` tries once; ``renew`` keeps it; ``leading`` says
    whether this process may act *now* (its lease is still valid): callers check it right before acting.

    ``acquire`` returns False when someone else holds the lock and raises ForescaleError when it cannot tell
    (the lock's server refused or is unreachable). ``renew`` returns False once the lock is lost (stop acting
    at once) and keeps a still-valid lease through a transient failure.
    """

    location: str  # what the lock is, for messages ("Nomad variable forescale/leader (namespace default)")

    def acquire(self) -> bool: ...

    def renew(self) -> bool: ...

    def release(self) -> None: ...

    def leading(self) -> bool: ...

    def holder(self) -> str | None:
        """Who holds the lock now, if known (for standby messages)."""
        return None
