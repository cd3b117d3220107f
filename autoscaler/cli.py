"""The ``forescale`` command line (Typer + Rich). Every user-caused error is one readable line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console

from autoscaler import __version__
from autoscaler.errors import ConfigError, ForescaleError

app = typer.Typer(
    name="forescale",
    help="Predictive autoscaler for GPU ML workers on HashiCorp Nomad.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Validate and inspect forescale.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never hard-wrap error lines
_state = {"debug": False}

ConfigOpt = typer.Option(
    Path("forescale.yaml"), "--config", "-c", help="forescale.yaml to use.", envvar="FORESCALE_CONFIG"
)
PoolOpt = typer.Option(None, "--pool", "-p", help="Only this pool (repeatable).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


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
    _state["debug"] = debug
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
    from autoscaler.demo import run_demo

    run_demo(console, trace_path=trace, days=days, start_day=start_day, pace_s=pace)


@app.command()
def tick(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run one cycle: read rates, predict, decide, scale Nomad, audit and notify. For cron/periodic jobs.

    Exit status 1 when a pool failed (e.g. Nomad unreachable); held and deferred pools are not failures.
    """
    from autoscaler.cli_output import print_report
    from autoscaler.config import load_config
    from autoscaler.notifiers import build_notifiers
    from autoscaler.tick import run_tick
    from autoscaler.wiring import build_deps

    cfg = load_config(config)
    _check_pools(cfg, pool)
    # With --json, stdout carries only the JSON document: no console notifier (Slack still posts).
    deps = build_deps(cfg, notifiers=build_notifiers(cfg, console=not as_json))
    report = run_tick(deps, only=pool)
    print_report(console, report, f"forescale tick at {report.at:%Y-%m-%d %H:%M:%S} UTC", as_json)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command()
def plan(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    as_json: bool = JsonOpt,
    at: str | None = typer.Option(
        None,
        "--at",
        help="Decide as if it were this time (history, rules and overrides then), e.g. '2026-12-01 09:00 "
        "Asia/Kolkata' or 2026-12-01T03:30Z. The current count still comes from Nomad now.",
    ),
) -> None:
    """Dry run of one cycle: what forescale would do now (or --at a time) and why. Changes nothing in Nomad."""
    from autoscaler.cli_output import print_report
    from autoscaler.clock import Clock, ManualClock, SystemClock
    from autoscaler.config import load_config
    from autoscaler.tick import run_tick
    from autoscaler.wiring import build_deps
    from overrides.timeutil import parse_when

    cfg = load_config(config)
    _check_pools(cfg, pool)
    clock: Clock = SystemClock()
    if at is not None:
        try:
            clock = ManualClock(parse_when(at, clock.now()))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--at") from None
    deps = build_deps(cfg, clock=clock, notifiers=[])
    report = run_tick(deps, dry_run=True, only=pool)
    print_report(console, report, f"forescale plan at {report.at:%Y-%m-%d %H:%M:%S} UTC (dry run)", as_json)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command()
def run(config: Path = ConfigOpt) -> None:
    """Run the daemon: a tick every interval, /metrics and /healthz on loopback, clean stop on SIGTERM."""
    from autoscaler.config import load_config
    from autoscaler.wiring import build_daemon

    cfg = load_config(config)
    logging.getLogger("forescale").setLevel(logging.DEBUG if _state["debug"] else logging.INFO)
    build_daemon(cfg).run_forever()


@config_app.command("check")
def config_check(config: Path = typer.Argument(Path("forescale.yaml"), help="Config file to validate.")) -> None:
    """Validate a config; print each problem with its key path and the fix; exit 2 if invalid."""
    from autoscaler.config import load_config
    from autoscaler.config_checks import extra_checks

    cfg = load_config(config)
    problems = extra_checks(cfg)
    if problems:
        raise ConfigError(str(config), problems)
    names = ", ".join(p.name for p in cfg.pools)
    console.print(f"[green]ok[/]: {config} is valid ({len(cfg.pools)} pool(s): {names})")


def _check_pools(cfg: object, pools: list[str] | None) -> None:
    from autoscaler.config import Config

    assert isinstance(cfg, Config)
    for name in pools or []:
        cfg.pool(name)


def _register_subcommands() -> None:
    """Subsystems own their commands; each module adds itself to ``app``."""
    from autoscaler import cli_backtest, cli_jobspec, cli_notify
    from overrides import cli as overrides_cli

    for module in (cli_backtest, cli_jobspec, cli_notify, overrides_cli):
        module.register(app)


_register_subcommands()


def main() -> None:
    """Console-script entry point: turns ForescaleError into one line and an exit code."""
    try:
        app()
    except ConfigError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error[/]: invalid config {exc.path}:", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  - {problem}", highlight=False)
        sys.exit(2)
    except ForescaleError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error[/]: {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
