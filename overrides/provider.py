"""Builds the OverrideProvider from config: schedule rules + the manual store, as OverrideEffects for decide.

A store that cannot be read at tick time never crashes the tick and never silently drops overrides:
the provider reuses the last good read (in memory, or the file store's ``.last-good`` copy for a fresh
``forescale tick`` process) and reports an ``override_store_unreadable`` event every tick until fixed.
An edited schedule file is reloaded; an invalid edit keeps the previous rules and is reported once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from autoscaler.errors import ConfigError, OverrideError
from autoscaler.interfaces import Event, OverrideProvider
from overrides.effects import OverrideEffect
from overrides.manual import PoolRecords
from overrides.operations import event_for, expire
from overrides.schedule import Schedule, load_schedule, schedule_for
from overrides.store import FileStore, OverrideStore
from overrides.timeutil import fmt_utc

if TYPE_CHECKING:
    from datetime import timedelta

    from autoscaler.config import Config

log = logging.getLogger("forescale.overrides")


class Overrides:
    """Schedule rules and manual overrides of every pool, as one OverrideProvider."""

    def __init__(
        self,
        schedule: Schedule,
        store: OverrideStore | None,
        pools: Sequence[str],
        leads: dict[str, timedelta] | None = None,
    ) -> None:
        self.schedule = schedule
        self.store = store
        self.pools = list(pools)
        self._leads = leads or {}
        self._mtime = _mtime(schedule.source)
        self._last_good: dict[str, tuple[PoolRecords, datetime]] = {}
        self._warnings: dict[str, Event] = {}

    def effects(self, pool: str, now: datetime) -> Sequence[OverrideEffect]:
        self._maybe_reload(now)
        out: list[OverrideEffect] = list(self.schedule.effects(pool, now))
        records = self._records(pool, now)
        out.extend(o.effect(now) for o in records.active if o.active(now))
        return out

    def drain_events(self, now: datetime) -> Sequence[Event]:
        events: list[Event] = []
        if self.store is not None:
            try:
                events.extend(event_for(o, "override_expired", now) for o in expire(self.store, self.pools, now))
            except OverrideError as exc:
                if not self._warnings:  # already reported by effects() this tick otherwise
                    self._warn("*", now, f"cannot record expired overrides: {exc}")
        events.extend(self.take_warnings())
        return events

    def take_warnings(self) -> list[Event]:
        """Store/schedule problems met since the last call (without expiring anything)."""
        out = list(self._warnings.values())
        self._warnings.clear()
        return out

    # ------------------------------------------------------------------ internals

    def _records(self, pool: str, now: datetime) -> PoolRecords:
        if self.store is None:
            return PoolRecords()
        try:
            records = self.store.read([pool])[pool]
        except OverrideError as exc:
            return self._fallback(pool, now, exc)
        self._last_good[pool] = (records, now)
        return records

    def _fallback(self, pool: str, now: datetime, exc: OverrideError) -> PoolRecords:
        if pool in self._last_good:
            records, at = self._last_good[pool]
            self._warn(pool, now, f"{exc} — using the last good read from {fmt_utc(at, now)}")
            return records
        if isinstance(self.store, FileStore):
            copy = self.store.read_last_good([pool])
            if copy is not None:
                self._warn(pool, now, f"{exc} — using {self.store.last_good_path} (the last version forescale wrote)")
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


def build_store(config: Config) -> OverrideStore:
    """The configured manual store (file by default, or Nomad Variables)."""
    if config.overrides.store == "nomad":
        from overrides.nomad_store import NomadVariablesStore

        return NomadVariablesStore.from_config(config)
    return FileStore(config.overrides.path)


def build_provider(config: Config) -> OverrideProvider:
    """Schedule rules + the configured store. Raises ConfigError for an invalid schedule file."""
    return Overrides(
        schedule_for(config),
        build_store(config),
        [p.name for p in config.pools],
        {p.name: p.lead_time for p in config.pools},
    )
