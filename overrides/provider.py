"""Builds the OverrideProvider from config: schedule rules + the manual store, as OverrideEffects for decide.

A store that cannot be read at tick time never crashes the tick and never silently drops overrides:
the provider reuses the last good read (in memory, or the file store's ``.last-good`` copy for a fresh
``forescale tick`` process) and reports an ``override_store_unreadable`` event every tick until fixed.
An edited schedule file is reloaded; an invalid edit keeps the previous rules and is reported once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.core.effects import OverrideEffect
from autoscaler.core.errors import ConfigError, OverrideError
from autoscaler.core.ports import OverrideProvider, OverrideStore
from autoscaler.core.report import Event
from autoscaler.core.timeutil import fmt_utc
from overrides.manual import PoolRecords
from overrides.operations import event_for, expire
from overrides.schedule import Schedule, load_schedule

if TYPE_CHECKING:
    from datetime import timedelta


log = logging.getLogger("forescale.overrides")


class Overrides(OverrideProvider):
    """Schedule rules and manual overrides of every pool, as one OverrideProvider."""

    def __init__(
        self,
        schedule: Schedule,
        store: OverrideStore[PoolRecords] | None,
        pools: Sequence[str],
        leads: dict[str, timedelta] | None = None,
        max_duration: timedelta | None = None,
        *,
        lead_for: Callable[[str, datetime], timedelta] | None = None,
    ) -> None:
        self.schedule = schedule
        self.lead_for = lead_for  # the pool's lead time when a rule is evaluated (ports.LeadTimes), else ``leads``
        self.max_duration = max_duration  # overrides.max_duration, enforced again on every read
        self.store = store
        self.pools = list(pools)
        self._leads = leads or {}
        self._mtime = _mtime(schedule.source)
        self._last_good: dict[str, tuple[PoolRecords, datetime]] = {}
        self._warnings: dict[str, Event] = {}

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        self._maybe_reload(now)
        out: list[OverrideEffect] = list(self.current_schedule(now, pool).effects(pool, now))
        records = self._records(pool, now)
        out.extend(o.effect(now) for o in records.active if o.active(now))
        return out

    def current_schedule(self, now: datetime, pool: str | None = None) -> Schedule:
        """The rules with each pool's lead time as resolved now (rules with their own ``lead`` keep it)."""
        if self.lead_for is not None:
            names = [pool] if pool is not None else sorted({r.pool for r in self.schedule.rules})
            self.schedule = self.schedule.with_leads({name: self.lead_for(name, now) for name in names})
        return self.schedule

    def drain_events(self, now: datetime) -> Sequence[Event]:
        events: list[Event] = []
        if self.store is not None:
            try:
                ended = expire(self.store, self.pools, now, self.max_duration)
                events.extend(event_for(o, "override_expired", now) for o in ended)
            except OverrideError as exc:
                if not self._warnings:  # already reported by effects() this tick otherwise
                    self._warn("*", now, f"cannot record expired overrides: {exc}")
        events.extend(self.warnings())
        return events

    def warnings(self) -> list[Event]:
        """Store/schedule problems met since the last call (without expiring anything)."""
        out = list(self._warnings.values())
        self._warnings.clear()
        return out

    # ------------------------------------------------------------------ internals

    def _records(self, pool: str, now: datetime) -> PoolRecords:
        if self.store is None:
            return PoolRecords()
        try:
            records = self.store.read([pool])[pool].capped(self.max_duration)
        except OverrideError as exc:
            return self._fallback(pool, now, exc).capped(self.max_duration)
        self._last_good[pool] = (records, now)
        return records

    def _fallback(self, pool: str, now: datetime, exc: OverrideError) -> PoolRecords:
        if pool in self._last_good:
            records, at = self._last_good[pool]
            self._warn(pool, now, f"{exc} — using the last good read from {fmt_utc(at, now)}")
            return records
        last_good = self.store.read_last_good([pool]) if self.store is not None else None
        if last_good is not None:
            copy, where = last_good
            self._warn(pool, now, f"{exc} — using {where} (the last version forescale wrote)")
            return copy[pool]
        self._warn(pool, now, f"{exc} — no earlier read: manual overrides of '{pool}' are unknown this tick")
        return PoolRecords()

    def _warn(self, pool: str, now: datetime, message: str) -> None:
        log.warning("overrides: %s", message)
        self._warnings[pool] = Event("override_store_unreadable", pool, message, now)

    def _maybe_reload(self, now: datetime) -> None:
        source = self.schedule.source
        if source is None:
            return
        mtime = _mtime(source)
        if mtime == self._mtime:
            return
        try:
            self.schedule = load_schedule(source, self._leads)
        except ConfigError as exc:
            self._warnings["schedule"] = Event(
                "schedule_invalid", "*", f"{exc} — keeping the rules loaded before the edit", now
            )
            return
        finally:
            self._mtime = mtime
        log.info("reloaded schedule rules from %s", source)


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None
