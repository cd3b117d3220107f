"""The `forescale backtest` command's work: build the replay config, load the trace, run, print and plot."""

from __future__ import annotations

import csv
import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from autoscaler.backtest.replay import POLICIES, Backtest, BacktestError, run_backtest
from autoscaler.config import load_config
from autoscaler.core.durations import parse_duration
from autoscaler.core.ports import MetricsSource, OverrideProvider
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import Config, NomadGroupRef, PoolConfig
from autoscaler.core.settings.queue import QueueSettings
from autoscaler.notify.console import terminal_console
from autoscaler.sources.registry import build_metrics_source
from predictor.trace import Trace, TraceError, load_trace

UNBOUNDED_MAX = 1_000_000  # a trace alone states no pool max: leave the policy unclamped


def run_command(
    *,
    trace: Path | None,
    prometheus: str | None,
    query: str | None,
    since: str,
    step: str,
    until: str | None,
    capacity_per_node: float | None,
    lead_time: str | None,
    interval: str | None,
    slo_unserved_pct: float | None,
    config: Path | None,
    pool: str | None,
    as_json: bool,
    decisions_out: Path | None,
    plot: Path | None,
    plot_from: str | None = None,
    plot_to: str | None = None,
    latency_slo: str | None = None,
) -> None:
    """What `forescale backtest` does with its options (see ``autoscaler.cli.backtest``)."""
    out = terminal_console()  # piped or captured: don't squeeze the table into 80 columns
    err = Console(stderr=True)
    if plot is None and (plot_from or plot_to):
        raise BacktestError("--from/--to zoom the plot: add --plot FILE.png")
    zoom = (_when(plot_from, "--from"), _when(plot_to, "--to"))
    if zoom[0] is not None and zoom[1] is not None and zoom[0] >= zoom[1]:
        raise BacktestError(f"--from ({plot_from}) must be before --to ({plot_to})")
    cfg, pool_name, origins = _build_config(config, pool, capacity_per_node, lead_time, interval, slo_unserved_pct)
    cfg = with_queue(cfg, pool_name, _duration(latency_slo, "--latency-slo"))
    if lead_time is None:  # --lead-time wins over a learned one
        cfg, note = learned_lead_time(cfg, pool_name)
        if note is not None:
            origins["lead_time"] = note
    data, source = _load(trace, prometheus, query, since, step, until, cfg, pool_name, config is not None, err)
    err.print(describe(cfg, pool_name, origins, source, data), markup=False, highlight=False, soft_wrap=True)
    overrides: OverrideProvider | None = None
    if config is not None:
        from autoscaler.wiring import build_provider

        overrides = build_provider(cfg)
    result = _run_with_progress(data, cfg, pool_name, overrides, err, show=not as_json or err.is_terminal)
    if decisions_out is not None:
        forescale = result.policies["forescale"]
        write_decisions(decisions_out, forescale.decisions, [m.t for m in forescale.marks if m.kind == "guard"])
    if plot is not None:
        _plot(plot, result, *zoom)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        out.print(render_table(result, cfg.predictor.slo_unserved_pct))
        if any(r.queue is not None for r in result.policies.values()):
            out.print(render_queue_table(result))
        if decisions_out is not None:
            out.print(f"decisions: {decisions_out}")
        if plot is not None:
            out.print(f"plot: {plot}")


def with_queue(cfg: Config, pool_name: str, latency_slo: timedelta | None) -> Config:
    """``--latency-slo``: the pool replayed as queue-fed (its own ``queue:`` section with this SLO, or one whose
    backlog is the replay's simulated FIFO queue). Without it the config is replayed as it is."""
    if latency_slo is None:
        return cfg
    if latency_slo.total_seconds() < 0.001:
        raise BacktestError("--latency-slo must be at least 1ms (e.g. 3s)")
    pool = cfg.pool(pool_name)
    queue = (
        pool.queue.model_copy(update={"latency_slo": latency_slo})
        if pool.queue is not None
        else QueueSettings(backlog_query="simulated backlog", latency_slo=latency_slo)
    )
    fixed = pool.model_copy(update={"queue": queue})
    return cfg.model_copy(update={"pools": [fixed if p.name == pool_name else p for p in cfg.pools]})


