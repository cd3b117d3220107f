"""Manual overrides: what an SRE sets for a campaign or an incident, always with a reason and an expiry."""

from __future__ import annotations

import getpass
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from autoscaler.core.durations import format_duration
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.errors import OverrideError
from autoscaler.core.timeutil import fmt_utc

Kind = Literal["pin", "min", "max"]
EndKind = Literal["expired", "cleared", "replaced"]
# Ended overrides kept per pool for `override list --all` (the audit log keeps everything). The Nomad store also
# trims them by size: a Nomad variable holds at most 64 KiB.
HISTORY_KEEP = 50
MAX_REASON_CHARS = 500  # a reason is a sentence for Slack and the audit log, not a document
MAX_AUTHOR_CHARS = 64


class ManualOverride(BaseModel):
    """One manual override as stored (JSON in the file store, an item of a Nomad variable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., min_length=1, max_length=64)
    pool: str = Field(..., min_length=1)
    kind: Kind
    value: int = Field(..., ge=0)
    reason: str = Field(..., min_length=1)
    author: str = Field(..., min_length=1)
    created_at: AwareDatetime
    expires_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    ended: EndKind | None = None
    ended_by: str | None = None

    @field_validator("created_at", "expires_at", "ended_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.astimezone(UTC) if v is not None else None

    def active(self, now: datetime) -> bool:
        return self.ended is None and self.created_at <= now < self.expires_at

    def describe(self, now: datetime | None = None) -> str:
        """ "pinned to 40 by alice until 18:00 UTC for 'Diwali campaign'"."""
        until = fmt_utc(self.expires_at, now)
        what = {"pin": f"pinned to {self.value}", "min": f"floor {self.value}", "max": f"ceiling {self.value}"}
        by = "by" if self.kind == "pin" else "set by"
        prefix = "" if self.kind == "pin" else "manual "
        return f"{prefix}{what[self.kind]} {by} {self.author} until {until} for '{self.reason}'"

    def effect(self, now: datetime) -> OverrideEffect:
        return OverrideEffect(
            kind=self.kind,
            value=self.value,
            source="manual",
            name=self.id,
            explanation=self.describe(now),
            expires_at=self.expires_at,
            author=self.author,
            reason=self.reason,
        )

    def to_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class PoolRecords(BaseModel):
    """The stored state of one pool: active overrides and recently ended ones."""

    model_config = ConfigDict(extra="forbid")

    active: list[ManualOverride] = Field(default_factory=list)
    history: list[ManualOverride] = Field(default_factory=list)

    def end(self, item: ManualOverride, how: EndKind, at: datetime, by: str | None) -> ManualOverride:
        """Move ``item`` from active to history (bounded)."""
        ended = item.model_copy(update={"ended": how, "ended_at": at, "ended_by": by})
        self.active = [o for o in self.active if o.id != item.id]
        self.history = [*self.history, ended][-HISTORY_KEEP:]
        return ended

    def empty(self) -> bool:
        return not self.active and not self.history

    def capped(self, max_duration: timedelta | None) -> PoolRecords:
        """A copy whose active overrides end at most ``max_duration`` after they were created.

        ``set`` enforces the maximum; this enforces it again on read, so a hand-edited expiry (year 9999) in the
        file or the Nomad variable cannot keep a pin forever."""
        if max_duration is None:
            return self
        active = [
            o.model_copy(update={"expires_at": o.created_at + max_duration})
            if o.expires_at - o.created_at > max_duration + timedelta(seconds=1)
            else o
            for o in self.active
        ]
        return PoolRecords(active=active, history=list(self.history))


def default_author() -> str:
    """The OS user (what `--by` defaults to)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER") or "unknown"


def new_id() -> str:
    return "ov-" + uuid.uuid4().hex[:8]


def make_override(
    *,
    pool: str,
    kind: Kind,
    value: int,
    reason: str,
    author: str,
    now: datetime,
    expires_at: datetime,
    max_duration: timedelta,
) -> ManualOverride:
    """Validate and build a new override; OverrideError says what to fix."""
    if not reason.strip():
        raise OverrideError("--reason is required and cannot be empty: say why (it goes to Slack and the audit log)")
    if len(reason.strip()) > MAX_REASON_CHARS:
        raise OverrideError(
            f"--reason is {len(reason.strip())} characters; keep it to {MAX_REASON_CHARS} (a sentence for Slack and "
            "the audit log; link a ticket for the details)"
        )
    if not author.strip():
        raise OverrideError("--by cannot be empty")
    if len(author.strip()) > MAX_AUTHOR_CHARS:
        raise OverrideError(f"--by is {len(author.strip())} characters; keep it to {MAX_AUTHOR_CHARS}")
    if value < 0:
        raise OverrideError(f"--{kind} must be 0 or more nodes (got {value})")
    if expires_at <= now:
        raise OverrideError(
            f"the expiry {fmt_utc(expires_at)} is not in the future (now {fmt_utc(now)}); "
            "give a later --until or a --for"
        )
    if expires_at - now > max_duration + timedelta(seconds=1):
        raise OverrideError(
            f"the expiry {fmt_utc(expires_at)} is {format_duration(expires_at - now)} away, beyond the hard maximum "
            f"of {format_duration(max_duration)} (overrides.max_duration); choose a shorter --for/--until"
        )
    return ManualOverride(
        id=new_id(),
        pool=pool,
        kind=kind,
        value=value,
        reason=reason.strip(),
        author=author.strip(),
        created_at=now,
        expires_at=expires_at,
    )
