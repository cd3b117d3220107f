"""The ``forescale`` command line (Typer + Rich). Every user-caused error is one readable line.

Start-up stays light: command modules import their heavy parts (numpy, slack-sdk, the Nomad client) inside the
commands, so `forescale --help` and shell completion do not pay for them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoscaler import __version__
from autoscaler.cli.common import CliState, ConfigOpt, JsonOpt, PoolsOpt, clock_of, console, err_console, state
from autoscaler.core.errors import ConfigError, ForescaleError
from autoscaler.core.text import RedactFilter, SafeFormatter, markup_safe, redact, redact_url

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config

app = typer.Typer(
    name="forescale",
    help="Predictive autoscaler for GPU ML workers on HashiCorp Nomad.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain Click help and usage errors: Typer's Rich panels cost ~0.2 s of imports (rich.markdown, markdown-it,
    # rich.traceback) on every --help (item 9 of issue 14: every command starts in < 0.6 s), wrap in pipes, and
    # ate help text in brackets ("[10m]") as markup.
    rich_markup_mode=None,
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
    configure_logging(debug)


# Libraries whose DEBUG lines print request headers (AWS signatures, session tokens, auth headers): they stay at
# INFO under --debug, and every line that does reach a handler is redacted (RedactFilter) anyway. Without
# --debug only their errors show (urllib3's "Retrying (Retry(total=0 …))" warnings are not for operators).
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "slack_sdk", "google", "azure", "msal")


def configure_logging(debug: bool) -> None:
    """Log lines on stderr; their messages are ``safe`` (one line, no terminal control, no URL credentials, no
    configured secret); third-party libraries never log at DEBUG."""
    root = logging.getLogger()
    if not any(getattr(h, "_forescale", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactFilter())
        handler._forescale = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in QUIET_LIBRARIES:  # their retry warnings are noise: forescale reports what failed, once
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.ERROR)


@app.command()
def demo(
    days: float = typer.Option(2.0, min=0.1, max=25, help="How many days of the trace to replay."),
    start_day: float = typer.Option(2.0, min=0, help="Start this many days into the trace."),
    pace: float = typer.Option(0.01, min=0, help="Real seconds per simulated tick (the accelerated clock)."),
    trace: Path | None = typer.Option(None, help="Replay this timestamp,requests CSV instead of the bundled one."),
    queue: str | None = typer.Option(
        None,
        "--queue",
        metavar="SLO",
        help="Show a queue-fed pool with this wait SLO (e.g. 3s): shortfalls wait in a FIFO queue whose backlog "
        "the tick reads (docs/queues.md).",
    ),
) -> None:
    """Replay a real traffic trace through the real tick against a simulated cluster (no Nomad needed)."""
    from autoscaler.backtest.demo import run_demo

    run_demo(console, trace_path=trace, days=days, start_day=start_day, pace_s=pace, latency_slo=queue)


@app.command()
def tick(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolsOpt,
    as_json: bool = JsonOpt,
    guard: bool = typer.Option(
        False,
        "--guard",
        help="Run only the fast guard: read the current rate and scale up at once if it exceeds capacity "
        "(never down). For a cron job every guard.interval between ticks.",
    ),
) -> None:
    """Run one cycle: read rates, predict, decide, scale Nomad, audit and notify. For cron/periodic jobs.

    Acts only while holding the leader locks (a local flock, and the Nomad Variables lock unless
    leader.enabled is false): when another forescale leads, it stands by and exits 0. Exit status 1 when a pool
    failed (e.g. Nomad unreachable) or the lock could not be tried; held and deferred pools are not failures.
    """
    from autoscaler.cli.common import select_pools
    from autoscaler.cli.output import print_report
    from autoscaler.config import load_config
    from autoscaler.core.errors import ForescaleError
    from autoscaler.daemon.leader import LeaderLoop
    from autoscaler.policy.cycle import run_tick
    from autoscaler.wiring import build_notifiers, build_runtime

    cfg = load_config(config)
    only = [p.name for p in select_pools(cfg, pool)]
    runtime = build_runtime(cfg, clock=clock_of(ctx), history_cache=True)
    # The table and the explanations below show each decision once: the console notifier adds only events. With
    # --json, stdout carries only the JSON document (Slack still posts).
    notifiers = build_notifiers(cfg, console=False)
    if not as_json:
        from autoscaler.notify.console import ConsoleNotifier

        notifiers.insert(0, ConsoleNotifier(console, events_only=True))
    deps = runtime.tick_deps(notifiers, gated=True)
    leadership = runtime.leadership
    leadership.step()
    status = leadership.status
    if status.role != "leader":
        if status.error:
            raise ForescaleError(
                f"{status.error}; nothing was scaled (the token needs variables write on {cfg.leader.lock_path}; "
                "set leader.enabled: false if this is the only forescale)"
            )
        why = f"another forescale leads ({status.holder})" if status.holder else "another forescale leads"
        _standby(why, leadership.describe, as_json)
        return
    loop = LeaderLoop(leadership)  # renews while the tick runs; releases the locks at the end
    loop.start()
    try:
        report = run_tick(deps, only=only, guard=guard)
    finally:
        loop.stop()
    title = "forescale guard" if guard else "forescale tick"
    print_report(console, report, f"{title} at {report.at:%Y-%m-%d %H:%M:%S} UTC", as_json)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


def _warn_bounds(cfg: Config, only: list[str]) -> None:
    """`plan`: a pool min/max that the job's scaling block in Nomad refuses, as warnings on stderr."""
    from autoscaler.jobspec.bounds import check_pools

    for problem in check_pools(cfg, only=only).problems:
        err_console.print(f"[yellow]warning[/]: {markup_safe(problem)}", highlight=False)


