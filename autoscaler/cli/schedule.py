"""`forescale schedule …`: the schedule rules, what is in force at a time and which pin, floor or ceiling wins (as
decide's ``bounds`` says: this module only prints), and the coming changes."""

from __future__ import annotations

import json
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
    from autoscaler.core.decision import Reason
    from autoscaler.core.effects import OverrideEffect
    from autoscaler.core.settings.forescale import Config, PoolConfig
    from autoscaler.policy.decide import Bounds
    from overrides.schedule import Transition

# Heavy imports (config, numpy via interfaces) happen inside the commands: every `forescale` run loads this module.

schedule_app = typer.Typer(
    help="Time-based rules: what is in force at a time, and what changes next.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(schedule_app, name="schedule")


@schedule_app.command("show")
def schedule_show(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    pool: str | None = PoolOpt,
    at: str | None = typer.Option(
        None, "--at", metavar="TIME", help="Evaluate at this time instead of now (e.g. '2026-12-01 09:30')."
    ),
    tz: str = TzOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List the schedule rules and every floor, ceiling and pin in force at a time, and which one wins."""
    from autoscaler.core.durations import format_duration
    from autoscaler.core.timeutil import fmt_local, fmt_utc
    from overrides.schedule import schedule_for

    cfg = _load(config)
    pools = select_pools(cfg, pool)
    when = _time(at, tz, clock_of(ctx).now()) if at else clock_of(ctx).now()
    schedule = schedule_for(cfg)
    rules: list[dict[str, object]] = []
    table = Table(title=f"schedule rules ({m(cfg.overrides.schedule_file or 'no schedule_file configured')})")
    for col in ("pool", "rule", "timezone", "when", "floor", "ceiling", "lead", "closed on", f"at {fmt_utc(when)}"):
        table.add_column(col, overflow="fold")
    for p in pools:
        live = {(e.name, e.kind): e for e in schedule.effects(p.name, when)}
        for rule in schedule.for_pool(p.name):
            mine = [(k, e) for (name, k), e in live.items() if name == rule.name and e.expires_at is not None]
            state = [
                f"{'floor' if k == 'min' else 'ceiling'} {e.value} until {m(fmt_local(e.expires_at, rule.tz, when))}"
                for k, e in mine
                if e.expires_at is not None
            ]
            rules.append(
                {
                    "pool": p.name,
                    "rule": rule.name,
                    "timezone": rule.tz.key,
                    "when": rule.when,
                    "min": rule.min,
                    "max": rule.max,
                    "lead_s": rule.lead.total_seconds(),
                    "closed": sorted(str(d) for d in rule.closed),
                    "in_force": [
                        {"kind": k, "value": e.value, "until": e.expires_at.isoformat() if e.expires_at else None}
                        for k, e in mine
                    ],
                }
            )
            table.add_row(
                p.name,
                m(rule.name),
                m(rule.tz.key),
                m(rule.when),
                "—" if rule.min is None else str(rule.min),
                "—" if rule.max is None else str(rule.max),
                format_duration(rule.lead),
                m(_closed(rule.closed)),
                "[green]" + "\n".join(state) + "[/]" if state else "[dim]not in force[/]",
            )
    in_force, warnings = _in_force(cfg, pools, when)
    if as_json:
        doc = {
            "at": when.isoformat(),
            "schedule_file": str(cfg.overrides.schedule_file) if cfg.overrides.schedule_file else None,
            "rules": rules,
            "pools": in_force,
            "warnings": warnings,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    console.print(table)
    _print_in_force(in_force, when)
    for message in warnings:  # showing must not expire anything: no drain_events here
        err_console.print(f"[yellow]warning[/]: {m(message)}", highlight=False)


@schedule_app.command("next")
def schedule_next(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    pool: str | None = PoolOpt,
    count: int = typer.Option(10, "--count", "-n", min=1, max=1000, help="How many changes to list."),
    start: str | None = typer.Option(
        None, "--from", metavar="TIME", help="List changes after this time instead of now."
    ),
    tz: str = TzOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The coming changes: when each floor/ceiling starts (lead included) and ends. The daemon ticks then too."""
    from autoscaler.core.timeutil import fmt_local, fmt_utc
    from overrides.schedule import schedule_for

    cfg = _load(config)
    pools = select_pools(cfg, pool)
    begin = _time(start, tz, clock_of(ctx).now()) if start else clock_of(ctx).now()
    schedule = schedule_for(cfg)
    names = {p.name for p in pools}
    found: list[Transition] = []
    horizon = begin
    while len(found) < count and horizon < begin + timedelta(days=400):
        nxt = horizon + timedelta(days=31)
        found += [t for t in schedule.transitions(horizon, nxt) if t.rule.pool in names]
        horizon = nxt
    if as_json:
        changes = [
            {
                "at": t.at.isoformat(),
                "local": t.at.astimezone(t.rule.tz).isoformat(),
                "timezone": t.rule.tz.key,
                "pool": t.rule.pool,
                "rule": t.rule.name,
                "kind": t.kind,
                "value": t.value,
                "starts": t.starts,
                "change": t.describe(),
            }
            for t in found[:count]
        ]
        typer.echo(json.dumps({"from": begin.isoformat(), "changes": changes}, indent=2))
        return
    table = Table(title=f"next {count} schedule changes after {fmt_utc(begin)}")
    for col in ("UTC", "local", "pool", "rule", "change"):
        table.add_column(col, overflow="fold")
    for t in found[:count]:
        table.add_row(
            f"{t.at:%Y-%m-%d %H:%M}", m(fmt_local(t.at, t.rule.tz)), m(t.rule.pool), m(t.rule.name), m(t.describe())
        )
    if not found:
        console.print("no schedule changes in the next 400 days" + ("" if schedule.rules else " (no rules configured)"))
        return
    console.print(table)


def _load(path: Path) -> Config:
    from autoscaler.config import load_config

    return load_config(path)


def _time(text: str, tz: str, now: datetime) -> datetime:
    from autoscaler.core.timeutil import parse_when

    try:
        return parse_when(text, now, tz)
    except ValueError as exc:
        raise OverrideError(str(exc)) from None


def _closed(dates: frozenset[object]) -> str:
    items = sorted(str(d) for d in dates)
    return ", ".join(items[:4]) + (f" (+{len(items) - 4})" if len(items) > 4 else "") if items else "—"


def _in_force(cfg: Config, pools: list[PoolConfig], when: datetime) -> tuple[dict[str, object], list[str]]:
    """Per pool: every override effect in force at ``when`` and which pin/floor/ceiling wins — as decide's own
    ``bounds`` says (the precedence lives there; this only prints it); plus the store's warnings."""
    from autoscaler.policy.decide import bounds
    from autoscaler.wiring import build_provider

    provider = build_provider(cfg)
    out: dict[str, object] = {}
    for p in pools:
        effects = list(provider.effects(p.name, when))
        b = bounds(p, effects)
        out[p.name] = {
            "effects": [
                {
                    "source": e.source,
                    "kind": e.kind,
                    "value": e.value,
                    "name": e.name,
                    "explanation": e.explanation,
                    "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                }
                for e in effects
            ],
            "pool_min": p.min,
            "pool_max": p.max,
            "lowest": b.lowest,
            "highest": b.highest,
            "wins": _winners(effects, b),
        }
    return out, [event.message for event in provider.warnings()]


def _winners(effects: list[OverrideEffect], b: Bounds) -> list[str]:
    """Sentences naming the pin, floor and ceiling that bind (``bounds`` names them), and the ones they beat."""
    if b.pin is not None:
        won = _effect(effects, "pin", b.pin)
        others = [e for e in effects if e is not won]
        beaten = f"; it beats {_names(others)}" if others else ""
        return [f"pin {won.value} ({_name(won)}) wins: a pin beats floors, ceilings and the forecast{beaten}"]
    lines = []
    for kind, word, reason in (("min", "floor", b.floor), ("max", "ceiling", b.ceiling)):
        mine = [e for e in effects if e.kind == kind]
        if not mine:
            continue
        if reason is None:
            lines.append(f"no {word} binds: {_names(mine)} lie within the pool's min/max or lose to the other bounds")
            continue
        won = _effect(mine, kind, reason)
        others = [e for e in mine if e is not won]
        rule = "highest" if kind == "min" else "lowest"
        why = f"the {rule} of {len(mine)} {word}s" if others else f"the only {word}"
        beaten = f"; not binding: {_names(others)}" if others else ""
        lines.append(f"{word} {won.value} ({_name(won)}) wins: {why}{beaten}")
    return lines


def _effect(effects: list[OverrideEffect], kind: str, reason: Reason) -> OverrideEffect:
    """The effect a Reason of ``bounds`` names."""
    return next(e for e in effects if e.kind == kind and e.name == reason.effect)


def _name(e: OverrideEffect) -> str:
    return f"schedule rule '{e.name}'" if e.source == "schedule" else f"manual {e.name} by {e.author}"


def _names(effects: list[OverrideEffect]) -> str:
    return ", ".join(f"{e.kind} {e.value} ({_name(e)})" for e in effects)


def _print_in_force(in_force: dict[str, object], when: datetime) -> None:
    from autoscaler.core.timeutil import fmt_utc

    table = Table(
        title=f"in force at {fmt_utc(when)} (what decide applies: pin > max(floor, forecast), then pool min/max)"
    )
    for col in ("pool", "source", "kind", "value", "explanation"):
        table.add_column(col, overflow="fold")
    lines = []
    for name, info in in_force.items():
        assert isinstance(info, dict)
        for e in info["effects"]:
            table.add_row(name, m(e["source"]), m(e["kind"]), str(e["value"]), m(e["explanation"]))
        if not info["effects"]:
            bounds = f"pool min {info['pool_min']} / max {info['pool_max']}"
            table.add_row(name, "—", "—", "—", f"forecast only, within {bounds}")
        lines += [f"[bold]{name}[/]: {m(line)}" for line in info["wins"]]
        if info["effects"]:
            lines.append(
                f"[bold]{name}[/]: whatever the forecast, {info['lowest']}..{info['highest']} nodes "
                f"(pool min {info['pool_min']} / max {info['pool_max']})"
            )
    console.print(table)
    for line in lines:
        console.print(line, highlight=False)
