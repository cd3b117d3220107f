"""The `forescale backtest` command's work: build the replay config, load the trace, run, print and plot."""

from __future__ import annotations

import csv
import json
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
from autoscaler.core.ports import OverrideProvider
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import Config, DaemonSettings, NomadGroupRef, PoolConfig, PrometheusSettings
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
) -> None:
    """What `forescale backtest` does with its options (see ``autoscaler.cli.backtest``)."""
    out = Console()
    if not out.is_terminal:  # piped or captured: don't squeeze the table into 80 columns
        out = Console(width=120)
    err = Console(stderr=True)
    cfg, pool_name = _build_config(config, pool, capacity_per_node, lead_time, interval, slo_unserved_pct)
    cfg, note = learned_lead_time(cfg, pool_name)
    if note and not as_json:
        err.print(note, highlight=False)
    data = _load(trace, prometheus, query, since, step, until, cfg)
    overrides: OverrideProvider | None = None
    if config is not None:
        from autoscaler.wiring import build_provider

        overrides = build_provider(cfg)
    result = _run_with_progress(data, cfg, pool_name, overrides, err, show=not as_json or err.is_terminal)
    if decisions_out is not None:
        write_decisions(decisions_out, result.policies["forescale"].decisions)
    if plot is not None:
        _plot(plot, result)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        out.print(render_table(result, cfg.predictor.slo_unserved_pct))
        if decisions_out is not None:
            out.print(f"decisions: {decisions_out}")
        if plot is not None:
            out.print(f"plot: {plot}")




def learned_lead_time(cfg: Config, pool_name: str, now: datetime | None = None) -> tuple[Config, str | None]:
    """``lead_time: auto``: replay with the lead time the daemon plans with now (p95 of the boots in the audit
    log once enough are seen, else ``lead_time_initial``), so the backtest takes the same lead time."""
    from autoscaler.notify.audit import AuditLog
    from autoscaler.policy.nodes import lead_time

    pool = cfg.pool(pool_name)
    if not pool.lead_time_auto:
        return cfg, None
    now = now or datetime.now(UTC)
    boots, _ = AuditLog(cfg.audit_log).node_history(now - pool.nodes.boot_window)
    lead = lead_time(pool, boots, now)
    fixed = pool.model_copy(update={"lead_time": timedelta(seconds=round(lead.seconds)), "lead_time_auto": False})
    cfg = cfg.model_copy(update={"pools": [fixed if p.name == pool_name else p for p in cfg.pools]})
    return cfg, f"{pool_name}: {lead.explain()} — from {cfg.audit_log}"


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
) -> tuple[Config, str]:
    """The config to replay: the user's (with command-line overrides) or a default one-pool config."""
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
    update: dict[str, object] = {}
    if capacity is not None:
        update["capacity_per_node"] = capacity
    if lead is not None:
        update["lead_time"] = lead
    new_pool = base.model_copy(update=update)
    cfg = cfg.model_copy(
        update={
            "pools": [new_pool if p.name == base.name else p for p in cfg.pools],
            "daemon": cfg.daemon if every is None else DaemonSettings(interval=every),
            "predictor": cfg.predictor if slo is None else cfg.predictor.model_copy(update={"slo_unserved_pct": slo}),
        }
    )
    return cfg, base.name


def _load(
    trace: Path | None,
    prometheus: str | None,
    query: str | None,
    since: str,
    step: str,
    until: str | None,
    cfg: Config,
) -> Trace:
    if (trace is None) == (prometheus is None):
        raise BacktestError("give either --trace FILE.csv or --prometheus URL --query PROMQL")
    if trace is not None:
        try:
            return load_trace(trace)
        except TraceError as exc:
            raise BacktestError(str(exc)) from None
    if not query:
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
    settings = cfg.prometheus.model_copy(update={"url": prometheus, "step": res})
    return trace_from_prometheus(settings, query, span, end)


def trace_from_prometheus(
    settings: PrometheusSettings, query: str, since: timedelta, end: datetime | None = None
) -> Trace:
    """Fetch ``since`` of the rate history up to ``end`` (now) and turn it into a trace (rate × step per interval)."""
    from autoscaler.core.errors import MetricsUnavailable
    from autoscaler.sources.prometheus import PrometheusSource

    step_s = settings.step.total_seconds()
    end = end or datetime.now(UTC)
    try:
        series = PrometheusSource(settings).fetch(query, end - since, end, step_s).finite()
    except MetricsUnavailable as exc:
        raise BacktestError(f"cannot read history from {settings.url}: {exc}") from None
    if len(series) < 2:
        raise BacktestError(f"{settings.url}: the query returned fewer than two samples over {since}")
    # A rate sample at T describes the interval that ends at T: the trace stamps interval starts.
    return Trace("prometheus", series.t - step_s, np.maximum(series.rps, 0.0) * step_s, step_s)


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

        def advance(report: TickReport) -> None:
            progress.update(task, completed=report.at.timestamp() - data.start)

        return run_backtest(data, cfg, pool_name, overrides=overrides, on_tick=advance)


def write_decisions(path: Path, decisions: list[tuple[float, int]]) -> None:
    """CSV ``timestamp,desired``: when each decision was made (UTC) and the count it asked for."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "desired"])
        for t, desired in decisions:
            writer.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), desired])


def render_table(result: Backtest, slo_pct: float) -> Table:
    """One row per policy: cost, cost × oracle, SLO figures."""
    oracle = result.policies["oracle"].node_hours
    table = Table(
        title=f"backtest {result.trace.name}: {result.capacity_per_node:g} req/s per node, lead "
        f"{result.lead_time_s / 60:g} min, tick every {result.interval_s / 60:g} min, SLO unserved ≤ {slo_pct:g} %"
    )
    for col in ("policy", "node-hours", "cost × oracle", "unserved %", "under capacity %", "scale actions", "SLO"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name in POLICIES:
        r = result.policies[name]
        ratio = r.node_hours / oracle if oracle > 0 else float("nan")
        met = "[green]met[/]" if r.unserved_pct <= slo_pct else "[red]missed[/]"
        table.add_row(
            name,
            f"{r.node_hours:,.1f}",
            f"{ratio:.2f}",
            f"{r.unserved_pct:.3f}",
            f"{r.under_capacity_pct:.2f}",
            str(r.scale_actions),
            met,
        )
    return table


def _plot(path: Path, result: Backtest) -> None:
    from autoscaler.backtest.plot import plot_backtest

    f = result.policies["forescale"]
    first = len(result.trace.t) - len(f.t)
    plot_backtest(
        path,
        f"{result.trace.name}: demand vs ready capacity",
        f.t,
        result.trace.rps[first:],
        result.trace.step_s,
        result.capacity_per_node,
        {"forescale": f.ready, "reactive": result.policies["reactive"].ready},
    )
