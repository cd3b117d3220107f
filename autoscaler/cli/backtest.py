"""`forescale backtest`: replay a trace (or the metrics source's history) through the real tick, with reference
policies.

The work is in ``autoscaler.backtest.session`` (imported when the command runs: it needs numpy and matplotlib); the
history comes from the config's metrics source (``metrics.source``), built by the one constructor
``autoscaler.sources.registry.build_metrics_source`` — or from Prometheus at ``--prometheus URL``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from autoscaler.cli.common import finite

# = MAX_RPS_PER_NODE of autoscaler.core.settings.forescale, not imported here: `forescale --help` skips pydantic.
MAX_RPS_PER_NODE = 10_000_000.0


def register(app: typer.Typer) -> None:
    """Add ``forescale backtest`` to the main app."""
    app.command("backtest")(backtest)


def backtest(
    trace: Path | None = typer.Option(None, "--trace", help="timestamp,requests CSV (requests per interval)."),
    prometheus: str | None = typer.Option(None, "--prometheus", help="Replay history from this Prometheus URL."),
    query: str | None = typer.Option(
        None, "--query", help="Query giving the request rate in req/s (PromQL for Prometheus) [the pool's, with -c]."
    ),
    since: str = typer.Option("14d", "--since", help="How much metrics history to replay."),
    step: str = typer.Option("1m", "--step", help="Resolution of the Prometheus history."),
    until: str | None = typer.Option(None, "--until", help="End of the metrics history (UTC ISO-8601) [now]."),
    capacity_per_node: float | None = typer.Option(
        None,
        "--capacity-per-node",
        callback=finite(0.000001, MAX_RPS_PER_NODE),
        help="req/s one node serves (default: the pool's, with --config).",
    ),
    lead_time: str | None = typer.Option(None, "--lead-time", help="Time a new node needs to be ready [10m]."),
    interval: str | None = typer.Option(None, "--interval", help="Time between ticks [20m]."),
    slo_unserved_pct: float | None = typer.Option(
        None,
        "--slo-unserved-pct",
        callback=finite(0.000001, 50),
        help="SLO: max % of requests above ready capacity [1.0].",
    ),
    latency_slo: str | None = typer.Option(
        None,
        "--latency-slo",
        help="Replay as a queue-fed pool with this wait SLO, e.g. 3s: demand beyond capacity waits in a FIFO "
        "queue whose backlog the tick reads (default: the pool's queue.latency_slo, with --config).",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Use this forescale.yaml (pool, predictor, overrides)."
    ),
    pool: str | None = typer.Option(None, "--pool", "-p", help="Pool of --config to replay (default: its only pool)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    decisions_out: Path | None = typer.Option(None, "--decisions-out", help="Write forescale's decisions as CSV."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Write a PNG in nodes: demand, what forescale asked for and had ready, reactive, under-capacity "
        "shaded, schedule floors / pins / guard scale-ups marked.",
    ),
    plot_from: str | None = typer.Option(None, "--from", help="Zoom the plot: from this UTC time (ISO-8601)."),
    plot_to: str | None = typer.Option(None, "--to", help="Zoom the plot: up to this UTC time (ISO-8601)."),
) -> None:
    """Replay real traffic through the real tick (causally) and compare forescale with reference policies."""
    from autoscaler.backtest.session import run_command

    run_command(
        trace=trace,
        prometheus=prometheus,
        query=query,
        since=since,
        step=step,
        until=until,
        capacity_per_node=capacity_per_node,
        lead_time=lead_time,
        interval=interval,
        slo_unserved_pct=slo_unserved_pct,
        config=config,
        pool=pool,
        as_json=as_json,
        decisions_out=decisions_out,
        plot=plot,
        plot_from=plot_from,
        plot_to=plot_to,
        latency_slo=latency_slo,
    )
