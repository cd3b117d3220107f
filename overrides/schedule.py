"""Time-based rules: "stores open at 09:00 local, have 50 nodes ready ten minutes before".

Rules are declared in a YAML file (``overrides.schedule_file``), evaluated in their IANA timezone
and turned into floors/ceilings for ``decide``. A floor is in force from ``start − lead`` so the
capacity is *ready* at the window start; a ceiling lifts at ``end − lead`` so capacity is ready
again when its window closes. DST handling: see ``autoscaler.core.timeutil``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from croniter import croniter

from autoscaler.core.durations import format_duration
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.errors import ConfigError
from autoscaler.core.timeutil import fmt_local, parse_date, to_utc, zone
from autoscaler.core.yamlfile import line_of, load_model, load_yaml, read_text, yaml_line
from overrides.schedule_checks import raw_rule_problems
from overrides.schedule_spec import (
    _RANGE,
    DAY_NAMES,
    MAX_OCCURRENCES,
    RuleSpec,
    ScheduleFile,
    Window,
    format_days,
    parse_days,
)

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config

__all__ = ["DAY_NAMES", "RuleSpec", "ScheduleFile", "Window", "format_days", "parse_days"]  # re-exported

@dataclass(frozen=True)
class Rule:
    """A compiled rule: zone, recurrence, bounds and lead resolved."""

    name: str
    pool: str
    tz: ZoneInfo
    min: int | None
    max: int | None
    lead: timedelta
    closed: frozenset[date]
    days: frozenset[int] | None = None
    window: Window | None = None
    dates: tuple[date, ...] = ()
    cron: str | None = None
    duration: timedelta | None = None
    lead_from_pool: bool = False  # no ``lead:`` of its own: follows the pool's lead time when evaluated

    @property
    def when(self) -> str:
        """Human recurrence: ``mon-fri 09:00-18:00``, ``2026-12-01 10:00-14:00``, ``cron '0 2 * * *' for 2h``."""
        if self.cron is not None:
            assert self.duration is not None
            return f"cron '{self.cron}' for {format_duration(self.duration)}"
        if self.dates:
            return f"{', '.join(d.isoformat() for d in self.dates)} {self.window}"
        return f"{format_days(self.days or frozenset(range(7)))} {self.window}"

    @property
    def label(self) -> str:
        return f"schedule rule '{self.name}' ({self.tz.key}, {self.when})"

    def occurrences(self, start: datetime, end: datetime) -> Iterator[Occurrence]:
        """Every occurrence whose effective interval (lead included) overlaps [start, end), by start time."""
        slack = self.lead + timedelta(days=2) + (self.duration or timedelta(0))
        local_from = (start - slack).astimezone(self.tz).replace(tzinfo=None)
        local_to = (end + self.lead + timedelta(days=1)).astimezone(self.tz).replace(tzinfo=None)
        count = 0
        for begin_local, end_local_or_len in self._local(local_from, local_to):
            if begin_local.date() in self.closed:
                continue
            begin = to_utc(begin_local, self.tz)
            if isinstance(end_local_or_len, timedelta):
                finish = begin + end_local_or_len  # cron durations are elapsed time
            else:
                finish = to_utc(end_local_or_len, self.tz)
            occ = Occurrence(self, begin, finish)
            lo, hi = occ.span()
            if hi > start and lo < end:
                yield occ
            count += 1
            if count >= MAX_OCCURRENCES:
                return

    def _local(self, local_from: datetime, local_to: datetime) -> Iterator[tuple[datetime, datetime | timedelta]]:
        if self.cron is not None:
            assert self.duration is not None
            it = croniter(self.cron, local_from - timedelta(minutes=1))
            while True:
                nxt: datetime = it.get_next(datetime)
                if nxt > local_to:
                    return
                yield nxt, self.duration
        assert self.window is not None
        if self.dates:
            for day in self.dates:
                if local_from.date() - timedelta(days=1) <= day <= local_to.date():
                    yield self.window.bounds(day)
            return
        day = local_from.date() - timedelta(days=1)
        while day <= local_to.date():
            if self.days is None or day.weekday() in self.days:
                yield self.window.bounds(day)
            day += timedelta(days=1)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a rule: the nominal window [start, end) in UTC."""

    rule: Rule
    start: datetime
    end: datetime

    def floor_span(self) -> tuple[datetime, datetime]:
        return self.start - self.rule.lead, self.end

    def ceiling_span(self) -> tuple[datetime, datetime]:
        return self.start, max(self.start, self.end - self.rule.lead)

    def span(self) -> tuple[datetime, datetime]:
        """The union of the effective floor and ceiling intervals."""
        if self.rule.min is not None:
            return self.floor_span()
        return self.ceiling_span()


