"""The ``forescale`` command line (Typer + Rich). Every user-caused error is one readable line.

Start-up stays light: command modules import their heavy parts (scikit-learn, numpy, slack-sdk, the
Nomad client) inside the commands, so `forescale --help` and shell completion do not pay for them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from autoscaler import __version__
from autoscaler.cli.common import CliState, ConfigOpt, JsonOpt, PoolsOpt, clock_of, console, err_console, state
from autoscaler.core.errors import ConfigError, ForescaleError

app = typer.Typer(
    name="forescale",
    help="Predictive autoscaler for GPU ML workers on HashiCorp Nomad.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Validate and inspect forescale.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        console.print(f"forescale {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit()
    state(ctx).debug = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def demo(
    days: float = typer.Option(2.0, min=0.1, max=25, help="How many days of the trace to replay."),
    start_day: float = typer.Option(2.0, min=0, help="Start this many days into the trace."),
    pace: float = typer.Option(0.01, min=0, help="Real seconds per simulated tick (the accelerated clock)."),
    trace: Path | None = typer.Option(None, help="Replay this timestamp,requests CSV instead of the bundled one."),
) -> None:
    """Replay a real traffic trace through the real tick against a simulated cluster (no Nomad needed)."""
    from autoscaler.backtest.demo import run_demo

    run_demo(console, trace_path=trace, days=days, start_day=start_day, pace_s=pace)


@app.command()
def tick(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run one cycle: read rates, predict, decide, scale Nomad, audit and notify. For cron/periodic jobs.

    Exit status 1 when a pool failed (e.g. Nomad unreachable); held and deferred pools are not failures.
    """
    from autoscaler.cli.common import select_pools
    from autoscaler.cli.output import print_report
    from autoscaler.config import load_config
    from autoscaler.policy.tick import run_tick
    from autoscaler.wiring import build_deps, build_notifiers

    cfg = load_config(config)
    only = [p.name for p in select_pools(cfg, pool)]
    # With --json, stdout carries only the JSON document: no console notifier (Slack still posts).
    deps = build_deps(cfg, clock=clock_of(ctx), notifiers=build_notifiers(cfg, console=not as_json))
    report = run_tick(deps, only=only)
    print_report(console, report, f"forescale tick at {report.at:%Y-%m-%d %H:%M:%S} UTC", as_json)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command()
def plan(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolsOpt,
    as_json: bool = JsonOpt,
    at: str | None = typer.Option(
        None,
        "--at",
        help="Decide as if it were this time (history, rules and overrides then), e.g. '2026-12-01 09:00 "
        "Asia/Kolkata' or 2026-12-01T03:30Z. The current count still comes from Nomad now.",
    ),
) -> None:
    """Dry run of one cycle: what forescale would do now (or --at a time) and why. Changes nothing in Nomad."""
    from autoscaler.cli.common import select_pools
    from autoscaler.cli.output import print_report
    from autoscaler.config import load_config
    from autoscaler.core.clock import ManualClock
    from autoscaler.core.timeutil import parse_when
    from autoscaler.policy.tick import run_tick
    from autoscaler.wiring import build_deps

    cfg = load_config(config)
    only = [p.name for p in select_pools(cfg, pool)]
    clock = clock_of(ctx)
    if at is not None:
        try:
            clock = ManualClock(parse_when(at, clock.now()))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--at") from None
    deps = build_deps(cfg, clock=clock, notifiers=[])
    report = run_tick(deps, dry_run=True, only=only)
    print_report(console, report, f"forescale plan at {report.at:%Y-%m-%d %H:%M:%S} UTC (dry run)", as_json)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command()
def run(ctx: typer.Context, config: Path = ConfigOpt) -> None:
    """Run the daemon: a tick every interval, /metrics and /healthz on loopback, clean stop on SIGTERM."""
    from autoscaler.config import load_config
    from autoscaler.wiring import build_daemon

    cfg = load_config(config)
    logging.getLogger("forescale").setLevel(logging.DEBUG if state(ctx).debug else logging.INFO)
    build_daemon(cfg, clock=clock_of(ctx)).run_forever()


@config_app.command("check")
def config_check(config: Path = typer.Argument(Path("forescale.yaml"), help="Config file to validate.")) -> None:
    """Validate a config; print each problem with its key path and the fix; exit 2 if invalid."""
    from autoscaler.config import extra_checks, load_config

    cfg = load_config(config)
    problems = extra_checks(cfg)
    if problems:
        raise ConfigError(str(config), problems)
    names = ", ".join(p.name for p in cfg.pools)
    console.print(f"[green]ok[/]: {config} is valid ({len(cfg.pools)} pool(s): {names})")


def _register_subcommands() -> None:
    """Command groups live in their own modules; each adds itself to ``app`` (their imports are light)."""
    from autoscaler.cli import backtest, jobspec, notify, overrides

    for module in (backtest, jobspec, notify, overrides):
        module.register(app)


_register_subcommands()


def main(cli_state: CliState | None = None) -> None:
    """Console-script entry point: turns ForescaleError into one line and its exit code.

    ``cli_state`` lets tests run the real entry point on a ManualClock.
    """
    cli_state = cli_state or CliState()
    try:
        app(obj=cli_state)
    except ConfigError as exc:
        if cli_state.debug:
            raise
        err_console.print(f"[red]error[/]: invalid config {exc.path}:", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  - {problem}", highlight=False)
        sys.exit(exc.exit_code)
    except ForescaleError as exc:
        if cli_state.debug:
            raise
        err_console.print(f"[red]error[/]: {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
