"""Benchmark: one tick for 10 pools, each reading 14 days of 1-minute history from a real Prometheus.

Starts the Debian ``prometheus`` binary on 127.0.0.1 over a TSDB backfilled (promtool) with synthetic
diurnal + weekly request counters, then runs the real ``run_tick`` (PrometheusSource → configured predictor
→ decide → SimulatedCluster) and prints wall time and peak memory. Targets: < 2 s, < 250 MB.

    .venv/bin/python benchmarks/tick.py [--pools 10] [--days 14] [--repeats 3] [--model seasonal_lr]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.fixtures.prometheus_server` from a checkout

from autoscaler.core.clock import ManualClock
from autoscaler.core.ports import NoOverrides
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.targets.simulated import SimulatedCluster
from predictor.base import Forecast, Predictor
from predictor.factory import make_predictor
from tests.fixtures.prometheus_server import CounterSeries, binaries_missing, counter_from_counts, running_prometheus

DAY = 86400.0
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon: the data ends here
STEP_S = 60.0


def synthetic_counts(pool: int, days: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-minute request counts: a daily cycle, quieter weekends, Poisson noise; each pool its own size."""
    end = NOW.timestamp()
    starts = np.arange(end - days * DAY, end, STEP_S)
    hour = (starts % DAY) / 3600.0
    daily = 0.25 + 0.75 * np.clip(np.sin(np.pi * (hour - 6.0 - pool * 0.3) / 14.0), 0.0, None) ** 2
    weekday = np.where(((starts // DAY + 3) % 7) >= 5, 0.6, 1.0)  # 1970-01-01 was a Thursday
    rate = (20.0 + 15.0 * pool) * daily * weekday  # req/s
    return starts, rng.poisson(rate * STEP_S).astype(np.float64)


@dataclass
class Timed:
    """Wraps the metrics source and the predictors to split the tick's time into fetch and forecast."""

    fetch_s: float = 0.0
    forecast_s: float = 0.0
    points: int = 0
    queries: list[int] = field(default_factory=list)


class TimedSource:
    def __init__(self, inner: PrometheusSource, timed: Timed) -> None:
        self.inner, self.timed = inner, timed
        self.step_s = inner.step_s

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        t0 = time.perf_counter()
        try:
            series = self.inner.fetch(query, start, end, step_s)
        finally:
            self.timed.fetch_s += time.perf_counter() - t0
        self.timed.points += len(series)
        return series


class AtLeastHistory:
    """The configured predictor, asked to read at least ``min_history_s`` (14 days by default)."""

    def __init__(self, inner: Predictor, min_history_s: float, timed: Timed) -> None:
        self.inner, self.min_history_s, self.timed = inner, min_history_s, timed
        self.name = inner.name

    def history_seconds(self) -> float:
        return max(self.inner.history_seconds(), self.min_history_s)

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        t0 = time.perf_counter()
        try:
            return self.inner.forecast(history, now, horizon_s)
        finally:
            self.timed.forecast_s += time.perf_counter() - t0


def build_config(url: str, pools: int, model: str | None) -> Config:
    predictor: dict[str, Any] = {"model": model} if model else {}
    return Config.model_validate(
        {
            "prometheus": {"url": url, "step": "1m", "timeout": "30s"},
            "predictor": predictor,
            "pools": [
                {
                    "name": f"pool-{i}",
                    "query": f'sum(rate(http_requests_total{{pool="pool-{i}"}}[5m]))',
                    "nomad": {"job": f"ml-pool-{i}", "group": "workers"},
                    "capacity_per_node": 5.0,
                    "min": 1,
                    "max": 200,
                }
                for i in range(pools)
            ],
        }
    )


def one_tick(config: Config, days: float, trace_memory: bool) -> dict[str, float]:
    timed = Timed()
    clock = ManualClock(NOW)

    def predictor_for(pool: PoolConfig) -> Predictor:
        return AtLeastHistory(make_predictor(config.predictor, pool), days * DAY, timed)

    deps = TickDeps(
        config=config,
        metrics=TimedSource(PrometheusSource(config.prometheus), timed),
        predictor_for=predictor_for,
        target=SimulatedCluster(clock, {p.name: 5 for p in config.pools}),
        overrides=NoOverrides(),
        clock=clock,
    )
    if trace_memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    report = run_tick(deps)
    wall = time.perf_counter() - t0
    peak_heap = 0.0
    if trace_memory:
        peak_heap = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    failed = [o for o in report.outcomes if o.decision is None or o.decision.held]
    if failed:
        causes = "; ".join(f"{o.pool}: {o.error or (o.decision and o.decision.hold_cause)}" for o in failed)
        raise SystemExit(f"benchmark tick did not decide every pool: {causes}")
    return {
        "wall_s": wall,
        "fetch_s": timed.fetch_s,
        "forecast_s": timed.forecast_s,
        "points": float(timed.points),
        "heap_mb": peak_heap,
        "desired": float(sum(o.decision.desired for o in report.outcomes if o.decision)),
    }


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KiB on Linux


def prometheus_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--days", type=float, default=14.0, help="history each pool reads (1-minute steps)")
    parser.add_argument("--repeats", type=int, default=3, help="timed ticks after the first (cold) one")
    parser.add_argument("--model", default=None, help="predictor model (default: the configured default)")
    args = parser.parse_args(argv)
    console = Console()
    missing = binaries_missing()
    if missing:
        console.print(f"[red]{', '.join(missing)} not found: install the Debian 'prometheus' package[/red]")
        return 2

    rng = np.random.default_rng(42)
    series: list[CounterSeries] = []
    for i in range(args.pools):
        starts, counts = synthetic_counts(i, args.days + 0.5, rng)
        series.append(counter_from_counts({"pool": f"pool-{i}"}, starts, counts, STEP_S, STEP_S))
    samples = sum(len(s.t) for s in series)
    with tempfile.TemporaryDirectory(prefix="forescale-bench-") as tmp:
        t0 = time.perf_counter()
        with running_prometheus(series, Path(tmp)) as server:
            setup_s = time.perf_counter() - t0
            config = build_config(server.url, args.pools, args.model)
            rss_before = rss_mb()
            cold = one_tick(config, args.days, trace_memory=False)
            warm = [one_tick(config, args.days, trace_memory=False) for _ in range(max(args.repeats, 1))]
            traced = one_tick(config, args.days, trace_memory=True)
            rss_after = rss_mb()
            prom_rss = prometheus_rss_mb(server.proc.pid)

    model = config.predictor.model
    table = Table(title=f"forescale tick: {args.pools} pools × {args.days:g} days of 1-minute history ({model})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    med = {k: statistics.median(r[k] for r in warm) for k in ("wall_s", "fetch_s", "forecast_s")}
    worst = max([cold["wall_s"]] + [r["wall_s"] for r in warm])
    table.add_row("tick wall time, first (cold)", f"{cold['wall_s']:.3f} s", "< 2 s")
    table.add_row(f"tick wall time, median of {len(warm)}", f"{med['wall_s']:.3f} s", "< 2 s")
    table.add_row("  of which Prometheus fetch", f"{med['fetch_s']:.3f} s", "")
    table.add_row("  of which predictor", f"{med['forecast_s']:.3f} s", "")
    table.add_row("tick wall time, worst", f"{worst:.3f} s", "< 2 s")
    table.add_row("samples read per tick", f"{int(cold['points']):,}", "")
    table.add_row("peak Python heap during a tick (tracemalloc)", f"{traced['heap_mb']:.1f} MB", "< 250 MB")
    table.add_row("peak RSS of this process (ru_maxrss)", f"{rss_after:.1f} MB", "< 250 MB")
    table.add_row("  RSS growth over the ticks", f"{rss_after - rss_before:.1f} MB", "")
    table.add_row("Prometheus server peak RSS (VmHWM)", f"{prom_rss:.1f} MB", "")
    table.add_row("setup: backfill + start Prometheus", f"{setup_s:.1f} s ({samples:,} samples)", "")
    console.print(table)
    ok = worst < 2.0 and rss_after < 250.0
    console.print("[green]within targets[/green]" if ok else "[red]target missed[/red]")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
