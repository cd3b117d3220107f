"""`forescale capacity`: estimate a pool's ``capacity_per_node`` from Prometheus history or from a load test.

History: the pool's own rate (its ``query``) divided by its ready nodes (``--nodes-query``; by default the
placed count forescale itself exports), set against an SLO query (a p95 latency or an error rate) and its
threshold. A load test: a CSV of load steps on one node. Either way the answer is one sentence with the
evidence (a table of load bins or steps) and, with ``--plot``, a scatter of SLO metric against load per node.
The maths is in ``predictor.capacity_fit``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoscaler.cli.common import console, finite
from autoscaler.core.errors import ForescaleError
from autoscaler.core.text import markup_safe as m

if TYPE_CHECKING:
    from predictor.capacity_fit import CapacityEstimate

DEFAULT_NODES_QUERY = 'max(forescale_pool_nodes{{pool="{pool}",state="placed"}})'
MAX_CSV_ROWS = 100_000


@dataclass(frozen=True)
class Points:
    """What the plot draws: named (x, y) series (history samples, or one line per load-tested packing)."""

    series: dict[str, tuple[list[float], list[float]]]
    scatter: bool = False


class CapacityError(ForescaleError):
    """A capacity estimate cannot be made from what was given (one line, with the fix)."""

    exit_code = 2


def register(app: typer.Typer) -> None:
    app.command("capacity")(capacity)


def capacity(
    config: Path | None = typer.Option(None, "--config", "-c", help="forescale.yaml (the pool's query, Prometheus)."),
    pool: str | None = typer.Option(None, "--pool", "-p", help="Pool of --config (default: its only pool)."),
    slo_query: str | None = typer.Option(
        None, "--slo-query", help="PromQL of the SLO metric, e.g. a p95 latency in seconds or an error ratio."
    ),
    slo: float = typer.Option(
        ..., "--slo", callback=finite(0.0, 1e9), help="Threshold the SLO metric must stay at or below, e.g. 3 (s)."
    ),
    nodes_query: str | None = typer.Option(
        None, "--nodes-query", help="PromQL of the pool's ready nodes [forescale_pool_nodes{state=placed}]."
    ),
    since: str = typer.Option("14d", "--since", help="How much history to read."),
    step: str = typer.Option("5m", "--step", help="Resolution of the history."),
    until: str | None = typer.Option(None, "--until", help="End of the history (UTC ISO-8601) [now]."),
    load_test: Path | None = typer.Option(
        None, "--load-test", help="CSV of a load test on one node: rps,latency_s[,error_rate][,workers]."
    ),
    max_error_rate: float = typer.Option(
        0.01, "--max-error-rate", callback=finite(0.0, 1.0), help="Load test: highest error share that passes."
    ),
    hold_share: float = typer.Option(
        0.95,
        "--hold-share",
        callback=finite(0.5, 1.0),
        help="History: share of samples in a load bin that must meet the SLO.",
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG: SLO metric against load per node."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate and its evidence as JSON."),
) -> None:
    """Estimate capacity_per_node: the highest req/s per node at which the SLO held (history or a load test)."""
    if (load_test is None) == (config is None):
        raise CapacityError("give either -c forescale.yaml --slo-query Q (history) or --load-test FILE.csv")
    if load_test is not None:
        estimate, points = _from_load_test(load_test, slo, max_error_rate)
    else:
        assert config is not None
        if slo_query is None:
            raise CapacityError("--slo-query is required with -c (e.g. the pool's p95 latency in seconds)")
        window = (since, step, until)
        estimate, points = _from_history(config, pool, slo_query, slo, nodes_query, window, hold_share)
    if plot is not None:
        _plot(plot, estimate, points, slo)
    if as_json:
        typer.echo(json.dumps(estimate.to_dict(), indent=2))
        return
    _print(estimate)
    if plot is not None:
        console.print(f"plot: {m(plot)}", highlight=False)


def _from_history(
    config: Path,
    pool_name: str | None,
    slo_query: str,
    threshold: float,
    nodes_query: str | None,
    window: tuple[str, str, str | None],
    hold_share: float,
) -> tuple[CapacityEstimate, Points]:
    import numpy as np

    from autoscaler.cli.common import select_pools
    from autoscaler.config import load_config
    from autoscaler.core.durations import parse_duration
    from autoscaler.core.errors import MetricsUnavailable
    from autoscaler.sources.prometheus import PrometheusSource
    from predictor.capacity_fit import from_history

    cfg = load_config(config)
    if pool_name is None and len(cfg.pools) != 1:
        raise CapacityError(
            f"{config} has several pools ({', '.join(p.name for p in cfg.pools)}); pick one with --pool"
        )
    pool = select_pools(cfg, pool_name)[0]
    since, step, until = window
    try:
        span, every = parse_duration(since), parse_duration(step)
        end = datetime.now(UTC) if until is None else _utc(until)
    except ValueError as exc:
        raise CapacityError(f"--since/--step/--until: {exc}") from None
    source = PrometheusSource(cfg.prometheus)
    queries = {
        "rate": pool.query,
        "nodes": nodes_query or DEFAULT_NODES_QUERY.format(pool=pool.name),
        "slo": slo_query,
    }
    series = {}
    for name, query in queries.items():
        try:
            series[name] = source.fetch(query, end - span, end, every.total_seconds()).finite()
        except MetricsUnavailable as exc:
            raise CapacityError(f"the {name} query ({query}) gave no history: {exc}") from None
    common = np.intersect1d(np.intersect1d(series["rate"].t, series["nodes"].t), series["slo"].t)
    if len(common) == 0:
        raise CapacityError("the rate, nodes and SLO queries share no sample time; check them and --step")

    def at(name: str) -> np.ndarray:
        s = series[name]
        return s.rps[np.searchsorted(s.t, common)]

    nodes = at("nodes")
    per_node = np.where(nodes > 0, at("rate") / np.where(nodes > 0, nodes, 1), np.nan)
    label = f"{slo_query} <= {threshold:g}"
    what = f"pool {pool.name}, {len(common)} times over {since} from {source.shown_url}"
    estimate = from_history(per_node, at("slo"), threshold, slo=label, hold_share=hold_share, source=what)
    return estimate, Points({"samples": (per_node.tolist(), at("slo").tolist())}, scatter=True)


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _from_load_test(path: Path, threshold: float, max_error_rate: float) -> tuple[CapacityEstimate, Points]:
    from predictor.capacity_fit import LoadStep, from_load_test

    steps: list[LoadStep] = []
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(line for _, line in zip(range(MAX_CSV_ROWS + 1), fh, strict=False))
            fields = set(reader.fieldnames or [])
            if not {"rps", "latency_s"} <= fields:
                raise CapacityError(
                    f"{path}: line 1 must name at least the columns rps,latency_s (got {sorted(fields)})"
                )
            for n, row in enumerate(reader, start=2):
                try:
                    step = LoadStep(
                        float(row["rps"]),
                        float(row["latency_s"]),
                        float(row.get("error_rate") or 0.0),
                        int(row["workers"]) if row.get("workers") else None,
                    )
                except (TypeError, ValueError) as exc:
                    raise CapacityError(f"{path}: line {n}: {exc}; expected numbers, e.g. 40,1.8,0.001,4") from None
                if not all(map(_finite_nonnegative, (step.rps, step.latency, step.error_rate))):
                    raise CapacityError(f"{path}: line {n}: values must be finite and >= 0")
                steps.append(step)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CapacityError(f"{path}: cannot read the load test ({exc})") from None
    if not steps:
        raise CapacityError(f"{path}: no load steps")
    slo = f"latency <= {threshold:g} s and errors <= {max_error_rate:.2%}"
    estimate = from_load_test(steps, threshold, slo=slo, max_error_rate=max_error_rate, source=f"load test {path}")
    return estimate, Points(
        {
            f"{w} worker(s) per GPU" if w is not None else "load steps": (
                [s.rps for s in sorted(steps, key=lambda s: s.rps) if s.workers == w],
                [s.latency for s in sorted(steps, key=lambda s: s.rps) if s.workers == w],
            )
            for w in dict.fromkeys(s.workers for s in steps)
        }
    )


def _finite_nonnegative(value: float) -> bool:
    return value >= 0 and value != float("inf")


def _print(estimate: CapacityEstimate) -> None:
    from rich.table import Table

    if estimate.bins:
        table = Table(title="evidence: load per node (req/s) and the SLO metric, in bins of equal sample count")
        for col in ("req/s per node", "samples", "met the SLO", "median", "worst", "holds"):
            table.add_column(col, justify="right")
        for b in estimate.bins:
            table.add_row(
                f"{b.low:.4g}–{b.high:.4g}",
                str(b.samples),
                f"{b.held_share:.0%}",
                f"{b.median:.4g}",
                f"{b.worst:.4g}",
                "yes" if b.holds else "[red]no[/]",
            )
        console.print(table)
    if estimate.by_workers:
        table = Table(title="evidence: capacity of one GPU node per packing (load test)")
        table.add_column("workers per GPU", justify="right")
        table.add_column("req/s per node before the SLO broke", justify="right")
        for workers, cap in sorted(estimate.by_workers.items()):
            table.add_row(str(workers), "—" if cap is None else f"{cap:.4g}")
        console.print(table)
    console.print(m(estimate.sentence()), highlight=False)
    if estimate.capacity is not None:
        line = f"pools[].capacity_per_node: {estimate.capacity:.4g}"
        if estimate.best_workers is not None:
            line += f"  (jobspec.workers_per_gpu: {estimate.best_workers})"
        console.print(m(line), highlight=False)


def _plot(path: Path, estimate: CapacityEstimate, points: Points, slo: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for label, (xs, ys) in points.series.items():
        if points.scatter:
            ax.scatter(xs, ys, s=6, alpha=0.4, label=label)
        else:
            ax.plot(xs, ys, marker="o", ms=4, label=label)
    for b in estimate.bins:
        ax.plot([b.low, b.high], [b.median, b.median], color="tab:green" if b.holds else "tab:red", lw=2)
    ax.axhline(slo, color="black", ls="--", lw=1, label=f"SLO threshold {slo:g}")
    if estimate.capacity is not None:
        kind = "at least" if estimate.bound == "at_least" else "estimate"
        ax.axvline(
            estimate.capacity, color="tab:blue", lw=1.5, label=f"capacity_per_node {kind}: {estimate.capacity:.4g}"
        )
    ax.set_xlabel("req/s per ready node")
    ax.set_ylabel("SLO metric")
    ax.set_title(f"forescale capacity — {estimate.source}"[:110])
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise CapacityError(f"--plot {path}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
