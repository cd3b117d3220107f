"""What the CLI and the tick do to manual overrides: set, clear, expire; each returns the Events to report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import OverrideError
from autoscaler.core.report import Event
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.timeutil import fmt_utc
from overrides.manual import Kind, ManualOverride, PoolRecords, make_override
from overrides.store import OverrideStore

T = TypeVar("T")
Record = Callable[[list[Event]], None]
"""Writes a change's events to the audit log (raises OSError when it cannot)."""


@dataclass(frozen=True)
class Request:
    """One `override set` request (a pin, or a floor and/or a ceiling) before validation."""

    pool: PoolConfig
    values: dict[Kind, int]
    reason: str
    author: str
    expires_at: datetime


def check_request(req: Request) -> None:
    """Checks that need only the pool config (before touching the store)."""
    v = req.values
    pool = req.pool
    if not v:
        raise OverrideError("give one of --pin N, --min N or --max N")
    if "pin" in v and len(v) > 1:
        raise OverrideError("--pin cannot be combined with --min/--max (a pin is an exact count)")
    for kind, value in v.items():
        if value < 0:
            raise OverrideError(f"--{kind} must be 0 or more nodes (got {value})")
    if "min" in v and "max" in v and v["min"] > v["max"]:
        raise OverrideError(f"--min {v['min']} is above --max {v['max']}; lower --min or raise --max")
    limits = f"pool '{pool.name}' allows {pool.min}..{pool.max} nodes (its min/max in the config)"
    if "pin" in v and not pool.min <= v["pin"] <= pool.max:
        raise OverrideError(f"--pin {v['pin']} is outside what {limits}; pin within that range or change the pool")
    if "min" in v and v["min"] > pool.max:
        raise OverrideError(f"--min {v['min']} is above the pool's max: {limits}")
    if "max" in v and v["max"] < pool.min:
        raise OverrideError(f"--max {v['max']} is below the pool's min: {limits}")


def commit(
    store: OverrideStore, pool: str, fn: Callable[[PoolRecords], T], events_of: Callable[[T], list[Event]],
    record: Record | None,
) -> T:
    """Apply ``fn`` to ``pool``'s records and record the change's events as one unit.

    The store is written first; if the audit record then cannot be written, the change is undone (when nobody
    changed the pool since) and OverrideError says so: there is never a store change without its audit record.
    """
    before: PoolRecords | None = None
    after: object = None

    def apply(records: PoolRecords) -> T:
        nonlocal before, after
        before = records.model_copy(deep=True)
        out = fn(records)
        after = records.model_dump(mode="json")
        return out

    out = store.modify(pool, apply)
    if record is None:
        return out
    events = events_of(out)
    try:
        record(events)
    except OSError as exc:

        def undo(records: PoolRecords) -> bool:
            if before is None or records.model_dump(mode="json") != after:
                return False
            records.active, records.history = list(before.active), list(before.history)
            return True

        undone: bool = store.modify(pool, undo) if events else True
        what = "the change was undone" if undone else "the change could NOT be undone (changed since)"
        raise OverrideError(
            f"cannot write the audit log ({exc.strerror or exc}): {what}; fix audit_log (a writable file) and try again"
        ) from None
    return out


def set_events(created: Sequence[ManualOverride], replaced: Sequence[ManualOverride], now: datetime) -> list[Event]:
    return [event_for(o, "override_replaced", now) for o in replaced] + [
        event_for(o, "override_set", now) for o in created
    ]


def set_override(
    store: OverrideStore,
    req: Request,
    now: datetime,
    max_duration: timedelta,
    record: Record | None = None,
) -> tuple[list[ManualOverride], list[ManualOverride]]:
    """Add the override(s); every manual override of the same pool and kind still in force is replaced, so one
    override per kind is active, always.

    ``now`` is when the command started; the store may have been locked by another writer since. An override
    of the same kind created *after* ``now`` was set while this command waited: it is not silently replaced —
    OverrideError names it and nothing changes (the loser of the race is told; running again replaces it).

    Returns (created, replaced). Raises OverrideError (store unchanged) on any invalid input. With ``record``,
    the audit record is part of the change (``commit``).
    """
    check_request(req)
    created = [
        make_override(
            pool=req.pool.name,
            kind=kind,
            value=value,
            reason=req.reason,
            author=req.author,
            now=now,
            expires_at=req.expires_at,
            max_duration=max_duration,
        )
        for kind, value in req.values.items()
    ]

    def apply(records: PoolRecords) -> list[ManualOverride]:
        raced = [o for o in records.active if o.kind in req.values and o.ended is None and o.created_at > now]
        if raced:
            o = raced[0]
            told = sentence(o, "override_set", now)  # "bob pinned ocr to 40 until …: reason"
            raise OverrideError(
                f"while this command waited for the store, {told} ({o.id}, set at {fmt_utc(o.created_at, now)}); "
                "nothing changed: run the command again to replace it"
            )
        live = [o for o in records.active if o.ended is None and o.expires_at > now]
        kept = [o for o in live if o.kind not in req.values]
        floor = max((o for o in kept if o.kind == "min"), key=lambda o: o.value, default=None)
        ceiling = min((o for o in kept if o.kind == "max"), key=lambda o: o.value, default=None)
        v = req.values
        if "min" in v and ceiling is not None and v["min"] > ceiling.value:
            raise OverrideError(
                f"--min {v['min']} is above the active manual ceiling {ceiling.value} ({ceiling.id} by "
                f"{ceiling.author}); clear it first (forescale override clear {ceiling.id}) or set a lower --min"
            )
        if "max" in v and floor is not None and v["max"] < floor.value:
            raise OverrideError(
                f"--max {v['max']} is below the active manual floor {floor.value} ({floor.id} by "
                f"{floor.author}); clear it first (forescale override clear {floor.id}) or set a higher --max"
            )
        replaced = [records.end(o, "replaced", now, req.author) for o in live if o.kind in req.values]
        records.active = [*records.active, *created]
        return replaced

    replaced = commit(store, req.pool.name, apply, lambda rep: set_events(created, rep, now), record)
    return created, replaced


