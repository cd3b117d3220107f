"""`forescale override …`: what SREs type to pin, floor or cap a pool (with a reason and an expiry), list and
clear overrides; each change is stored, audited and announced, then says when it takes effect."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from autoscaler.cli.common import (
    ConfigOpt,
    JsonOpt,
    PoolOpt,
    TzOpt,
    clock_of,
    console,
    err_console,
    select_pools,
)
from autoscaler.core.errors import OverrideError
from autoscaler.core.text import markup_safe as m

if TYPE_CHECKING:
    from autoscaler.core.report import Event
    from autoscaler.core.settings.forescale import Config
    from autoscaler.notify.audit import AuditLog
    from overrides.manual import Kind, ManualOverride

# Heavy imports (config, numpy via interfaces) happen inside the commands: every `forescale` run loads this module.

override_app = typer.Typer(
    help="Manual overrides: pin, floor or cap a pool, with a reason and an expiry.", no_args_is_help=True
)

_INT = re.compile(r"^\s*-?\d+\s*$")
WaitOpt = typer.Option(
    "15s",
    "--wait",
    metavar="DURATION",
    help="Wait this long for a running daemon to tick the pool and say so (0: do not wait).",
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(override_app, name="override")


# ---------------------------------------------------------------------------- override


@override_app.command("set")
def override_set(
    ctx: typer.Context,
    pool: str = typer.Argument(..., help="Pool to override."),
    pin: str | None = typer.Option(None, "--pin", metavar="N", help="Exact node count (beats schedule and forecast)."),
    floor: str | None = typer.Option(None, "--min", metavar="N", help="At least this many nodes."),
    ceiling: str | None = typer.Option(None, "--max", metavar="N", help="At most this many nodes."),
    for_: str | None = typer.Option(None, "--for", metavar="DURATION", help="How long, e.g. 3h, 90m, 2d."),
    until: str | None = typer.Option(
        None, "--until", metavar="TIME", help="Until when, e.g. 18:00, '2026-12-01 18:00', …Z."
    ),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (shown in Slack, plan and the audit log)."),
    by: str | None = typer.Option(None, "--by", help="Author (default: your OS user)."),
    tz: str = TzOpt,
    config: Path = ConfigOpt,
    wait: str = WaitOpt,
) -> None:
    """Pin, floor or cap a pool until an expiry (required; at most overrides.max_duration away).

    Then says when it takes effect: a running `forescale run` watching the same store ticks the pool within
    seconds (this waits for it, see --wait); otherwise the next `forescale tick` applies it.
    """
    from overrides.manual import default_author
    from overrides.operations import Request, sentence, set_events, set_override

    cfg = _load(config)
    p = select_pools(cfg, pool)[0]
    values: dict[Kind, int] = {}
    for kind, text in (("pin", pin), ("min", floor), ("max", ceiling)):
        if text is not None:
            values[kind] = _count(kind, text)  # type: ignore[index]
    now = clock_of(ctx).now().replace(microsecond=0)
    expires = _expiry(for_, until, tz, now)
    wait_s = _wait(wait)
    from autoscaler.jobspec.bounds import check_override

    for note in check_override(cfg, p, values):  # a value the job's scaling block refuses is an OverrideError
        err_console.print(f"[dim]note: {m(note)}[/]", highlight=False)
    from autoscaler.wiring import build_store

    audit = _audit(cfg)
    store = build_store(cfg)
    req = Request(
        pool=p, values=values, reason=reason, author=by if by is not None else default_author(), expires_at=expires
    )
    # Store write + audit record are one unit (undone if the audit record cannot be written); then Slack.
    created, replaced = set_override(store, req, now, cfg.overrides.max_duration, record=audit.record_events)
    events = set_events(created, replaced, now) + _expired_events(cfg, now, audit)
    for o in created:
        console.print(f"[green]set[/] {m(o.id)}: {m(sentence(o, 'override_set', now))}", highlight=False)
    for o in replaced:
        console.print(f"[yellow]replaced[/] {m(o.id)} (was {m(o.describe(now))})", highlight=False)
    _announce(cfg, events)
    _say_when(ctx, cfg, store.location, [p.name], wait_s)


@override_app.command("list")
def override_list(
    ctx: typer.Context,
    all_: bool = typer.Option(
        False, "--all", "-a", help="Also show overrides that ended (expired, cleared, replaced)."
    ),
    pool: str | None = PoolOpt,
    config: Path = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Active manual overrides (and, with --all, the recently ended ones)."""
    from autoscaler.core.timeutil import fmt_utc

    cfg = _load(config)
    pools = select_pools(cfg, pool)
    from autoscaler.wiring import build_store

    store = build_store(cfg)
    now = clock_of(ctx).now().replace(microsecond=0)
    records = {k: r.capped(cfg.overrides.max_duration) for k, r in store.read([p.name for p in pools]).items()}
    rows: list[tuple[ManualOverride, str]] = []
    plain: list[dict[str, object]] = []
    for name in records:
        for o in records[name].active:
            rows.append((o, "[green]active[/]" if o.active(now) else "[yellow]expired (not yet reported)[/]"))
            plain.append(o.to_json() | {"status": "active" if o.active(now) else "expired"})
        if all_:
            rows += [
                (o, f"[dim]{m(o.ended)} {fmt_utc(o.ended_at, now) if o.ended_at else ''}[/]")
                for o in records[name].history
            ]
            plain += [o.to_json() | {"status": o.ended or "ended"} for o in records[name].history]
    if as_json:
        typer.echo(json.dumps({"store": store.location, "at": now.isoformat(), "overrides": plain}, indent=2))
        return
    if not rows:
        console.print(f"no {'' if all_ else 'active '}manual overrides in {m(store.location)}", highlight=False)
        return
    table = Table(title=f"manual overrides ({m(store.location)}) at {fmt_utc(now)}")
    for col in ("id", "pool", "kind", "value", "by", "reason", "created", "expires", "status"):
        table.add_column(col, overflow="fold")
    for o, status in rows:
        table.add_row(
            m(o.id),
            m(o.pool),
            m(o.kind),
            str(o.value),
            m(o.author),
            m(o.reason),
            fmt_utc(o.created_at, now),
            fmt_utc(o.expires_at, now),
            status,
        )
    console.print(table)


