"""`forescale demo`: the real tick replays a bundled real trace against a simulated cluster.

Each line shows the pool's desired count, how many nodes are placed (ready) and queued (still booting: Nomad
cannot place their allocations yet), and after a scale-up when the new nodes will be ready.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoscaler.backtest.replay import ReplayResult, replay
from autoscaler.core.ports import OverrideProvider
from autoscaler.core.report import TickReport
from autoscaler.core.resources import DEMO_TRACE, bundled
from autoscaler.core.settings.forescale import Config, DaemonSettings, NomadGroupRef, PoolConfig
from autoscaler.notify.console import ConsoleNotifier
from predictor.trace import Trace, load_trace

# The demo's time-based rule (the trace is NASA's July 1995 web log: mornings in Florida, and the
# 4th of July off). The same YAML syntax as overrides/schedule.yaml.
DEMO_SCHEDULE = """
rules:
  - name: business-hours
    pool: web
    timezone: America/New_York
    days: mon-fri
    window: "08:10-11:00"   # floor from 08:00 local (10m lead), so 30 nodes are ready at 08:10
    min: 30
    closed_on: [1995-07-04]   # Independence Day: no floor
"""


def demo_config(trace: Trace) -> Config:
    """One pool sized so the trace's peak needs about 50 nodes (as in the project's benchmarks)."""
    peak = float(trace.rps.max())
    pool = PoolConfig(
        name="web",
        query="sum(rate(http_requests_total[5m]))",
        nomad=NomadGroupRef(job="demo-web", group="workers"),
        capacity_per_node=round(peak / 50.0, 3),
        min=2,
        max=80,
        lead_time=timedelta(minutes=10),
    )
    return Config(pools=[pool], daemon=DaemonSettings(interval=timedelta(minutes=20)))


def run_demo(
    console: Console,
    trace_path: Path | None = None,
    days: float = 2.0,
    start_day: float = 2.0,
    pace_s: float = 0.0,
    overrides: OverrideProvider | None = None,
    config: Config | None = None,
) -> ReplayResult:
    """Replay ``days`` of the trace starting ``start_day`` days in, printing every decision."""
    trace = load_trace(trace_path or bundled("data", DEMO_TRACE))
    begin = trace.start + start_day * 86400
    end = begin + days * 86400
    keep = trace.t < end
    clipped = Trace(trace.name, trace.t[keep], trace.requests[keep], trace.step_s)
    cfg = config or demo_config(trace)
    pool = cfg.pools[0]
    if overrides is None and config is None:
        overrides = demo_overrides(cfg, datetime.fromtimestamp(begin, UTC), console)
    console.print(
        f"[bold]forescale demo[/]: replaying {trace.name} from "
        f"{datetime.fromtimestamp(begin, UTC):%Y-%m-%d %H:%M} UTC for {days:g} days, a tick every "
        f"{cfg.daemon.interval}, pool '{pool.name}' at {pool.capacity_per_node:g} req/s per node, "
        f"nodes ready {pool.lead_time} after they are asked for.\n"
    )

    def paced(_report: TickReport) -> None:
        if pace_s > 0:
            time.sleep(pace_s)  # the accelerated clock's pace, for humans watching; never in tests

    result = replay(
        clipped,
        cfg,
        pool.name,
        start=begin,
        overrides=overrides,
        notifiers=[ConsoleNotifier(console)],
        on_tick=paced,
    )
    table = Table(title="demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    guard_ups = sum(1 for m in result.marks if m.kind == "guard")
    for figure, value in (
        ("node-hours (booting: queued in Nomad)", f"{result.node_hours:.1f} ({result.queued_node_hours:.1f} booting)"),
        ("minutes under capacity", f"{result.under_capacity_minutes:.0f} ({result.under_capacity_pct:.2f} %)"),
        ("unserved requests", f"{result.unserved_pct:.3f} %"),
        ("scale actions (per day)", f"{result.scale_actions} ({result.actions_per_day:.1f})"),
        (
            "reversals: opposite to the previous change, < 60 min (of the actions)",
            f"{result.reversals} ({result.reversal_pct:.0f} %)",
        ),
        ("guard scale-ups between ticks", str(guard_ups)),
    ):
        table.add_row(figure, value)
    console.print()
    console.print(table)
    return result


def demo_overrides(config: Config, begin: datetime, console: Console) -> OverrideProvider:
    """A schedule floor and a manual pin on an in-memory store, so the demo shows both taking effect."""
    from overrides.operations import Request, set_override
    from overrides.provider import Overrides
    from overrides.schedule import parse_schedule
    from overrides.store import MemoryStore

    pool = config.pools[0]
    schedule = parse_schedule(DEMO_SCHEDULE, Path("demo-schedule.yaml"), {pool.name: pool.lead_time})
    store = MemoryStore()
    set_at = begin + timedelta(hours=13)  # Monday 17:00 UTC: inside the first day, so `--days 1` shows it too
    pin = Request(
        pool=pool,
        values={"pin": 35},
        reason="Shuttle launch coverage (demo)",
        author="demo-sre",
        expires_at=set_at + timedelta(hours=3),
    )
    set_override(store, pin, set_at, config.overrides.max_duration)
    for rule in schedule.rules:
        console.print(f"[bold]demo override[/]: {rule.label} floor {rule.min}, closed on 1995-07-04 (Independence Day)")
    console.print(
        f"[bold]demo override[/]: at {set_at:%Y-%m-%d %H:%M} UTC demo-sre runs "
        f"`forescale override set {pool.name} --pin 35 --for 3h --reason 'Shuttle launch coverage (demo)'`"
    )
    return Overrides(schedule, store, [pool.name], {pool.name: pool.lead_time})
