"""What an active override does to one pool: the seam between overrides/ and ``decide``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

EffectKind = Literal["pin", "min", "max"]
EffectSource = Literal["schedule", "manual"]


@dataclass(frozen=True)
class OverrideEffect:
    """One constraint in force now: a pin (exact count), a floor (min) or a ceiling (max).

    ``explanation`` is the human sentence decide puts in the Decision, e.g.
    "pinned to 40 by alice until 18:00 UTC for 'Diwali campaign'".
    """

    kind: EffectKind
    value: int
    source: EffectSource
    name: str
    explanation: str
    expires_at: datetime | None = None
    author: str | None = None
    reason: str | None = None
