"""What a new process reads back of earlier ones (the ``ports.History`` port's records, besides PastAction and
PastNeed in ``decision.py`` and BootSample in ``nodes.py``): the queued-too-long episodes of the placement watch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

UNPLACEABLE = "pool_unplaceable"  # the event kind: workers queued too long
PLACED = "pool_placed"  # the event kind: all placed again after a warning


@dataclass(frozen=True)
class PlacementRecord:
    """One line of history for the placement watch's ``replay``: a decision's queued count, or a warning/recovery
    event."""

    at: datetime
    pool: str
    queued: int | None = None  # a decision's queued count
    event: str | None = None  # UNPLACEABLE or PLACED
