"""The Decision: the one object that plan, Slack, logs and the audit log all print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Reason:
    """One thing that shaped the count: a stable ``code`` for machines and a sentence for people."""

    code: str
    message: str
    nodes: int | None = None


@dataclass(frozen=True)
class PastAction:
    """A change applied earlier to a pool (for cooldowns); read back from the audit log."""

    at: datetime
    pool: str
    previous: int
    count: int


@dataclass(frozen=True)
class Decision:
    """What decide wants for one pool at one time, and every reason why."""

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

    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def explain(self) -> str:
        """One line: 'ocr: 12 → 14 (up): forecast 410 rps … ; clamped to max 14'."""
        arrow = f"{self.current} → {self.desired}" if self.changed else f"{self.current} (hold)"
        return f"{self.pool}: {arrow}: " + "; ".join(r.message for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["action"] = self.action
        out["reasons"] = [asdict(r) for r in self.reasons]
        return out