def render_queue_table(result: Backtest) -> Table:
    """A queue-fed pool's waits per policy (backtest/queue.py): p95/p99 wait, share beyond the SLO, peak backlog."""
    slo = next(r.queue.slo_s for r in result.policies.values() if r.queue is not None)
    table = Table(
        title=f"queue: FIFO served at ready capacity; SLO p95 wait ≤ {slo:g} s (demand beyond capacity waits)"
    )
    for col in ("policy", "p95 wait s", "p99 wait s", "mean wait s", f"wait > {slo:g} s %", "peak backlog"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True)
    table.add_column("SLO", justify="right", no_wrap=True)
    for name in POLICIES:
        q = result.policies[name].queue
        if q is None:
            continue
        met = "[green]met[/]" if q.p95_wait_s <= slo else "[red]missed[/]"
        table.add_row(
            name,
            _wait(q.p95_wait_s),
            _wait(q.p99_wait_s),
            _wait(q.mean_wait_s),
            f"{q.beyond_slo_pct:.2f}",
            f"{q.peak_backlog:,.0f}",
            met,
        )
    return table


def _wait(seconds: float) -> str:
    return "∞" if seconds == float("inf") else f"{seconds:,.2f}"


def describe(cfg: Config, pool_name: str, origins: dict[str, str], source: str, data: Trace) -> str:
    """The settings the replay uses and where each one came from (printed on stderr before it starts)."""
    from autoscaler.core.durations import format_duration

    p = cfg.pool(pool_name)
    days = (data.end - data.start + data.step_s) / 86400.0
    return (
        f"backtest of pool '{pool_name}': a tick every {format_duration(cfg.daemon.interval)} "
        f"({origins['interval']}), lead time {format_duration(p.lead_time)} ({origins['lead_time']}), "
        f"{p.capacity_per_node:g} req/s per node ({origins['capacity']}); "
        f"{days:.1f} days of {format_duration(timedelta(seconds=data.step_s))} data from {source}"
        + (
            f"; queue-fed: demand beyond ready capacity waits in a FIFO queue whose backlog the tick reads, "
            f"latency SLO {format_duration(p.queue.latency_slo)}"
            if p.queue is not None
            else ""
        )
    )


def learned_lead_time(cfg: Config, pool_name: str, now: datetime | None = None) -> tuple[Config, str | None]:
    """``lead_time: auto``: replay with the lead time the daemon plans with now (p95 of the boots in the audit
    log once enough are seen, else ``lead_time_initial``), so the backtest takes the same lead time."""
    from autoscaler.notify.audit import AuditLog
    from autoscaler.policy.nodes import PoolLeadTimes

    pool = cfg.pool(pool_name)
    if not pool.lead_time_auto:
        return cfg, None
    now = now or datetime.now(UTC)
    boots, _ = AuditLog(cfg.audit_log).node_history(now - pool.nodes.boot_window)
    lead = PoolLeadTimes(lambda: boots).of(pool, now)  # the daemon's resolver, over the audit log's boots
    fixed = pool.model_copy(update={"lead_time": timedelta(seconds=round(lead.seconds)), "lead_time_auto": False})
    cfg = cfg.model_copy(update={"pools": [fixed if p.name == pool_name else p for p in cfg.pools]})
    return cfg, f"{pool_name}: {lead.explain()} — from {cfg.audit_log}"


