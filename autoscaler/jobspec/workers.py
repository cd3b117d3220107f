"""The pools' worker jobs: validate every jobspec (kill_timeout budget and cap, GPU memory, one group per pool),
render each Nomad job (HCL) with its groups' compose files, and write them for inspection."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.resources import bundled
from autoscaler.core.settings.base import NAME_PATTERN
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.core.settings.jobspec import IMAGE_RE, JobspecSettings
from autoscaler.core.text import safe
from autoscaler.jobspec.client import (
    NOMAD_DEFAULT_MAX_KILL_TIMEOUT,
    Validation,
    client_problems,
    max_kill_timeout,
)
from autoscaler.jobspec.client import (
    jobspec_key as _key,
)
from autoscaler.jobspec.escape import environment

EMBEDDED_ENTRYPOINT = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"  # one copy per allocation, both tasks
ENTRYPOINT_CPU_MHZ = 200  # the entrypoint and the compose CLI
ENTRYPOINT_MEMORY_MIB = 256


def _seconds(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds())


def validate_pool(config: Config, index: int, pool: PoolConfig) -> Validation:
    """Checks beyond the schema: kill_timeout budget and cap, GPU memory, lead time vs image pull."""
    out = Validation()
    js = pool.jobspec
    if js is None:
        return out
    # Defence in depth: these patterns are also in the schema, but names are what keeps HCL injection out.
    for key, value in (("name", pool.name), ("nomad.job", pool.nomad.job), ("nomad.group", pool.nomad.group)):
        if not re.match(NAME_PATTERN, value):
            out.problems.append(f"pools[{index}].{key}: {value!r} must match [a-z0-9-]")
    if not re.match(IMAGE_RE, js.image):
        out.problems.append(f"{_key(index, pool, 'image')}: {js.image!r} is not a plain image reference")

    need = js.minimum_kill_timeout()
    kill = js.effective_kill_timeout()
    if kill < need:
        out.problems.append(
            f"{_key(index, pool, 'kill_timeout')}: {format_duration(kill)} is below drain_timeout + stop_timeout + "
            f"kill_margin = {format_duration(need)}; raise kill_timeout (or remove it to use {format_duration(need)})"
        )
    try:
        cap, where = max_kill_timeout(js, config)
    except ConfigError as exc:
        out.problems.append(f"{_key(index, pool, 'nomad_client_config')}: {exc}")
        cap, where = NOMAD_DEFAULT_MAX_KILL_TIMEOUT, "error"
    if kill > cap and where != "error":
        out.problems.append(
            f"{_key(index, pool, 'kill_timeout')}: {format_duration(kill)} exceeds the clients' max_kill_timeout "
            f"{format_duration(cap)} ({where}); Nomad would SIGKILL mid-drain — raise client.max_kill_timeout in "
            "nomad.hcl (and jobspec.max_kill_timeout) or shorten drain_timeout/stop_timeout"
        )
    if js.stop_timeout.total_seconds() < 1:
        out.problems.append(f"{_key(index, pool, 'stop_timeout')}: must be at least 1s")

    if js.worker_gpu_memory is not None:
        total = js.workers_per_gpu * js.worker_gpu_memory
        if js.gpu_memory is None:
            out.problems.append(
                f"{_key(index, pool, 'gpu_memory')}: required with worker_gpu_memory; set it to the pool's smallest "
                f"GPU memory (workers need {js.workers_per_gpu} × {js.worker_gpu_memory} MiB = {total} MiB)"
            )
        elif total > js.gpu_memory:
            out.problems.append(
                f"{_key(index, pool, 'workers_per_gpu')}: {js.workers_per_gpu} workers × {js.worker_gpu_memory} MiB "
                f"= {total} MiB exceed gpu_memory {js.gpu_memory} MiB; lower workers_per_gpu to "
                f"{js.gpu_memory // js.worker_gpu_memory} or require bigger GPUs"
            )
    clients = client_problems(config, index, pool, js)
    out.problems += clients.problems
    out.warnings += clients.warnings
    if js.worker_reservation() is None:
        out.warnings.append(
            f"{_key(index, pool, 'worker_memory')}: set worker_cpus and worker_memory: the job then reserves "
            f"{js.workers_per_gpu} × each in Nomad (the containers run outside the task's cgroup, so without it "
            "Nomad sees the GPU node as nearly empty and may place other jobs on it)"
        )
    if js.image_pull_time is not None and js.pull_policy != "never" and js.image_pull_time >= pool.lead_time:
        out.warnings.append(
            f"{_key(index, pool, 'image_pull_time')}: pulling the image ({format_duration(js.image_pull_time)}) "
            f"takes longer than the pool's lead_time ({format_duration(pool.lead_time)}): new nodes will be late; "
            "raise lead_time or bake the image into the node image (pull_policy: never)"
        )
    return out


def _job_level_problems(pools: list[tuple[int, PoolConfig]]) -> list[str]:
    """Pools of one job share its job-level fields (node_pool, datacenters)."""
    problems = []
    first_index, first = pools[0]
    assert first.jobspec is not None
    for index, pool in pools[1:]:
        assert pool.jobspec is not None
        for key in ("node_pool", "datacenters"):
            if getattr(pool.jobspec, key) != getattr(first.jobspec, key):
                problems.append(
                    f"{_key(index, pool, key)}: pools {first.name} and {pool.name} share job {pool.nomad.job} "
                    f"but differ in {key}; make them equal or use different nomad.job"
                )
        if pool.nomad.group == first.nomad.group:
            problems.append(
                f"pools[{index}] ({pool.name}).nomad.group: group {pool.nomad.group} of job "
                f"{pool.nomad.job} is used by pool {first.name} too; one group per pool"
            )
    del first_index
    return problems


def check_config(config: Config) -> Validation:
    """Every render-time check over the whole config (used by `config check`, render and deploy)."""
    out = Validation()
    for index, pool in enumerate(config.pools):
        one = validate_pool(config, index, pool)
        out.problems += one.problems
        out.warnings += one.warnings
    for pools in _jobs(config).values():
        out.problems += _job_level_problems(pools)
    return out


def has_jobspecs(config: Config) -> bool:
    """Whether any pool asks `forescale render` for its job (a jobspec: section)."""
    return any(pool.jobspec is not None for pool in config.pools)


def _jobs(config: Config, only: list[str] | None = None) -> dict[str, list[tuple[int, PoolConfig]]]:
    """Pools with a jobspec, grouped by Nomad job (in config order)."""
    wanted_jobs = {config.pool(name).nomad.job for name in only} if only else None
    jobs: dict[str, list[tuple[int, PoolConfig]]] = {}
    for index, pool in enumerate(config.pools):
        if pool.jobspec is None or (wanted_jobs is not None and pool.nomad.job not in wanted_jobs):
            continue
        jobs.setdefault(pool.nomad.job, []).append((index, pool))
    return jobs


# ---------------------------------------------------------------- rendering


@dataclass
class RenderedJob:
    """One Nomad job (HCL) and the compose file of each of its groups (for inspection)."""

    job_id: str
    hcl: str
    compose: dict[str, str]  # group name → compose YAML
    pools: list[str]


def render_compose(config: Config, pool: PoolConfig) -> str:
    """The compose file of one pool's allocation."""
    js = _require_jobspec(config, pool)
    template = environment().get_template("docker-compose.yml.j2")
    return template.render(
        source=source_name(config),
        pool=pool,
        js=js,
        stop_grace_s=max(1, _seconds(js.stop_timeout)),
        drain_s=_seconds(js.drain_timeout),
    )


