"""What every command shares: the consoles, the common options, the clock (through the Typer context)
and pool selection. Light on purpose: `forescale --help` imports this and nothing heavy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoscaler.core.clock import SystemClock
from autoscaler.core.ports import Clock
from autoscaler.notify.console import terminal_console

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config, PoolConfig

console = terminal_console()  # wraps on a terminal, never into a pipe or a file
err_console = terminal_console(stderr=True, soft_wrap=True)  # never hard-wrap error lines

ConfigOpt = typer.Option(
    Path("forescale.yaml"), "--config", "-c", help="forescale.yaml to use.", envvar="FORESCALE_CONFIG"
)
PoolsOpt = typer.Option(None, "--pool", "-p", help="Only this pool (repeatable).")
PoolOpt = typer.Option(None, "--pool", "-p", help="Only this pool.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
TzOpt = typer.Option("UTC", "--tz", help="Timezone of times typed without one (IANA name, e.g. Asia/Kolkata).")


@dataclass
class CliState:
    """Carried in the Typer context (``ctx.obj``): tests hand in a ManualClock instead of the system clock."""

    clock: Clock = field(default_factory=SystemClock)
    debug: bool = False


def state(ctx: typer.Context) -> CliState:
    """The CliState of this invocation (created by the root callback)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = ctx.find_root().obj = CliState()
    return obj


def finite(low: float, high: float) -> Callable[[float | None], float | None]:
    """Typer callback for a float option: ``inf``, ``nan`` and values outside ``[low, high]`` are one-line errors
    (Click's own range check lets ``nan`` through and the models' errors are several lines)."""

    def check(value: float | None) -> float | None:
        import math

        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise typer.BadParameter(f"{value:g} is not a number from {low:g} to {high:g}")
        return value

    return check


def clock_of(ctx: typer.Context) -> Clock:
    return state(ctx).clock


def select_pools(config: Config, names: str | list[str] | None) -> list[PoolConfig]:
    """The pools named by ``--pool`` (all when none); an unknown name is an UnknownPool error (exit 2)."""
    if names is None or names == []:
        return list(config.pools)
    wanted = [names] if isinstance(names, str) else names
    return [config.pool(name) for name in wanted]
