"""Local wall-clock time ↔ UTC, DST-safe, and the time/zone parsing shared by rules and the CLI.

One rule for awkward local times, used everywhere: a local time means **the first instant at which
the local wall clock shows that time or a later one**. So a time inside a spring-forward gap
(02:30 in Berlin on the last Sunday of March) is the instant of the jump (03:00 CEST), and a time
that happens twice at fall-back (02:30 on the last Sunday of October) is its first occurrence (CEST).
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator

from autoscaler.core.durations import parse_duration


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or ValueError naming the closest real zone."""
    text = str(name).strip()
    if text.upper() in ("UTC", "Z"):
        return ZoneInfo("UTC")
    try:
        if text in _zone_names() or "/" in text:
            return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    close = difflib.get_close_matches(text, sorted(_zone_names()), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/Berlin or Asia/Kolkata"
    raise ValueError(f"unknown timezone '{text}'; {hint}")


def _valid_zone_name(name: str) -> str:
    zone(name)
    return name


TimezoneName = Annotated[str, AfterValidator(_valid_zone_name)]
"""A config field holding an IANA timezone name, checked when the file is loaded."""


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """Naive local wall time in ``tz`` → aware UTC, with the gap/fold rule of this module."""
    if local.tzinfo is not None:
        raise ValueError("to_utc expects a naive local time")
    first = local.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local:
        return first.astimezone(UTC)  # exists; fold=0 is the earlier of two repeated instants
    # Inside a gap: the wall clock jumps over ``local``. Find the jump: the first instant whose wall
    # time is ≥ local. fold=1 maps to an instant before the jump, fold=0 to one after it.
    lo = int(local.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > 1:  # integer seconds: transitions fall on whole seconds
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= local:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def parse_clock(text: str, allow_24: bool = False) -> time | None:
    """``09:00`` → time(9, 0); ``24:00`` → None (end of day) when ``allow_24``; ValueError otherwise."""
    match = _TIME.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a time; write HH:MM, e.g. 09:00")
    hour, minute = int(match.group(1)), int(match.group(2))
    if allow_24 and hour == 24 and minute == 0:
        return None
    if hour > 23 or minute > 59:
        raise ValueError(f"'{text}' is not a time of day (00:00–23:59)")
    return time(hour, minute)


EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 1, 1, tzinfo=UTC)


def parse_when(text: str, now: datetime, default_tz: str = "UTC") -> datetime:
    """A point in time typed by a person → aware UTC (see ``_parse_when``), between 1971 and 2999."""
    when = _parse_when(text, now, default_tz)
    if not EARLIEST <= when <= LATEST:
        raise ValueError(f"'{str(text)[:40]}' is outside the times forescale works with (1971–2999)")
    return when


def _parse_when(text: str, now: datetime, default_tz: str = "UTC") -> datetime:
    """A point in time typed by a person → aware UTC.

    Accepted: ISO 8601 with an offset (``2026-12-01T18:00+05:30``, ``…Z``); a local date and time
    (``2026-12-01 18:00``) or just a time (``18:00``: the next such time) in ``default_tz``; either
    of those followed by an IANA zone (``18:00 Asia/Kolkata``); or ``now``/``now+3h``.
    """
    raw = str(text).strip()
    if not raw:
        raise ValueError("empty time; write e.g. 18:00, '2026-12-01 18:00' or 2026-12-01T18:00Z")
    low = raw.lower()
    if low == "now" or low.startswith("now+"):
        try:
            return now + (parse_duration(low[4:]) if low != "now" else timedelta(0))
        except OverflowError:
            raise ValueError(f"'{text}' is too far in the future") from None
    tz_name = default_tz
    parts = raw.rsplit(" ", 1)
    if len(parts) == 2 and ("/" in parts[1] or parts[1].upper() in ("UTC", "Z")):
        raw, tz_name = parts[0].strip(), parts[1]
    tz = zone(tz_name)
    clock = _TIME.match(raw)
    if clock:
        t = parse_clock(raw)
        assert t is not None
        local_now = now.astimezone(tz).replace(tzinfo=None)
        candidate = datetime.combine(local_now.date(), t)
        if candidate <= local_now:
            candidate = datetime.combine(local_now.date() + timedelta(days=1), t)
        return to_utc(candidate, tz)
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"cannot read the time '{text}'; write e.g. 18:00, '2026-12-01 18:00', "
            "2026-12-01T18:00+05:30 or '18:00 Asia/Kolkata'"
        ) from None
    try:
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        return to_utc(parsed, tz)
    except (OverflowError, ValueError):
        raise ValueError(f"'{text}' is outside the times forescale works with (1971–2999)") from None


def parse_date(value: object) -> date:
    """A YAML date (already a ``date``) or ``YYYY-MM-DD`` text."""
    if isinstance(value, datetime):
        raise ValueError(f"'{value}' has a time; write only the date, YYYY-MM-DD")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"'{value}' is not a date; write YYYY-MM-DD, e.g. 2026-12-25") from None


def fmt_local(when: datetime, tz: ZoneInfo, ref: datetime | None = None) -> str:
    """``18:00 IST`` (same local day as ``ref``) or ``2026-12-02 18:00 IST``."""
    local = when.astimezone(tz)
    abbrev = local.tzname() or str(tz)
    if ref is not None and ref.astimezone(tz).date() == local.date():
        return f"{local:%H:%M} {abbrev}"
    return f"{local:%Y-%m-%d %H:%M} {abbrev}"


def fmt_utc(when: datetime, ref: datetime | None = None) -> str:
    return fmt_local(when, ZoneInfo("UTC"), ref)