@dataclass(frozen=True)
class Transition:
    """A moment where something a rule does starts or stops."""

    at: datetime
    rule: Rule
    kind: Literal["min", "max"]
    value: int
    starts: bool
    occurrence: Occurrence

    def describe(self) -> str:
        what = "floor" if self.kind == "min" else "ceiling"
        verb = "starts" if self.starts else "ends"
        local = fmt_local(self.occurrence.start if self.starts else self.occurrence.end, self.rule.tz)
        lead = ""
        if self.rule.lead and ((self.kind == "min" and self.starts) or (self.kind == "max" and not self.starts)):
            lead = f" ({format_duration(self.rule.lead)} lead: ready for {local})"
        return f"{what} {self.value} {verb}{lead}"


@dataclass(frozen=True)
class Schedule:
    """All rules of one schedule file."""

    rules: tuple[Rule, ...] = ()
    source: Path | None = None

    def for_pool(self, pool: str) -> list[Rule]:
        return [r for r in self.rules if r.pool == pool]

    def with_leads(self, leads: Mapping[str, timedelta]) -> Schedule:
        """These rules with the pools' lead times in ``leads`` (rules with their own ``lead`` keep it); ``self``
        when nothing changes."""
        if not any(r.lead_from_pool and r.pool in leads and r.lead != leads[r.pool] for r in self.rules):
            return self
        rules = tuple(
            replace(r, lead=leads[r.pool]) if r.lead_from_pool and r.pool in leads else r for r in self.rules
        )
        return replace(self, rules=rules)

    def effects(self, pool: str, now: datetime) -> list[OverrideEffect]:
        """Floors/ceilings of ``pool`` in force at ``now`` (one per rule and kind)."""
        out: list[OverrideEffect] = []
        for rule in self.for_pool(pool):
            occs = list(rule.occurrences(now, now + timedelta(seconds=1)))
            for kind, value in (("min", rule.min), ("max", rule.max)):
                if value is None:
                    continue
                live = [o for o in occs if _contains(o.floor_span() if kind == "min" else o.ceiling_span(), now)]
                if not live:
                    continue
                occ = max(live, key=lambda o: o.end)
                out.append(_effect(rule, kind, value, occ, now))
        return out

    def transitions(self, start: datetime, end: datetime, pool: str | None = None) -> list[Transition]:
        """Every effective start/end of every rule (or ``pool``'s) inside [start, end), sorted."""
        out: list[Transition] = []
        for rule in self.rules:
            if pool is not None and rule.pool != pool:
                continue
            for occ in rule.occurrences(start, end):
                for kind, value in (("min", rule.min), ("max", rule.max)):
                    if value is None:
                        continue
                    lo, hi = occ.floor_span() if kind == "min" else occ.ceiling_span()
                    if lo >= hi:
                        continue
                    for at, starts in ((lo, True), (hi, False)):
                        if start <= at < end:
                            out.append(Transition(at, rule, kind, value, starts, occ))  # type: ignore[arg-type]
        out.sort(key=lambda t: (t.at, t.rule.pool, t.rule.name, not t.starts))
        return out


def _contains(span: tuple[datetime, datetime], now: datetime) -> bool:
    return span[0] <= now < span[1]


def _effect(rule: Rule, kind: str, value: int, occ: Occurrence, now: datetime) -> OverrideEffect:
    if kind == "min":
        text = f"{rule.label} floor {value}"
        if now < occ.start:
            text += f" — ready for {fmt_local(occ.start, rule.tz, now)} ({format_duration(rule.lead)} lead)"
        expires = occ.end
    else:
        text = f"{rule.label} ceiling {value}"
        expires = occ.ceiling_span()[1]
    return OverrideEffect(
        kind="min" if kind == "min" else "max",
        value=value,
        source="schedule",
        name=rule.name,
        explanation=text,
        expires_at=expires,
    )


# ---------------------------------------------------------------- loading and validation