@override_app.command("clear")
def override_clear(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="A pool (clears all its overrides) or an override id."),
    by: str | None = typer.Option(None, "--by", help="Who clears it (default: your OS user)."),
    config: Path = ConfigOpt,
    wait: str = WaitOpt,
) -> None:
    """End a manual override now (by id), or all of a pool's.

    A cleared pin returns the pool to the forecast at its next tick, without waiting for the scale-in cooldown.
    """
    from overrides.manual import default_author
    from overrides.operations import clear_overrides, event_for, sentence

    cfg = _load(config)
    wait_s = _wait(wait)
    from autoscaler.wiring import build_store

    audit = _audit(cfg)
    store = build_store(cfg)
    now = clock_of(ctx).now().replace(microsecond=0)
    author = by if by is not None else default_author()
    ended = clear_overrides(store, [p.name for p in cfg.pools], target, author, now, record=audit.record_events)
    events = [event_for(o, "override_cleared", now) for o in ended]
    events += _expired_events(cfg, now, audit)
    if not ended:
        console.print(f"pool '{m(target)}' has no active manual overrides; nothing to clear", highlight=False)
    for o in ended:
        console.print(f"[green]cleared[/] {m(o.id)}: {m(sentence(o, 'override_cleared', now))}", highlight=False)
    _announce(cfg, events)
    if ended:
        _say_when(ctx, cfg, store.location, sorted({o.pool for o in ended}), wait_s)


# ---------------------------------------------------------------------------- helpers


def _wait(text: str) -> float:
    from autoscaler.core.durations import parse_duration

    try:
        return float(text) if text.strip().replace(".", "", 1).isdigit() else parse_duration(text).total_seconds()
    except ValueError as exc:
        raise OverrideError(f"--wait: {exc}") from None


