"""Config checks owned by overrides/: a readable schedule, and no contradictory rules for one pool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.timeutil import fmt_local
from overrides.schedule import Rule, Schedule, schedule_for

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config

# How far ahead contradictions are searched: a year covers weekly, monthly and yearly rules.
HORIZON = timedelta(days=366)


def check_config(config: Config, now: datetime | None = None) -> list[str]:
    """One line per problem: file, key path, the fix."""
    try:
        schedule = schedule_for(config)
    except ConfigError as exc:
        return [f"{exc.path}: {p}" for p in exc.problems]
    start = now or datetime.now(UTC)
    limits = {p.name: (p.min, p.max) for p in config.pools}
    return [f"{schedule.source}: {p}" for p in find_conflicts(schedule, limits, start, start + HORIZON)]


def find_conflicts(schedule: Schedule, limits: dict[str, tuple[int, int]], start: datetime, end: datetime) -> list[str]:
    """Rules that cannot all hold: a floor above a ceiling at the same time, or outside the pool's min/max."""
    problems: list[str] = []
    for rule in schedule.rules:
        low, high = limits.get(rule.pool, (0, 1 << 30))
        if rule.min is not None and rule.min > high:
            problems.append(
                f"rule '{rule.name}': floor {rule.min} is above pool '{rule.pool}' max {high}; "
                "lower the rule's min or raise the pool's max"
            )
        if rule.max is not None and rule.max < low:
            problems.append(
                f"rule '{rule.name}': ceiling {rule.max} is below pool '{rule.pool}' min {low}; "
                "raise the rule's max or lower the pool's min"
            )
        if rule.max is not None and rule.cron is not None and rule.duration is not None and rule.duration <= rule.lead:
            problems.append(
                f"rule '{rule.name}': its ceiling lifts {format_duration(rule.lead)} (the lead) before the end, "
                f"so a {format_duration(rule.duration)} occurrence never caps anything; "
                "lengthen it or set a shorter lead"
            )
    floors = [r for r in schedule.rules if r.min is not None]
    ceilings = [r for r in schedule.rules if r.max is not None]
    for f in floors:
        for c in ceilings:
            if f.pool != c.pool or f is c:
                continue
            assert f.min is not None and c.max is not None
            if f.min <= c.max:
                continue
            clash = _first_overlap(f, c, start, end)
            if clash is not None:
                problems.append(
                    f"rules '{f.name}' (floor {f.min}) and '{c.name}' (ceiling {c.max}) of pool '{f.pool}' are both "
                    f"in force at {fmt_local(clash, f.tz)} ({clash:%Y-%m-%d %H:%M} UTC): a floor above a ceiling "
                    "cannot hold; lower the floor, raise the ceiling, or make the windows not overlap "
                    "(floors start one lead early)"
                )
    return problems


def _first_overlap(floor: Rule, ceiling: Rule, start: datetime, end: datetime) -> datetime | None:
    a = [o.floor_span() for o in floor.occurrences(start, end)]
    b = [o.ceiling_span() for o in ceiling.occurrences(start, end)]
    a = [s for s in a if s[0] < s[1]]
    b = [s for s in b if s[0] < s[1]]
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0], start)
        hi = min(a[i][1], b[j][1], end)
        if lo < hi:
            return lo
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return None