def load_schedule(path: Path, pools: dict[str, timedelta]) -> Schedule:
    """Read and validate a schedule file. ``pools`` maps pool name → lead_time. Raises ConfigError."""
    text = read_text(path, "create it (see overrides/schedule.yaml) or unset overrides.schedule_file")
    return parse_schedule(text, path, pools)


def parse_schedule(text: str, path: Path, pools: dict[str, timedelta]) -> Schedule:
    data, root = load_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping with a 'rules:' list"])
    try:
        spec = load_model(ScheduleFile, data, root, path)
    except ConfigError as exc:  # report the rules' other problems too, not one round at a time
        extra = [p for p in raw_rule_problems(data, root, pools) if p not in exc.problems]
        raise ConfigError(str(path), sorted([*exc.problems, *extra], key=line_of)) from None
    problems: list[str] = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, rs in enumerate(spec.rules):
        where = f"rules[{i}] ({rs.name})"
        line = yaml_line(root, ["rules", i])
        at = f" (line {line})" if line else ""
        if rs.name in seen:
            problems.append(f"{where}.name{at}: rule name '{rs.name}' is used twice; give each rule its own name")
        seen.add(rs.name)
        if rs.pool not in pools:
            known = ", ".join(sorted(pools)) or "none"
            problems.append(f"{where}.pool{at}: unknown pool '{rs.pool}'; use one of the config's pools ({known})")
            continue
        tz_name = rs.timezone or spec.timezone
        if tz_name is None:
            problems.append(f"{where}.timezone{at}: no timezone; add 'timezone: Area/City' to the rule or the file")
            continue
        try:
            closed = _closed_dates(rs.closed_on, spec.holidays)
        except ValueError as exc:
            problems.append(f"{where}.closed_on{at}: {exc}")
            continue
        rules.append(
            Rule(
                name=rs.name,
                pool=rs.pool,
                tz=zone(tz_name),
                min=rs.min,
                max=rs.max,
                lead=rs.lead if rs.lead is not None else pools[rs.pool],
                lead_from_pool=rs.lead is None,
                closed=closed,
                days=parse_days(rs.days) if rs.days is not None else None,
                window=Window.parse(rs.window) if rs.window is not None else None,
                dates=tuple(rs.dates or ()),
                cron=rs.cron,
                duration=rs.duration,
            )
        )
    if problems:
        raise ConfigError(str(path), problems)
    return Schedule(tuple(rules), path)


def _closed_dates(entries: Sequence[Any], holidays: dict[str, list[Any]]) -> frozenset[date]:
    out: set[date] = set()
    for entry in entries:
        if isinstance(entry, str) and entry in holidays:
            out |= _closed_dates(holidays[entry], {})
            continue
        if isinstance(entry, str) and (m := _RANGE.match(entry.strip())):
            a, b = parse_date(m.group(1)), parse_date(m.group(2))
            if b < a:
                raise ValueError(f"date range '{entry}' ends before it starts; write FIRST..LAST")
            out.update(a + timedelta(days=i) for i in range((b - a).days + 1))
            continue
        try:
            out.add(parse_date(entry))
        except ValueError:
            names = ", ".join(sorted(holidays)) or "none defined"
            raise ValueError(
                f"'{entry}' is not a date (YYYY-MM-DD), a range (YYYY-MM-DD..YYYY-MM-DD) "
                f"or a holiday list name (holidays: {names})"
            ) from None
    return frozenset(out)


def schedule_for(config: Config) -> Schedule:
    """The config's schedule (empty when ``overrides.schedule_file`` is unset). Raises ConfigError."""
    path = config.overrides.schedule_file
    if path is None:
        return Schedule()
    return load_schedule(path, {p.name: p.lead_time for p in config.pools})


def transition_times(config: Config, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in [start, end) where a rule's floor or ceiling starts or ends (lead included), sorted, with
    the configured lead times (the daemon uses ``schedule_transitions`` with the leads in force)."""
    return schedule_transitions(schedule_for(config), start, end)


def schedule_transitions(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in [start, end) where a rule's floor or ceiling starts or ends (lead included), sorted.

    The daemon schedules an extra tick at each (APScheduler date triggers).
    """
    times = {t.at.astimezone(UTC) for t in schedule.transitions(start.astimezone(UTC), end.astimezone(UTC))}
    return sorted(times)
