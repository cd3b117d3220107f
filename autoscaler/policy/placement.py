"""Workers Nomad cannot place: one warning per episode when a pool's queued count stays above zero too long.

New GPU nodes are *queued* in Nomad while their machines boot (the allocation waits for a registered,
eligible node), so a short queue after a scale-up is normal. When it lasts longer than the pool's
``queued_warning_delay()`` (default: twice ``lead_time``) something else is wrong — no node of the pool
left, a constraint no node meets, machines that never register — and the tick reports it once:

    pool_unplaceable  "2 workers cannot be placed: no eligible GPU node (…Nomad's reason…); queued for 25m"
    pool_placed       "all workers placed again after 40m queued"  (only after a warning)

An episode starts at the first tick that sees ``queued > 0`` and ends at the first tick that sees 0. The
daemon keeps episodes in memory; one-shot ``forescale tick`` runs (cron) rebuild them from the audit log
(``replay``), which records every decision's queued count and every warning — so cron runs warn once too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.core.decision import PoolState
from autoscaler.core.durations import format_duration
from autoscaler.core.history import PLACED, UNPLACEABLE, PlacementRecord
from autoscaler.core.nodes import LeadTime
from autoscaler.core.report import Event
from autoscaler.core.settings.forescale import PoolConfig

__all__ = ["PLACED", "UNPLACEABLE", "PlacementRecord", "PlacementWatch", "QueuedEpisode"]


@dataclass
class QueuedEpisode:
    """Since when a pool has had queued workers, and whether that was announced."""

    since: datetime
    warned: bool = False


class PlacementWatch:
    """Per-pool queued episodes; ``observe`` returns the Event to announce, if any."""

    def __init__(self) -> None:
        self.episodes: dict[str, QueuedEpisode] = {}

    def observe(self, pool: PoolConfig, state: PoolState, now: datetime, lead: LeadTime | None = None) -> Event | None:
        """``lead``: the pool's lead time now (``ports.LeadTimes``); the warning's default delay is twice it."""
        delay = pool.queued_warning_delay(timedelta(seconds=lead.seconds) if lead is not None else None)
        episode = self.episodes.get(pool.name)
        if state.queued <= 0:
            if episode is None:
                return None
            del self.episodes[pool.name]
            if not episode.warned:
                return None
            span = _span(now - episode.since)
            return Event(
                PLACED,
                pool.name,
                f"all {state.desired} workers placed again after {span} with some queued "
                f"(queued since {episode.since:%Y-%m-%d %H:%M} UTC)",
                now,
                {"desired": state.desired, "placed": state.placed, "queued_since": episode.since.isoformat()},
            )
        if episode is None:
            episode = self.episodes[pool.name] = QueuedEpisode(now)
        waited = now - episode.since
        if episode.warned or waited < delay:
            return None
        episode.warned = True
        workers = "worker" if state.queued == 1 else "workers"
        why = f" ({state.queued_reason})" if state.queued_reason else ""
        return Event(
            UNPLACEABLE,
            pool.name,
            f"{state.queued} {workers} cannot be placed: no eligible GPU node{why}; queued for {_span(waited)} "
            f"(since {episode.since:%H:%M} UTC, longer than {_span(delay)}); "
            f"{state.desired} desired, {state.placed} placed",
            now,
            {
                "queued": state.queued,
                "desired": state.desired,
                "placed": state.placed,
                "queued_since": episode.since.isoformat(),
                "reason": state.queued_reason or "",
            },
        )

    def replay(self, records: Iterable[PlacementRecord]) -> None:
        """Rebuild episodes from history (oldest first), announcing nothing."""
        for record in records:
            episode = self.episodes.get(record.pool)
            if record.event == UNPLACEABLE and episode is not None:
                episode.warned = True
            elif record.event == PLACED:
                self.episodes.pop(record.pool, None)
            elif record.queued is not None:
                if record.queued <= 0:
                    self.episodes.pop(record.pool, None)
                elif episode is None:
                    self.episodes[record.pool] = QueuedEpisode(record.at)


def _span(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=max(60, round(delta.total_seconds() / 60) * 60)))