def _when(text: str | None, option: str) -> float | None:
    """A UTC time given as ISO-8601 (a date alone is its midnight; no zone means UTC), as UNIX seconds."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BacktestError(f"{option}: '{text}' is not a time; write e.g. 2026-03-01T00:00:00Z") from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _duration(text: str | None, option: str) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BacktestError(f"{option}: {exc}") from None


def _build_config(
    config: Path | None,
    pool: str | None,
    capacity: float | None,
    lead_time: str | None,
    interval: str | None,
    slo: float | None,
) -> tuple[Config, str, dict[str, str]]:
    """The config to replay: the user's (with command-line overrides) or a default one-pool config; plus where
    the tick interval, lead time and capacity come from."""
    lead = _duration(lead_time, "--lead-time")
    every = _duration(interval, "--interval")
    if every is not None and every.total_seconds() < 1:
        raise BacktestError("--interval must be at least 1s")
    if config is not None:
        cfg = load_config(config)
        if pool is None:
            if len(cfg.pools) != 1:
                names = ", ".join(p.name for p in cfg.pools)
                raise BacktestError(f"{config} has several pools ({names}); choose one with --pool")
            pool = cfg.pools[0].name
        base = cfg.pool(pool)
        given = "daemon" in _keys(config)
        origins = {
            "interval": f"daemon.interval in {config}" if given else "daemon.interval's default",
            "lead_time": f"pools[{base.name}].lead_time in {config}",
            "capacity": f"pools[{base.name}].capacity_per_node in {config}",
        }
    else:
        if pool is not None:
            raise BacktestError("--pool needs --config")
        if capacity is None:
            raise BacktestError("--capacity-per-node is required without --config (req/s one node serves)")
        cfg = Config(
            pools=[
                PoolConfig(
                    name="backtest",
                    query="trace",
                    nomad=NomadGroupRef(job="backtest", group="workers"),
                    capacity_per_node=capacity,
                    max=UNBOUNDED_MAX,
                )
            ]
        )
        base = cfg.pools[0]
        origins = {"interval": "the default", "lead_time": "the default", "capacity": "--capacity-per-node"}
    # A shadow (or off) pool is replayed as it would act once live: in shadow nothing would ever be applied.
    update: dict[str, object] = {"mode": "active"}
    if capacity is not None:
        update["capacity_per_node"] = capacity
        origins["capacity"] = "--capacity-per-node"
    if lead is not None:
        update["lead_time"] = lead
        origins["lead_time"] = "--lead-time"
    if every is not None:
        origins["interval"] = "--interval"
    new_pool = base.model_copy(update=update)
    cfg = cfg.model_copy(
        update={
            "pools": [new_pool if p.name == base.name else p for p in cfg.pools],
            "predictor": cfg.predictor if slo is None else cfg.predictor.model_copy(update={"slo_unserved_pct": slo}),
        }
    )
    if every is not None:  # validated again: the pool defaults that count in ticks follow --interval
        cfg = cfg.with_interval(every)
    return cfg, base.name, origins


def _keys(path: Path) -> set[str]:
    """Top-level keys written in a config file (to tell a default from a value the user set)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def _load(
    trace: Path | None,
    prometheus: str | None,
    query: str | None,
    since: str,
    step: str,
    until: str | None,
    cfg: Config,
    pool_name: str,
    from_config: bool,
    err: Console,
) -> tuple[Trace, str]:
    """The history to replay and a phrase saying where it came from."""
    if trace is not None and (prometheus is not None or query is not None):
        raise BacktestError("give either --trace FILE.csv or Prometheus history (--prometheus/--query), not both")
    if trace is not None:
        try:
            return load_trace(trace), str(trace)
        except TraceError as exc:
            raise BacktestError(str(exc)) from None
    if prometheus is None and not from_config:
        raise BacktestError(
            "give --trace FILE.csv, --prometheus URL --query PROMQL, or -c forescale.yaml [--pool P] to replay the "
            "pool's own query from its prometheus.url"
        )
    pool = cfg.pool(pool_name)
    q = query or (pool.query if from_config else None)
    if not q:
        raise BacktestError("--prometheus needs --query PROMQL (the request rate in req/s)")
    span = _duration(since, "--since")
    res = _duration(step, "--step")
    assert span is not None and res is not None
    end = None
    if until is not None:
        try:
            end = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            raise BacktestError(f"--until: '{until}' is not a time; write e.g. 2026-03-01T00:00:00Z") from None
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
    history = history_config(cfg, prometheus, res)
    shown = _source_address(history)
    with err.status(f"fetching {since} of {step} history from {shown}", spinner="dots"):
        name = f"pool {pool_name}" if from_config and query is None else "the --query"
        data = history_trace(build_metrics_source(history), q, span, end, shown, name=name)
    if prometheus is not None:
        where = "--prometheus"
    else:
        where = "prometheus.url" if history.metrics.source == "prometheus" else "metrics.source"
    what = "--query" if query else f"pools[{pool_name}].query"
    return data, f"{shown} ({where}), query {q!r} ({what})"


def history_config(cfg: Config, prometheus: str | None, step: timedelta) -> Config:
    """The config whose metrics source the history is read from: ``--prometheus URL`` selects Prometheus at that
    URL (headers, TLS and timeout still from the file); Prometheus queries at ``--step``."""
    if prometheus is not None:
        cfg = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"source": "prometheus"})})
    if cfg.metrics.source != "prometheus":
        return cfg
    settings = cfg.prometheus.model_copy(update={"url": prometheus or cfg.prometheus.url, "step": step})
    return cfg.model_copy(update={"prometheus": settings})


def _source_address(cfg: Config) -> str:
    """Where the history comes from, for messages."""
    if cfg.metrics.source == "prometheus":
        return cfg.prometheus.url
    return f"metrics source {cfg.metrics.source}"


