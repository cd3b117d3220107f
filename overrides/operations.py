"""What the CLI and the tick do to manual overrides: set, clear, expire; each returns the Events to report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from autoscaler.core.errors import OverrideError
from autoscaler.core.report import Event
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.timeutil import fmt_utc
from overrides.manual import Kind, ManualOverride, PoolRecords, make_override
from overrides.store import OverrideStore


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


def set_override(
    store: OverrideStore, req: Request, now: datetime, max_duration: timedelta
) -> tuple[list[ManualOverride], list[ManualOverride]]:
    """Add the override(s); an active manual override of the same pool and kind is replaced.

    Returns (created, replaced). Raises OverrideError (store unchanged) on any invalid input.
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
        live = [o for o in records.active if o.active(now)]
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

    replaced = store.modify(req.pool.name, apply)
    return created, replaced


def clear_overrides(
    store: OverrideStore, pools: Sequence[str], target: str, by: str, now: datetime
) -> list[ManualOverride]:
    """End the active override with id ``target``, or every active override of pool ``target``."""
    if target in pools:
        return store.modify(target, lambda r: [r.end(o, "cleared", now, by) for o in list(r.active)])
    for pool, records in store.read(pools).items():
        if any(o.id == target for o in records.active):

            def one(r: PoolRecords) -> list[ManualOverride]:
                return [r.end(o, "cleared", now, by) for o in list(r.active) if o.id == target]

            ended = store.modify(pool, one)
            if ended:
                return ended
    known = ", ".join(pools)
    raise OverrideError(
        f"'{target}' is neither a pool ({known}) nor the id of an active override; see `forescale override list`"
    )


def expire(store: OverrideStore, pools: Sequence[str], now: datetime) -> list[ManualOverride]:
    """Move overrides whose expiry has passed to history. Each is returned by exactly one caller, ever."""
    out: list[ManualOverride] = []
    current = store.read(pools)
    for pool in pools:
        if not any(o.expires_at <= now for o in current[pool].active):
            continue

        def drop(r: PoolRecords) -> list[ManualOverride]:
            return [r.end(o, "expired", o.expires_at, "forescale") for o in list(r.active) if o.expires_at <= now]

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
