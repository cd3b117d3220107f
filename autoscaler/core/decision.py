"""The Decision: the one object that plan, Slack, logs and the audit log all print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Reason:
    """One thing that shaped the count: a stable ``code`` for machines and a sentence for people. ``effect`` names
    the override that set it (a schedule rule's name, a manual override's id) when one did."""

    code: str
    message: str
    nodes: int | None = None
    effect: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``code``, ``message``, ``nodes`` (and ``effect`` when an override set it)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message, "nodes": self.nodes}
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class PastAction:
    """A change applied earlier to a pool (for cooldowns); read back from the audit log or Nomad's scaling events.

    ``pinned``: a manual pin set that count; once the pin has ended, the change does not hold the pool in its
    scale-in cooldown (clearing a pin returns to the forecast at once).
    """

    at: datetime
    pool: str
    previous: int
    count: int
    pinned: bool = False


@dataclass(frozen=True)
class PoolState:
    """A pool as its target reports it: three counts kept apart (DESIGN.md "Policy principles").

    Nomad creates an allocation only on a registered, eligible node, so demand it cannot place yet (GPU
    machines still booting, no node left) is *queued*, never a pending allocation; and a failed allocation
    waiting for its reschedule delay is neither placed nor queued.
    """

    desired: int  # the task group's Count: what decide compares with and steps from
    placed: int  # running + pending allocations (DesiredStatus run)
    queued: int = 0  # the job summary's Queued: allocations Nomad cannot place yet
    running: int | None = None  # of the placed, those running
    rescheduling: int = 0  # failed allocations waiting for their reschedule delay
    queued_reason: str | None = None  # why Nomad cannot place them (its placement metrics), when known

    def __post_init__(self) -> None:
        if min(self.desired, self.placed, self.queued, self.rescheduling) < 0:
            raise ValueError("pool counts cannot be negative")


@dataclass(frozen=True)
class PastNeed:
    """The nodes the metrics called for at an earlier decision (tick or guard), before any limit,
    override or clamp: what the scale-in window (HPA's stabilisation) keeps; read back from the audit log."""

    at: datetime
    pool: str
    nodes: int


@dataclass(frozen=True)
class Decision:
    """What decide wants for one pool at one time, and every reason why.

    ``current`` is the group's current *desired* count (its Count in Nomad): the decision steps from it and
    ``changed`` compares with it. ``placed`` and ``queued`` (None when the target did not say) are reported
    alongside: how many of those nodes hold a running or starting allocation, and how many Nomad cannot place.
    """

    pool: str
    at: datetime
    current: int
    desired: int
    reasons: tuple[Reason, ...]
    forecast_rps: float | None = None
    observed_rps: float | None = None
    forecast_nodes: int | None = None
    reactive_nodes: int | None = None
    held: bool = False
    hold_cause: str | None = None
    model: str | None = None
    forecast_details: dict[str, float | str] = field(default_factory=dict)
    placed: int | None = None
    queued: int | None = None
    rescheduling: int | None = None
    need: int | None = None  # nodes the metrics call for, before the scale-in window, limits, overrides, clamps
    guard: bool = False  # made by the fast guard between ticks (observed rate only, scale-up only)
    # Queue-fed pools only (policy/queue.py): messages waiting, their estimated wait, whether that breaches the
    # latency SLO, the nodes rate + backlog need, and the rate's own need (what the scale-in window keeps).
    backlog: float | None = None
    backlog_wait_s: float | None = None
    backlog_beyond_slo: bool = False
    queue_nodes: int | None = None
    rate_need: int | None = None
    degraded: str | None = (
        None  # why the forecast is not the model's on whole samples (gap, warming rate()): no scale-in
    )

    @property
    def action(self) -> Action:
        if self.desired > self.current:
            return "up"
        if self.desired < self.current:
            return "down"
        return "hold"

    @property
    def changed(self) -> bool:
        return self.desired != self.current

    def counts(self) -> str | None:
        """'12 desired, 10 placed, 2 queued' (None when the target reported no placement)."""
        if self.placed is None:
            return None
        text = f"{self.current} desired, {self.placed} placed, {self.queued or 0} queued"
        if self.rescheduling:
            text += f", {self.rescheduling} rescheduling"
        return text

    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def counts_text(self) -> str:
        """The one vocabulary of a decision's counts: '12 → 14' (a change), '12 unchanged' (the policy keeps
        it) or '12 held: no usable metrics' (blind: nothing to decide with, so nothing shrinks)."""
        if self.changed:
            blind = " (held: no usable metrics, so only overrides and floors move it)" if self.held else ""
            return f"{self.current} → {self.desired}{blind}"
        if self.held:
            return f"{self.current} held: no usable metrics"
        return f"{self.current} unchanged"

    def explain(self) -> str:
        """One line: 'ocr: 12 → 14: forecast 410 rps … ; clamped to max 14'."""
        return f"{self.pool}: {self.counts_text()}: " + "; ".join(r.message for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["action"] = self.action
        out["reasons"] = [r.to_dict() for r in self.reasons]
        if self.backlog is None:  # not a queue-fed pool: the record keeps its shape
            for key in QUEUE_FIELDS:
                del out[key]
        return out


QUEUE_FIELDS = ("backlog", "backlog_wait_s", "backlog_beyond_slo", "queue_nodes", "rate_need")


@dataclass(frozen=True)
class Estimate:
    """What the forecast alone asks for when a pool's current count is unknown (e.g. Nomad unreachable).

    Not a Decision (no current count, so no step limit or cooldown): `plan` still shows it.
    """

    pool: str
    at: datetime
    forecast_rps: float
    observed_rps: float
    forecast_nodes: int
    reactive_nodes: int
    reasons: tuple[Reason, ...]
    count: int | None = None  # the need under the overrides in force and the pool's min/max (a pin, a floor …)

    @property
    def need(self) -> int:
        return max(self.forecast_nodes, self.reactive_nodes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["need"] = self.need
        out["reasons"] = [r.to_dict() for r in self.reasons]
        return out