def history_trace(
    source: MetricsSource,
    query: str,
    since: timedelta,
    end: datetime | None = None,
    where: str = "the metrics source",
    *,
    name: str = "history",
) -> Trace:
    """Fetch ``since`` of the rate history up to ``end`` (now) at the source's step and turn it into a trace
    (rate × step per interval)."""
    from autoscaler.core.errors import MetricsUnavailable

    step_s = source.step_s
    end = end or datetime.now(UTC)
    try:
        series = source.fetch(query, end - since, end, step_s).finite()
    except MetricsUnavailable as exc:
        raise BacktestError(f"cannot read history from {where}: {exc}") from None
    if len(series) < 2:
        raise BacktestError(f"{where}: the query returned fewer than two samples over {since}")
    # A rate sample at T describes the interval that ends at T: the trace stamps interval starts.
    return Trace(name, series.t - step_s, np.maximum(series.rps, 0.0) * step_s, step_s)


def _run_with_progress(
    data: Trace, cfg: Config, pool_name: str, overrides: OverrideProvider | None, err: Console, show: bool
) -> Backtest:
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task(data.name, total=max(data.end - data.start, 1.0))

        total = max(data.end - data.start, 1.0)
        shown = [0]  # plain progress lines every 10 % where no live bar can be drawn (a pipe, a CI log)

        def advance(report: TickReport) -> None:
            done = report.at.timestamp() - data.start
            progress.update(task, completed=done)
            tenth = int(10 * done / total)
            if show and not err.is_terminal and tenth > shown[0]:
                shown[0] = tenth
                err.print(f"replaying {data.name}: {10 * tenth}%", highlight=False)

        return run_backtest(data, cfg, pool_name, overrides=overrides, on_tick=advance)


def write_decisions(path: Path, decisions: list[tuple[float, int]], guard_at: Collection[float] = ()) -> None:
    """CSV ``timestamp,desired,trigger``: when each decision was made (UTC), the count it asked for, and
    whether a tick or the guard between ticks made it (``guard_at``: the times of guard scale-ups)."""
    guarded = set(guard_at)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "desired", "trigger"])
        for t, desired in decisions:
            stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([stamp, desired, "guard" if t in guarded else "tick"])


def render_table(result: Backtest, slo_pct: float) -> Table:
    """One row per policy: cost, cost × oracle, SLO figures."""
    oracle = result.policies["oracle"].node_hours
    table = Table(
        title=f"backtest {result.trace.name}: {result.capacity_per_node:g} req/s per node, lead "
        f"{result.lead_time_s / 60:g} min, tick every {result.interval_s / 60:g} min, SLO unserved ≤ {slo_pct:g} %"
    )
    table.caption = (
        "floors/pins: of forescale's node-hours, those above what the forecast needed, asked by schedule floors and "
        "manual pins (the rest is the forecast's cost); actions: scale actions (/day: per day); reversals: changes "
        "opposite to the previous change, strictly within 60 min of it"
    )
    columns = ("policy", "node-hours", "floors/pins", "cost × oracle", "unserved %", "under-cap %", "actions", "/day")
    for col in (*columns, "reversals"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True)
    table.add_column("SLO", justify="right", no_wrap=True)
    for name in POLICIES:
        r = result.policies[name]
        ratio = r.node_hours / oracle if oracle > 0 else float("nan")
        met = "[green]met[/]" if r.unserved_pct <= slo_pct else "[red]missed[/]"
        table.add_row(
            name,
            f"{r.node_hours:,.1f}",
            f"{r.override_node_hours:,.1f}" if name == "forescale" else "—",
            f"{ratio:.2f}",
            f"{r.unserved_pct:.3f}",
            f"{r.under_capacity_pct:.2f}",
            str(r.scale_actions),
            f"{r.actions_per_day:.1f}",
            f"{r.reversals} ({r.reversal_pct:.0f} %)",
            met,
        )
    return table


def _plot(path: Path, result: Backtest, start: float | None = None, end: float | None = None) -> None:
    from autoscaler.backtest.plot import plot_backtest, window_mask

    f = result.policies["forescale"]
    if not np.any(window_mask(f.t, start, end)):
        first, last = datetime.fromtimestamp(float(f.t[0]), UTC), datetime.fromtimestamp(float(f.t[-1]), UTC)
        raise BacktestError(
            f"--from/--to: no replayed step in that window (the replay runs {first:%F %H:%M} to {last:%F %H:%M} UTC)"
        )
    first_step = len(result.trace.t) - len(f.t)
    plot_backtest(
        path,
        f"{result.trace.name}: nodes vs demand ({result.capacity_per_node:g} req/s per node)",
        f.t,
        result.trace.rps[first_step:],
        result.trace.step_s,
        result.capacity_per_node,
        {"forescale": f.ready, "reactive": result.policies["reactive"].ready},
        provisioned=f.provisioned,
        marks=f.marks,
        start=start,
        end=end,
    )
