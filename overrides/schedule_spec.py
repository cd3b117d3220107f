"""The schedule file's grammar: days, time windows, and the rule and file models (validated, not yet compiled).

``overrides.schedule`` compiles these into rules with their zone, recurrence and lead, and evaluates them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from croniter import croniter
from pydantic import ConfigDict, Field, field_validator, model_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import StrictModel
from autoscaler.core.timeutil import TimezoneName, parse_clock, parse_date

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = {name: i for i, name in enumerate(DAY_NAMES)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_WINDOW_SPLIT = re.compile(r"\s*(?:-|–|—|\bto\b)\s*")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})$")
# Occurrences searched per rule per query: enough for a minutely cron over a day, bounded for safety.
MAX_OCCURRENCES = 20_000


def parse_days(value: Any) -> frozenset[int]:
    """``mon-fri``, ``sat``, ``mon,wed,fri``, ``[mon-fri, sun]``, ``daily`` → weekday numbers (Mon=0)."""
    items = value if isinstance(value, list) else [value]
    out: set[int] = set()
    for item in items:
        for token in str(item).lower().replace(" ", "").split(","):
            if token in ("daily", "everyday", "*", "all"):
                out.update(range(7))
                continue
            ends = token.split("-")
            if len(ends) > 2 or not all(e in _FULL for e in ends):
                raise ValueError(
                    f"'{token}' is not a day or day range; write e.g. mon-fri, sat, 'mon,wed,fri' or daily"
                )
            a, b = _FULL[ends[0]], _FULL[ends[-1]]
            out.update((a + i) % 7 for i in range((b - a) % 7 + 1))  # fri-mon wraps over the weekend
    if not out:
        raise ValueError("no days given; write e.g. mon-fri")
    return frozenset(out)


def format_days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    ordered = sorted(days)
    runs: list[list[int]] = []
    for d in ordered:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return ",".join(DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs)


@dataclass(frozen=True)
class Window:
    """A local time window; ``end`` None means 24:00; an end at or before the start crosses midnight."""

    start: time
    end: time | None

    @classmethod
    def parse(cls, text: Any) -> Window:
        parts = _WINDOW_SPLIT.split(str(text).strip())
        if len(parts) != 2:
            raise ValueError(f"window '{text}' is not HH:MM-HH:MM; write e.g. 09:00-18:00")
        try:
            start = parse_clock(parts[0])
            end = parse_clock(parts[1], allow_24=True)
        except ValueError as exc:
            raise ValueError(f"window '{text}': {exc}") from None
        assert start is not None
        if end == start:
            raise ValueError(f"window '{text}' is empty; for a whole day write 00:00-24:00")
        return cls(start, end)

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """Naive local start and end for a window starting on ``day``."""
        begin = datetime.combine(day, self.start)
        if self.end is None:
            return begin, datetime.combine(day + timedelta(days=1), time(0))
        finish = datetime.combine(day, self.end)
        return begin, finish if finish > begin else finish + timedelta(days=1)

    def __str__(self) -> str:
        end = "24:00" if self.end is None else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


class RuleSpec(StrictModel):
    """One rule as written in the YAML file (validated; compiled into a ``Rule``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)  # StrictModel's checks, plus aliases

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        json_schema_extra={"pattern_hint": "use letters, digits, '-', '_' or '.' (at most 63 characters)"},
        description="rule name, unique per file")
    pool: str = Field(..., description="pool the rule shapes")
    timezone: TimezoneName | None = Field(None, description="IANA timezone, e.g. Asia/Kolkata (default: the file's)")
    days: str | list[str] | None = Field(None, description="mon-fri, sat, 'mon,wed,fri' or daily")
    window: str | None = Field(None, description="local HH:MM-HH:MM; an end before the start crosses midnight")
    dates: list[Any] | None = Field(None, description="one-off dates (YYYY-MM-DD) the window applies on")
    cron: str | None = Field(None, description="5-field cron expression in the rule's timezone (with duration)")
    duration: Duration | None = Field(None, description="how long each cron occurrence lasts, e.g. 2h")
    min: int | None = Field(None, ge=0, description="floor: at least this many nodes")
    max: int | None = Field(None, ge=0, description="ceiling: at most this many nodes")
    lead: Duration | None = Field(None, description="override the pool's lead_time for this rule")
    closed_on: list[Any] = Field(default_factory=list, description="dates, date ranges or holiday lists")

    @field_validator("days")
    @classmethod
    def _days(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is not None:
            parse_days(v)
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            Window.parse(v)
        return v

    @field_validator("dates", mode="before")
    @classmethod
    def _dates(cls, v: Any) -> Any:
        if v is None:
            return v
        items = v if isinstance(v, list) else [v]
        return [parse_date(d) for d in items]

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            fields = v.split()
            if len(fields) != 5 or not croniter.is_valid(v):
                raise ValueError(
                    f"cron '{v}' is not a 5-field cron expression (minute hour day-of-month month day-of-week); "
                    "e.g. '0 9 * * mon-fri'"
                )
        return v

    @model_validator(mode="before")
    @classmethod
    def _date_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "date" in data:
            data = dict(data)
            if "dates" in data:
                raise ValueError("give either 'date' or 'dates', not both")
            data["dates"] = data.pop("date")
        return data

    @model_validator(mode="after")
    def _shape(self) -> RuleSpec:
        if self.min is None and self.max is None:
            raise ValueError("a rule needs 'min' (floor) and/or 'max' (ceiling); add one")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); lower min or raise max")
        if self.cron is not None:
            if self.window is not None or self.days is not None or self.dates is not None:
                raise ValueError("use either 'cron' + 'duration', or 'window' with 'days'/'dates', not both")
            if self.duration is None or self.duration <= timedelta(0):
                raise ValueError("a cron rule needs 'duration' (how long each occurrence lasts), e.g. duration: 2h")
        else:
            if self.window is None:
                raise ValueError("a rule needs 'window: HH:MM-HH:MM' (with 'days' or 'dates'), or 'cron' + 'duration'")
            if self.duration is not None:
                raise ValueError("'duration' goes with 'cron'; a window has its own end — remove 'duration'")
            if self.days is not None and self.dates is not None:
                raise ValueError("give 'days' (repeating) or 'dates' (one-off), not both")
        return self


class ScheduleFile(StrictModel):
    """The whole schedule YAML: a default timezone, named holiday lists, and the rules."""

    timezone: TimezoneName | None = Field(None, description="default IANA timezone of the rules")
    holidays: dict[str, list[Any]] = Field(default_factory=dict, description="named lists of closed dates")
    rules: list[RuleSpec] = Field(default_factory=list, description="the rules")
