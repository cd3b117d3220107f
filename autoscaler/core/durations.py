"""Human durations in config and on the command line: ``90s``, ``10m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION = timedelta(days=366)  # nothing forescale waits for, plans over or keeps is longer than a year


def parse_duration(value: Any) -> timedelta:
    """Parse ``1h30m``-style text (or a number of seconds) into a timedelta; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 10m or 1h30m")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a duration must be a finite number of seconds or text such as 10m")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(float(value), str(value))
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 10m or 1h30m")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty duration; write e.g. 10m")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"'{value}' is not a duration; write e.g. 90s, 10m, 1h30m or 2d")
    return _bounded(total, value)


def _bounded(seconds: float, shown: str) -> timedelta:
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"'{shown[:40]}{'…' if len(shown) > 40 else ''}' is longer than {format_duration(MAX_DURATION)}; "
            "write a sensible duration such as 10m, 2h or 7d"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration for whole seconds: 5400s → ``1h30m``."""
    seconds = round(delta.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + "".join(out)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def format_duration_s(seconds: float) -> str:
    """``format_duration`` of a number of seconds: 450.0 → ``7m30s``."""
    return format_duration(timedelta(seconds=seconds))