def _say_when(ctx: typer.Context, cfg: Config, store: str, pools: list[str], wait_s: float) -> None:
    """One line: when the change takes effect (after waiting for the daemon, unless --wait 0)."""
    from autoscaler.cli.effect import daemon_url, http_health, takes_effect

    since = clock_of(ctx).now()
    for name in pools:
        mode = cfg.pool(name).mode
        if mode == "off":
            console.print(
                f"[yellow]note[/]: pool '{name}' has mode: off: forescale does not act on it", highlight=False
            )
        elif mode == "shadow":
            console.print(f"[yellow]note[/]: pool '{name}' is in shadow: it only reports what it would do")
    url = daemon_url(cfg.daemon.listen_host, cfg.daemon.listen_port)
    where = url or "an unknown port (daemon.listen_port is 0)"
    effect = takes_effect(http_health(url) if url else None, where, store, pools, since, wait_s)
    console.print(("[green]" if effect.confirmed else "[dim]") + m(effect.text) + "[/]", highlight=False)


def _count(kind: str, text: str) -> int:
    shown = text if len(text) <= 24 else f"{text[:12]}…({len(text)} characters)"
    if not _INT.match(text):
        raise OverrideError(f"--{kind} must be a whole number of nodes, 0 or more (got '{m(shown)}')")
    if len(text.strip().lstrip("-")) > 9:  # Python refuses to parse > 4300 digits; no pool has a billion nodes
        raise OverrideError(f"--{kind} {shown}: far more nodes than any pool can hold; give the node count")
    value = int(text)
    if value < 0:
        raise OverrideError(f"--{kind} must be 0 or more nodes (got {value})")
    return value


def _load(path: Path) -> Config:
    from autoscaler.config import load_config

    return load_config(path)


def _expiry(for_: str | None, until: str | None, tz: str, now: datetime) -> datetime:
    from autoscaler.core.durations import parse_duration
    from autoscaler.core.timeutil import parse_when, zone

    if (for_ is None) == (until is None):
        raise OverrideError(
            "give exactly one expiry: --for 3h or --until 18:00 (required: a forgotten override is an outage or a bill)"
        )
    try:
        zone(tz)
    except ValueError as exc:
        raise OverrideError(f"--tz: {exc}") from None
    if for_ is not None:
        try:
            length = parse_duration(for_)
        except ValueError as exc:
            raise OverrideError(f"--for: {exc}") from None
        if length <= timedelta(0):
            raise OverrideError("--for must be longer than 0s")
        return now + length
    assert until is not None
    try:
        return parse_when(until, now, tz)
    except ValueError as exc:
        raise OverrideError(f"--until: {exc}") from None


def _audit(cfg: Config) -> AuditLog:
    """The audit log, checked writable before anything changes (a change is never stored without its record)."""
    from autoscaler.notify.audit import AuditLog

    audit = AuditLog(cfg.audit_log)
    try:
        audit.check_writable()
    except OSError as exc:
        raise OverrideError(
            f"cannot write the audit log {audit.path} ({exc.strerror or exc}): nothing was changed; "
            "point audit_log at a writable file"
        ) from None
    return audit


def _expired_events(cfg: Config, now: datetime, audit: AuditLog) -> list[Event]:
    from autoscaler.wiring import build_store
    from overrides.operations import event_for, expire

    try:
        events = [
            event_for(o, "override_expired", now)
            for o in expire(build_store(cfg), [p.name for p in cfg.pools], now, cfg.overrides.max_duration)
        ]
    except OverrideError as exc:
        err_console.print(f"[yellow]warning[/]: {m(exc)}", highlight=False)
        return []
    try:
        audit.record_events(events)
    except OSError as exc:
        err_console.print(f"[yellow]warning[/]: cannot append to audit log {m(audit.path)}: {m(exc.strerror)}")
    return events


def _announce(cfg: Config, events: list[Event]) -> None:
    """Tell the notifiers (Slack when configured) about changes already stored and audited."""
    from autoscaler.wiring import build_notifiers

    notifiers = build_notifiers(cfg, console=False)
    for event in events:
        for notifier in notifiers:
            try:
                notifier.announce(event)
            except Exception as exc:  # a notifier failure must not undo or hide the change
                err_console.print(
                    f"[yellow]warning[/]: {type(notifier).__name__} could not announce: {m(exc)}", highlight=False
                )
        if event.kind == "override_expired":
            console.print(f"[dim]{m(event.message)}[/]", highlight=False)
