"""A pool's min/max against its Nomad task group's ``scaling { min max }``: Nomad refuses any count outside it
(``ScalingBoundsError`` at the tick), so `config check`, `plan` and `override set` say so first.

Two sources: the jobspec forescale renders for the pool (``jobspec:``; its scaling block *is* the pool's
min/max, so it always agrees) and the job as Nomad has it now, when Nomad is reachable. A job registered by
hand, or rendered from an older config, may cap the pool lower than the config says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from autoscaler.core.errors import ForescaleError, NomadNotFound, OverrideError
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.nomad.client import NomadClient

PROBE_TIMEOUT = timedelta(seconds=3)  # `config check` asks Nomad once per job, without retries


@dataclass(frozen=True)
class GroupBounds:
    """The counts Nomad accepts for a task group (None: no bound on that side) and where that was read."""

    low: int | None
    high: int | None
    source: str

    def text(self) -> str:
        return f"{'…' if self.low is None else self.low}..{'…' if self.high is None else self.high}"


def group_bounds(job: dict[str, Any], pool: PoolConfig, source: str) -> GroupBounds | None:
    """The ``Scaling`` block of the pool's group in a job as Nomad returns it (None: the group has none)."""
    for tg in job.get("TaskGroups") or []:
        if isinstance(tg, dict) and tg.get("Name") == pool.nomad.group:
            scaling = tg.get("Scaling")
            if not isinstance(scaling, dict):
                return None
            low, high = scaling.get("Min"), scaling.get("Max")
            return GroupBounds(
                low if isinstance(low, int) and not isinstance(low, bool) else None,
                high if isinstance(high, int) and not isinstance(high, bool) else None,
                source,
            )
    return None


def probe_client(config: Config) -> NomadClient:
    """A Nomad client for a quick look: no retries, a short timeout."""
    timeout = min(config.nomad.timeout, PROBE_TIMEOUT)
    return NomadClient(config.nomad.model_copy(update={"retries": 0, "timeout": timeout}))


def nomad_bounds(client: NomadClient, pool: PoolConfig) -> GroupBounds | None:
    """The group's bounds in Nomad now; None when the job or its scaling block does not exist.
    Raises ForescaleError when Nomad cannot be asked (unreachable, refused)."""
    try:
        job = client.read_job(pool.nomad.job, retry=False)
    except NomadNotFound:
        return None
    source = f"job {pool.nomad.job} group {pool.nomad.group} in Nomad"
    return group_bounds(job, pool, source)


def pool_problems(pool: PoolConfig, bounds: GroupBounds, key: str) -> list[str]:
    """One line per side of the pool's min/max that Nomad would refuse."""
    out = []
    fix = "or change the job's scaling block (and `forescale deploy` it if forescale renders it)"
    if bounds.high is not None and pool.max > bounds.high:
        out.append(
            f"{key}.max: {pool.max} is above the scaling max {bounds.high} of {bounds.source} "
            f"(scaling {{ min max }} = {bounds.text()}): Nomad refuses counts above it; set max to {bounds.high} {fix}"
        )
    if bounds.low is not None and pool.min < bounds.low:
        out.append(
            f"{key}.min: {pool.min} is below the scaling min {bounds.low} of {bounds.source} "
            f"(scaling {{ min max }} = {bounds.text()}): Nomad refuses counts below it; set min to {bounds.low} {fix}"
        )
    return out


def value_problem(option: str, value: int, bounds: GroupBounds) -> str | None:
    """Why an override value cannot be applied by Nomad (``--pin 40`` on a group capped at 30), or None."""
    if bounds.high is not None and value > bounds.high and option in ("--pin", "--min"):
        return (
            f"{option} {value} is above the scaling max {bounds.high} of {bounds.source} "
            f"(scaling {{ min max }} = {bounds.text()}): Nomad would refuse it at the tick; use at most {bounds.high} "
            "or raise the job's scaling max first"
        )
    if bounds.low is not None and value < bounds.low and option in ("--pin", "--max"):
        return (
            f"{option} {value} is below the scaling min {bounds.low} of {bounds.source} "
            f"(scaling {{ min max }} = {bounds.text()}): Nomad would refuse it at the tick; use at least {bounds.low} "
            "or lower the job's scaling min first"
        )
    return None


@dataclass
class BoundsCheck:
    """What `config check` and `plan` report: problems (the config asks for counts Nomad refuses) and a note
    on what could not be checked."""

    problems: list[str]
    note: str | None = None


def check_pools(config: Config, client: NomadClient | None = None, *, only: list[str] | None = None) -> BoundsCheck:
    """Every pool that acts (not ``mode: off``) against its job in Nomad; stops asking at the first failure to
    reach Nomad (one note instead of one error per pool)."""
    client = client or probe_client(config)
    problems: list[str] = []
    checked = 0
    for i, pool in enumerate(config.pools):
        if pool.mode == "off" or (only is not None and pool.name not in only):
            continue
        try:
            bounds = nomad_bounds(client, pool)
        except ForescaleError as exc:
            return BoundsCheck(problems, f"scaling bounds not checked against Nomad: {exc}")
        checked += 1
        if bounds is not None:
            problems += pool_problems(pool, bounds, f"pools[{i}] ({pool.name})")
    note = f"scaling bounds checked against {checked} job group(s) in Nomad" if checked else None
    return BoundsCheck(problems, note)


def check_override(config: Config, pool: PoolConfig, values: Mapping[Any, int]) -> list[str]:
    """`override set`: raise OverrideError for a pin/floor/ceiling the job's scaling block in Nomad refuses;
    notes (e.g. Nomad not reachable, so not checked) otherwise."""
    try:
        bounds = nomad_bounds(probe_client(config), pool)
    except ForescaleError as exc:
        return [f"the job's scaling bounds were not checked: {exc}"]
    for kind, value in values.items():
        problem = value_problem("--" + kind, value, bounds) if bounds is not None else None
        if problem:
            raise OverrideError(problem)
    return []