def _standby(why: str, locks: str, as_json: bool) -> None:
    """`tick` while another forescale leads: say so and change nothing (exit 0)."""
    import json

    if as_json:
        print(json.dumps({"standby": True, "reason": why, "locks": locks, "pools": []}, indent=2))
        return
    console.print(f"standby: {markup_safe(why)}; not the leader ({markup_safe(locks)}): nothing to do", highlight=False)


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
        "Asia/Kolkata' or 2026-12-01T03:30Z. A future time uses the forecast from today's data for the peak up "
        "to then. The current count still comes from Nomad now.",
    ),
) -> None:
    """Dry run of one cycle: what forescale would do now (or --at a time) and why. Changes nothing in Nomad."""
    from autoscaler.cli.common import select_pools
    from autoscaler.cli.output import print_report
    from autoscaler.config import load_config
    from autoscaler.core.clock import ManualClock
    from autoscaler.core.timeutil import parse_when
    from autoscaler.policy.cycle import run_tick
    from autoscaler.wiring import build_deps

    cfg = load_config(config)
    only = [p.name for p in select_pools(cfg, pool)]
    clock = clock_of(ctx)
    real_now = clock.now()
    if at is not None:
        try:
            clock = ManualClock(parse_when(at, real_now))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--at") from None
    deps = build_deps(cfg, clock=clock, notifiers=[])
    if at is not None and clock.now() > real_now:  # a future time: today's data; schedule and overrides as then
        deps.data_until = real_now
    report = run_tick(deps, dry_run=True, only=only)
    print_report(console, report, f"forescale plan at {report.at:%Y-%m-%d %H:%M:%S} UTC (dry run)", as_json)
    _warn_bounds(cfg, only)
    if any(o.status == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command()
def run(
    ctx: typer.Context,
    config: Path = ConfigOpt,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Every pool in shadow: decide, audit, post to Slack and export metrics as 'would scale', "
        "but never change Nomad (as mode: shadow on each pool).",
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", help="text or json (one JSON object per line) [daemon.log_format, else text]."
    ),
) -> None:
    """Run the daemon: a tick every interval, /metrics and /healthz on loopback, clean stop on SIGTERM.

    Pools with mode: shadow only report what they would do; pools with mode: off are left alone. A change
    in the override store ticks the pools it affects within seconds.
    """
    from autoscaler.config import load_config
    from autoscaler.wiring import build_daemon, build_notifiers

    if log_format not in (None, "text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--log-format")
    cfg = load_config(config)
    fmt = log_format or cfg.daemon.log_format
    debug = state(ctx).debug
    if fmt == "json":
        _json_logging(debug)
    logging.getLogger("forescale").setLevel(logging.DEBUG if debug else logging.INFO)
    notifiers = build_notifiers(cfg, console=fmt == "text", log_decisions=fmt == "json")
    build_daemon(cfg, clock=clock_of(ctx), dry_run=dry_run, notifiers=notifiers).run_forever()


