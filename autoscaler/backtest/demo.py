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

from autoscaler.backtest.replay import ReplayResult, replay, score_queue, start_index
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.ports import OverrideProvider
from autoscaler.core.report import TickReport
from autoscaler.core.resources import DEMO_TRACE, bundled
from autoscaler.core.settings.forescale import Config, DaemonSettings, NomadGroupRef, PoolConfig
from autoscaler.core.settings.queue import QueueSettings
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


def demo_config(trace: Trace, latency_slo: timedelta | None = None) -> Config:
    """One pool sized so the trace's peak needs about 50 nodes (as in the project's benchmarks); queue-fed when
    ``latency_slo`` is given (its backlog: the replay's simulated FIFO queue)."""
    peak = float(trace.rps.max())
    queue = None if latency_slo is None else QueueSettings(backlog_query="demo backlog", latency_slo=latency_slo)
    pool = PoolConfig(
        name="web",
        query="sum(rate(http_requests_total[5m]))",
        nomad=NomadGroupRef(job="demo-web", group="workers"),
        capacity_per_node=round(peak / 50.0, 3),
        min=2,
        max=80,
        lead_time=timedelta(minutes=10),
        queue=queue,
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
    latency_slo: str | None = None,
) -> ReplayResult:
    """Replay ``days`` of the trace starting ``start_day`` days in, printing every decision (a queue-fed pool
    with ``latency_slo``, e.g. "3s")."""
    trace = load_trace(trace_path or bundled("data", DEMO_TRACE))
    begin = trace.start + start_day * 86400
    end = begin + days * 86400
    keep = trace.t < end
    clipped = Trace(trace.name, trace.t[keep], trace.requests[keep], trace.step_s)
    cfg = config or demo_config(trace, None if latency_slo is None else parse_duration(latency_slo))
    pool = cfg.pools[0]
    if overrides is None and config is None:
        overrides = demo_overrides(cfg, datetime.fromtimestamp(begin, UTC), console)
    console.print(
        f"[bold]forescale demo[/]: replaying {trace.name} from "
        f"{datetime.fromtimestamp(begin, UTC):%Y-%m-%d %H:%M} UTC for {days:g} days, a tick every "
        f"{cfg.daemon.interval}, pool '{pool.name}' at {pool.capacity_per_node:g} req/s per node, "
        f"nodes ready {pool.lead_time} after they are asked for."
        + (
            " Queue-fed: requests beyond ready capacity wait in a FIFO queue "
            f"(SLO {format_duration(pool.queue.latency_slo)}); each tick reads its backlog.\n"
            if pool.queue is not None
            else "\n"
        )
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
    score_queue(clipped, start_index(clipped, begin), cfg, pool.name, result)
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
    if result.queue is not None:
        q = result.queue
        table.add_row("queue: p95 / p99 wait", f"{q.p95_wait_s:.2f} s / {q.p99_wait_s:.1f} s")
        table.add_row(f"queue: requests waiting over {q.slo_s:g} s", f"{q.beyond_slo_pct:.2f} %")
        table.add_row("queue: peak backlog", f"{q.peak_backlog:,.0f} requests")
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