def render_jobs(config: Config, only: list[str] | None = None) -> list[RenderedJob]:
    """Validate, then render every job (or the jobs of the pools in ``only``); raise ConfigError on problems."""
    source = str(config.source or "config")
    if only:
        for name in only:
            _require_jobspec(config, config.pool(name))
    checks = check_config(config)
    if checks.problems:
        raise ConfigError(source, checks.problems)
    jobs = _jobs(config, only)
    if not jobs:
        raise ConfigError(source, ["no pool has a jobspec: section; add one (see docs/jobspecs.md)"])
    env = environment()
    template = env.get_template("ml-worker.nomad.hcl.j2")
    out = []
    for job_id, pools in jobs.items():
        groups = []
        compose = {}
        for _, pool in pools:
            group = _group_context(config, pool)
            compose[pool.nomad.group] = group["compose"]
            groups.append(group)
        first = pools[0][1].jobspec
        assert first is not None
        job = {
            "id": job_id,
            "namespace": config.nomad.namespace,
            "node_pool": first.node_pool,
            "datacenters": first.datacenters,
            "groups": groups,
        }
        hcl = template.render(source=source_name(config), job=job)
        out.append(RenderedJob(job_id=job_id, hcl=hcl, compose=compose, pools=[p.name for _, p in pools]))
    return out


