"""Builds the OverrideProvider from config: schedule rules + the manual store, as OverrideEffects for decide.

A store that cannot be read at tick time never crashes the tick and never silently drops overrides:
the provider reuses the last good read (in memory, or the file store's ``.last-good`` copy for a fresh
``forescale tick`` process) and reports an ``override_store_unreadable`` event every tick until fixed.
An edited schedule file is reloaded; an invalid edit keeps the previous rules and is reported once.

A tick reads through ``for_tick`` (``TickOverrides``): the schedule file is checked once and the store is read once
for every pool — one read of the file, one read of each pool's Nomad variable — and both the effects and the
expiries of that tick use that read (reading the store once per pool made the file store's cost grow with
pools², and the Variables store read each variable twice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
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
        self._lock = threading.RLock()  # a tick's pools (threads) and a guard check share this provider

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        self._maybe_reload(now)
        out: list[OverrideEffect] = list(self.current_schedule(now, pool).effects(pool, now))
        records = self._records(pool, now)
        out.extend(o.effect(now) for o in records.active if o.active(now))
        return out

    def current_schedule(self, now: datetime, pool: str | None = None) -> Schedule:
        """The rules with each pool's lead time as resolved now (rules with their own ``lead`` keep it)."""
        if self.lead_for is None:
            return self.schedule
        names = [pool] if pool is not None else sorted({r.pool for r in self.schedule.rules})
        leads = {name: self.lead_for(name, now) for name in names}
        with self._lock:  # the tick's pools (threads) ask at once: each gets the rules with its own lead in
            self.schedule = self.schedule.with_leads(leads)
            return self.schedule

    def drain_events(self, now: datetime, current: Mapping[str, PoolRecords] | None = None) -> Sequence[Event]:
        """Expire what is due (``current``: the store as this tick read it, when it did) and report the problems."""
        events: list[Event] = []
        if self.store is not None:
            try:
                ended = expire(self.store, self.pools, now, self.max_duration, current=current)
                events.extend(event_for(o, "override_expired", now) for o in ended)
            except OverrideError as exc:
                if not self._warnings:  # already reported by effects() this tick otherwise
                    self._warn("*", now, f"cannot record expired overrides: {exc}")
        events.extend(self.warnings())
        return events

    def warnings(self) -> list[Event]:
        """Store/schedule problems met since the last call (without expiring anything)."""
        with self._lock:
            out = list(self._warnings.values())
            self._warnings.clear()
        return out

    def for_tick(self, pools: Sequence[str], now: datetime) -> TickOverrides:
        """One tick's view: the schedule file checked once, the store read once for every configured pool."""
        self._maybe_reload(now)
        schedule = self.current_schedule(now)  # every pool's lead time resolved once
        names = list(dict.fromkeys([*self.pools, *pools]))
        if self.store is None:
            return TickOverrides(self, schedule, {}, None)
        try:
            raw = self.store.read(names)
        except OverrideError as exc:
            fallback = {p: self._fallback(p, now, exc).capped(self.max_duration) for p in names}
            return TickOverrides(self, schedule, fallback, None)
        records = {p: raw[p].capped(self.max_duration) for p in names}
        with self._lock:
            self._last_good.update({p: (r, now) for p, r in records.items()})
        return TickOverrides(self, schedule, records, raw)

    # ------------------------------------------------------------------ internals

    def _records(self, pool: str, now: datetime) -> PoolRecords:
        if self.store is None:
            return PoolRecords()
        try:
            records = self.store.read([pool])[pool].capped(self.max_duration)
        except OverrideError as exc:
            return self._fallback(pool, now, exc).capped(self.max_duration)
        with self._lock:
            self._last_good[pool] = (records, now)
        return records

    def _fallback(self, pool: str, now: datetime, exc: OverrideError) -> PoolRecords:
        with self._lock:
            known = self._last_good.get(pool)
        if known is not None:
            records, at = known
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
        with self._lock:
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
            with self._lock:
                self._warnings["schedule"] = Event(
                    "schedule_invalid", "*", f"{exc} — keeping the rules loaded before the edit", now
                )
            return
        finally:
            self._mtime = mtime
        log.info("reloaded schedule rules from %s", source)


class TickOverrides(OverrideProvider):
    """``Overrides`` for one tick: effects from the store as the tick read it once (``Overrides.for_tick``); the
    expiries use that read too (the Variables store then writes, with check-and-set, only the pools with an
    override to expire). A pool the read does not cover is asked of the provider itself."""

    def __init__(
        self,
        parent: Overrides,
        schedule: Schedule,
        records: Mapping[str, PoolRecords],
        raw: Mapping[str, PoolRecords] | None,
    ) -> None:
        self.parent = parent
        self.schedule = schedule
        self.records = dict(records)
        self.raw = raw

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        if pool not in self.records and self.parent.store is not None:
            return self.parent.effects(pool, now)
        out: list[OverrideEffect] = list(self.schedule.effects(pool, now))
        records = self.records.get(pool) or PoolRecords()
        out.extend(o.effect(now) for o in records.active if o.active(now))
        return out

    def drain_events(self, now: datetime) -> Sequence[Event]:
        return self.parent.drain_events(now, self.raw)

    def warnings(self) -> Sequence[Event]:
        return self.parent.warnings()


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime
    except OSError:
        return None