def clear_overrides(
    store: OverrideStore, pools: Sequence[str], target: str, by: str, now: datetime, record: Record | None = None
) -> list[ManualOverride]:
    """End the active override with id ``target``, or every active override of pool ``target``."""

    def cleared(ended: list[ManualOverride]) -> list[Event]:
        return [event_for(o, "override_cleared", now) for o in ended]

    if target in pools:
        return commit(store, target, lambda r: [r.end(o, "cleared", now, by) for o in list(r.active)], cleared, record)
    for pool, records in store.read(pools).items():
        if any(o.id == target for o in records.active):

            def one(r: PoolRecords) -> list[ManualOverride]:
                return [r.end(o, "cleared", now, by) for o in list(r.active) if o.id == target]

            ended = commit(store, pool, one, cleared, record)
            if ended:
                return ended
    known = ", ".join(pools)
    raise OverrideError(
        f"'{target}' is neither a pool ({known}) nor the id of an active override; see `forescale override list`"
    )


def expire(
    store: OverrideStore,
    pools: Sequence[str],
    now: datetime,
    max_duration: timedelta | None = None,
    *,
    current: Mapping[str, PoolRecords] | None = None,
) -> list[ManualOverride]:
    """Move overrides whose expiry has passed to history. Each is returned by exactly one caller, ever.

    With ``max_duration``, an override also expires ``max_duration`` after it was created, whatever its stored
    expiry says (``PoolRecords.capped``). ``current``: the store as just read (a tick's one read), so only the
    pools with something to expire are read and written again (by ``modify``, atomically)."""
    out: list[ManualOverride] = []
    if current is None or any(p not in current for p in pools):
        current = store.read(pools)
    for pool in pools:
        if not any(o.expires_at <= now for o in current[pool].capped(max_duration).active):
            continue

        def drop(r: PoolRecords) -> list[ManualOverride]:
            ends = {o.id: o.expires_at for o in r.capped(max_duration).active}
            return [r.end(o, "expired", ends[o.id], "forescale") for o in list(r.active) if ends[o.id] <= now]

        out.extend(store.modify(pool, drop))
    return out


def event_for(ov: ManualOverride, kind: str, now: datetime) -> Event:
    """The Event announced for a change, as one sentence: override_set, override_replaced, override_cleared,
    override_expired. E.g. "alice pinned ocr to 40 until 18:00 UTC: Diwali campaign"."""
    return Event(kind=kind, pool=ov.pool, message=sentence(ov, kind, now), at=now, details=ov.to_json())


def sentence(ov: ManualOverride, kind: str, now: datetime) -> str:
    """How Slack, the console and the audit log say what happened to a manual override."""
    until = fmt_utc(ov.expires_at, now)
    what = _what(ov)
    if kind == "override_set":
        verbs = {
            "pin": f"pinned {ov.pool} to {ov.value}",
            "min": f"set a floor of {ov.value} on {ov.pool}",
            "max": f"capped {ov.pool} at {ov.value}",
        }
        return f"{ov.author} {verbs[ov.kind]} until {until}: {ov.reason}"
    after = _after_end(ov)
    if kind == "override_expired":
        ended = ov.ended_at if ov.ended_at is not None and ov.ended_at < ov.expires_at else None
        if ended is not None and ov.expires_at - ended > timedelta(seconds=1):
            return (
                f"The {what} by {ov.author} expired at {fmt_utc(ended, now)}: overrides.max_duration ended it "
                f"({format_duration(ended - ov.created_at)} after it was set; its stored expiry was {until}) "
                f"({ov.reason}){after}"
            )
        return f"The {what} by {ov.author} expired at {until} ({ov.reason}){after}"
    verb = "replaced" if kind == "override_replaced" else "cleared"
    by = ov.ended_by or "someone"
    tail = "" if kind == "override_replaced" else after
    return f"{by} {verb} the {what} set by {ov.author} until {until} ({ov.reason}){tail}"


def _what(ov: ManualOverride) -> str:
    return {"pin": f"pin of {ov.pool} to {ov.value}", "min": f"floor of {ov.value} on {ov.pool}"}.get(
        ov.kind, f"ceiling of {ov.value} on {ov.pool}"
    )


def _after_end(ov: ManualOverride) -> str:
    """What the pool does once the override is gone (a pin's end skips the scale-in cooldown: decide)."""
    if ov.kind == "pin":
        return f"; {ov.pool} returns to the forecast at its next tick, without waiting for the scale-in cooldown"
    return f"; {ov.pool} follows the forecast again from its next tick"