def _group_context(config: Config, pool: PoolConfig) -> dict[str, Any]:
    js = _require_jobspec(config, pool)
    cap, _ = max_kill_timeout(js, config)
    kill = js.effective_kill_timeout()
    embed = js.entrypoint == "embed"
    healthy_deadline = max(timedelta(minutes=5), js.start_timeout + timedelta(minutes=1))
    return {
        "pool": pool,
        "js": js,
        "compose": render_compose(config, pool),
        "embed": embed,
        "entrypoint_text": bundled("scripts", "forescale-compose-entrypoint").read_text(encoding="utf-8")
        if embed
        else "",
        "command": EMBEDDED_ENTRYPOINT if embed else js.entrypoint,
        "service_name": js.health.service_name or pool.nomad.group,
        "drain_s": _seconds(js.drain_timeout),
        "stop_s": max(1, _seconds(js.stop_timeout)),
        "start_s": _seconds(js.start_timeout),
        "kill_timeout": format_duration(timedelta(seconds=_seconds(kill))),
        "max_kill_s": _seconds(cap),
        "shutdown_delay": format_duration(js.shutdown_delay),
        "check_interval": format_duration(js.health.interval),
        "check_timeout": format_duration(js.health.timeout),
        "healthy_deadline": format_duration(healthy_deadline),
        "progress_deadline": format_duration(healthy_deadline + timedelta(minutes=5)),
        **_task_resources(js),
    }


def _task_resources(js: JobspecSettings) -> dict[str, Any]:
    """The task's cpu/memory: the entrypoint's share plus, when the workers' limits are set, all N workers'."""
    reservation = js.worker_reservation()
    cpu, memory = reservation or (0, 0)
    return {
        "reserve_workers": reservation is not None,
        "task_cpu": ENTRYPOINT_CPU_MHZ + cpu,
        "task_memory": ENTRYPOINT_MEMORY_MIB + memory,
    }


def _require_jobspec(config: Config, pool: PoolConfig) -> JobspecSettings:
    if pool.jobspec is None:
        raise ConfigError(
            str(config.source or "config"),
            [f"pools ({pool.name}).jobspec: missing; add a jobspec: section with at least image: (docs/jobspecs.md)"],
        )
    return pool.jobspec


def source_name(config: Config) -> str:
    """The config's file name for a rendered comment: one line, whatever the name holds."""
    return safe(config.source.name) if config.source else "forescale.yaml"


def write_rendered(jobs: list[RenderedJob], out_dir: Path) -> list[Path]:
    """``<job>.nomad.hcl`` plus ``<job>.<group>.docker-compose.yml`` for inspection; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for job in jobs:
        path = out_dir / f"{job.job_id}.nomad.hcl"
        path.write_text(job.hcl, encoding="utf-8")
        written.append(path)
        for group, text in job.compose.items():
            cpath = out_dir / f"{job.job_id}.{group}.docker-compose.yml"
            cpath.write_text(text, encoding="utf-8")
            written.append(cpath)
    return written