def _json_logging(debug: bool) -> None:
    """Every log record as one JSON object per line on stdout (python-json-logger): time, level, logger, message
    and the record's fields (decisions carry pool, status, counts and reason codes)."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RedactFilter())
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


@config_app.command("check")
def config_check(
    config: Path = typer.Argument(Path("forescale.yaml"), help="Config file to validate."),
    as_json: bool = typer.Option(False, "--json", help="Print {ok, path, problems, pools} as JSON."),
    no_env: bool = typer.Option(
        False,
        "--no-env",
        help="Check the file only, not this environment (e.g. in CI, where Slack's secret env var is not set).",
    ),
) -> None:
    """Validate a config; print each problem with its key path and the fix; exit 2 if invalid.

    Also checks this environment: a configured notifier whose secret env var is unset is a problem (the daemon
    would run console-only), and so is a pool min/max outside its job's scaling { min max } in Nomad (when
    Nomad answers); --no-env skips both. Warnings (valid settings that probably do not do what was meant) are
    printed, with exit 0."""
    from autoscaler.config import (
        adapters_in_use,
        config_warnings,
        describe_adapters,
        environment_checks,
        extra_checks,
        load_config,
    )
    from autoscaler.jobspec.bounds import BoundsCheck, check_pools

    try:
        cfg = load_config(config)
        problems = extra_checks(cfg) + ([] if no_env else environment_checks(cfg))
        bounds = BoundsCheck([], "scaling bounds in Nomad not checked (--no-env)") if no_env else check_pools(cfg)
        problems += bounds.problems
        groups: tuple[list[str], str | None] = ([], None) if no_env else _group_warnings(cfg)
    except ConfigError as exc:
        if not as_json:
            raise
        typer.echo(redact(json.dumps({"ok": False, "path": exc.path, "problems": exc.problems, "pools": []}, indent=2)))
        raise typer.Exit(exc.exit_code) from None
    if problems:
        if as_json:
            doc = {"ok": False, "path": str(config), "problems": problems, "pools": []}
            typer.echo(redact(json.dumps(doc, indent=2)))
            raise typer.Exit(ConfigError.exit_code)
        raise ConfigError(str(config), problems)
    if as_json:
        pools = [
            {"name": p.name, "mode": p.mode, "job": p.nomad.job, "group": p.nomad.group, "min": p.min, "max": p.max}
            for p in cfg.pools
        ]
        doc = {
            "ok": True,
            "path": str(config),
            "problems": [],
            "pools": pools,
            "nomad_address": redact_url(cfg.nomad.address),
            "nomad_address_from": cfg.nomad.address_origin,
            "warnings": config_warnings(cfg) + groups[0],
            "nomad_checks": bounds.note,
            "machine_checks": groups[1],
            "adapters": adapters_in_use(cfg),
        }
        typer.echo(redact(json.dumps(doc, indent=2)))
        return
    for warning in config_warnings(cfg) + groups[0]:
        console.print(f"[yellow]warning[/]: {markup_safe(config)}: {markup_safe(warning)}", highlight=False)
    names = ", ".join(f"{p.name}" + ("" if p.mode == "active" else f" ({p.mode})") for p in cfg.pools)
    console.print(f"[green]ok[/]: {markup_safe(config)} is valid ({len(cfg.pools)} pool(s): {names})", highlight=False)
    console.print(
        f"Nomad: {markup_safe(redact_url(cfg.nomad.address))} (from {markup_safe(cfg.nomad.address_origin)})"
        + (f"; {markup_safe(bounds.note)}" if bounds.note else ""),
        highlight=False,
    )
    console.print(f"uses: {markup_safe(describe_adapters(cfg))}", highlight=False)
    if groups[1]:
        console.print(f"machines: {markup_safe(groups[1])}", highlight=False)


def _group_warnings(cfg: Config) -> tuple[list[str], str | None]:
    """Machine groups as they are now (pools with nodes.provider): foreign or shared machines, provider warnings."""
    if not any(p.nodes.enabled and p.mode != "off" for p in cfg.pools):
        return [], None
    from autoscaler.jobspec.bounds import probe_client
    from autoscaler.nodes.online import check_groups

    return check_groups(cfg, probe_client(cfg))


def _register_subcommands() -> None:
    """Command groups live in their own modules; each adds itself to ``app`` (their imports are light)."""
    from autoscaler.cli import backtest, capacity, jobspec, notify, overrides, schedule

    for module in (backtest, capacity, jobspec, notify, schedule, overrides):
        module.register(app)


_register_subcommands()


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """One BLAS thread per fit, unless the environment says otherwise: a tick fits many small models (at most
    6,000 × 12) on concurrent threads, where BLAS's own threads only contend (3× the CPU of one thread per fit,
    benchmarks/scale.py). Read by each BLAS library when it loads, so set before numpy and scipy are imported."""
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")


def main(cli_state: CliState | None = None) -> None:
    """Console-script entry point: turns ForescaleError into one line and its exit code.

    ``cli_state`` lets tests run the real entry point on a ManualClock.
    """
    cli_state = cli_state or CliState()
    one_blas_thread()
    try:
        app(obj=cli_state)
    except ConfigError as exc:
        if cli_state.debug:
            raise
        err_console.print(f"[red]error[/]: {exc.heading} {markup_safe(exc.path)}:", highlight=False)
        for problem in exc.problems:
            err_console.print(f"  - {markup_safe(problem)}", highlight=False)
        sys.exit(exc.exit_code)
    except ForescaleError as exc:
        if cli_state.debug:
            raise
        err_console.print(f"[red]error[/]: {markup_safe(exc)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
