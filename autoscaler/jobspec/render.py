"""Render Nomad jobs (HCL) and their compose files from forescale.yaml, validating before writing.

Jinja2 with Nomad Pack's delimiters (``[[ ]]``, ``[% %]``, ``[# #]``) so Nomad's own ``{{ }}`` template
syntax passes through. Names reach the templates only after the ``[a-z0-9-]`` check; every other string is
escaped for its layer (HCL string, HCL heredoc + consul-template, compose YAML + compose interpolation).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import jinja2
import yaml

from autoscaler import __version__
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.resources import _REPO, bundled
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.core.settings.jobspec import IMAGE_RE, NAME_RE, JobspecSettings
from autoscaler.core.text import safe

HEREDOC_MARKER = "FORESCALE_EOF"
NOMAD_DEFAULT_MAX_KILL_TIMEOUT = timedelta(seconds=30)
EMBEDDED_ENTRYPOINT = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"  # one copy per allocation, both tasks


# ---------------------------------------------------------------- escaping (one function per layer)


def hcl_string(value: object) -> str:
    """A quoted HCL string literal: JSON escapes plus HCL's ``$${`` / ``%%{`` so nothing is interpolated."""
    text = json.dumps(str(value), ensure_ascii=False)
    return text.replace("${", "$${").replace("%{", "%%{")


def hcl_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(hcl_string(v) for v in values) + "]"


def heredoc_body(text: str) -> str:
    """Text for a ``<<FORESCALE_EOF`` template ``data``: escaped for consul-template, then for HCL."""
    text = text.rstrip("\n")
    if any(line.strip() == HEREDOC_MARKER for line in text.splitlines()):
        raise ConfigError("template", [f"a line may not consist of {HEREDOC_MARKER} (it ends the heredoc)"])
    text = text.replace("{{", '{{"{{"}}')  # consul-template: a literal "{{"
    return text.replace("${", "$${").replace("%{", "%%{")  # HCL heredoc: literal "${" and "%{"


def yaml_string(value: object) -> str:
    """A compose YAML scalar: ``$`` doubled (no compose interpolation), then JSON quoting (valid YAML)."""
    return json.dumps(str(value).replace("$", "$$"), ensure_ascii=True)


def yaml_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(yaml_string(v) for v in values) + "]"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(bundled("jobspecs", "ml-worker.nomad.hcl.j2").parent)),
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        hcl=hcl_string, hcl_list=hcl_list, heredoc=heredoc_body, yaml_str=yaml_string, yaml_list=yaml_list
    )
    return env


# ---------------------------------------------------------------- validation


@dataclass
class Validation:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _seconds(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds())


def _key(index: int, pool: PoolConfig, key: str) -> str:
    return f"pools[{index}] ({pool.name}).jobspec.{key}"


# What nomad-device-nvidia reports as ``${device.attr.memory}`` (NVML total bytes ÷ 2^20, truncated) for GPU
# models forescale knows: (lowest, highest) MiB seen, the lowest with ECC on. A 16 GB T4 reports 15079-15110 MiB
# (nomad-device-nvidia nvml/driver_linux.go determineMemoryInfo; deviceQuery and nvidia-smi on T4s).
GPU_REPORTED_MIB = {"t4": (15079, 15110)}
NOMINAL_GIB = (8, 12, 16, 20, 24, 32, 40, 48, 80, 94, 141)
ENTRYPOINT_CPU_MHZ = 200  # the entrypoint and the compose CLI
ENTRYPOINT_MEMORY_MIB = 256


@dataclass(frozen=True)
class ClientConfig:
    """What forescale reads from the GPU clients' Nomad agent config (nomad.hcl)."""

    path: Path
    datacenter: str  # Nomad's default is "dc1"
    datacenter_set: bool
    node_pool: str  # default "default"
    node_class: str  # default ""
    meta: dict[str, str]
    max_kill_timeout: timedelta


def client_config_path(js: JobspecSettings, config: Config) -> Path | None:
    """jobspec.nomad_client_config (relative to the config file), else the bundled nomad.hcl, else none."""
    path = js.nomad_client_config
    if path is not None and not path.is_absolute() and config.source is not None:
        path = config.source.parent / path
    if path is None and (_REPO / "nomad.hcl").exists():
        path = _REPO / "nomad.hcl"
    return path


def max_kill_timeout(js: JobspecSettings, config: Config) -> tuple[timedelta, str]:
    """The clients' max_kill_timeout and where it came from: setting > nomad.hcl given > repo nomad.hcl > 30s."""
    if js.max_kill_timeout is not None:
        return js.max_kill_timeout, "jobspec.max_kill_timeout"
    path = client_config_path(js, config)
    if path is None:
        return NOMAD_DEFAULT_MAX_KILL_TIMEOUT, "Nomad's default (no nomad.hcl found)"
    return read_client_config(path).max_kill_timeout, str(path)


def read_max_kill_timeout(path: Path) -> timedelta:
    """``client { max_kill_timeout = "…" }`` from a Nomad agent config, parsed with python-hcl2."""
    return read_client_config(path).max_kill_timeout


def read_client_config(path: Path) -> ClientConfig:
    """The parts of a Nomad client agent config a job must agree with (python-hcl2; Nomad's defaults)."""
    import hcl2

    try:
        data = hcl2.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["Nomad client config not found; fix jobspec.nomad_client_config"]) from None
    except Exception as exc:  # hcl2 raises lark errors of many kinds
        raise ConfigError(str(path), [f"not valid HCL: {str(exc).splitlines()[0]}"]) from None
    client: dict[str, Any] = {}
    for block in data.get("client", []):
        client.update(block)
    kill = NOMAD_DEFAULT_MAX_KILL_TIMEOUT
    if client.get("max_kill_timeout") is not None:
        try:
            kill = parse_duration(_unquote(client["max_kill_timeout"]))
        except ValueError as exc:
            raise ConfigError(str(path), [f"client.max_kill_timeout: {exc}"]) from None
    meta: dict[str, str] = {}
    for block in client.get("meta") or []:
        meta.update({str(k): _unquote(v) for k, v in (block or {}).items()})
    datacenter = data.get("datacenter")
    return ClientConfig(
        path=path,
        datacenter=_unquote(datacenter) if datacenter is not None else "dc1",
        datacenter_set=datacenter is not None,
        node_pool=_unquote(client.get("node_pool") or "default"),
        node_class=_unquote(client.get("node_class") or ""),
        meta=meta,
        max_kill_timeout=kill,
    )


def _unquote(value: object) -> str:
    return str(value).strip('"')


def _gpu_key(model: str) -> str:
    """'Tesla T4', 'tesla-t4', 'nvidia-t4' → 't4'."""
    key = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    for prefix in ("nvidia-", "tesla-"):
        key = key.removeprefix(prefix)
    return key


def _datacenter_matches(node_dc: str, patterns: Iterable[str]) -> bool:
    """Job datacenters are globs (Nomad 1.5+): '*' = any."""
    return any(fnmatch.fnmatchcase(node_dc, p) for p in patterns)


def _client_problems(config: Config, index: int, pool: PoolConfig, js: JobspecSettings) -> Validation:
    """The job must be placeable on the clients of its nomad.hcl: datacenter, node pool, node class, GPU memory."""
    out = Validation()
    path = client_config_path(js, config)
    client = None
    if path is not None:
        try:
            client = read_client_config(path)
        except ConfigError:
            client = None  # reported by the kill_timeout check
    if client is not None:
        if not _datacenter_matches(client.datacenter, js.datacenters):
            default = " (Nomad's default: it sets no datacenter)" if not client.datacenter_set else ""
            out.problems.append(
                f"{_key(index, pool, 'datacenters')}: the clients of {client.path} are in datacenter "
                f"'{client.datacenter}'{default} but the job runs only in {', '.join(js.datacenters)}: Nomad would "
                "place nothing; set `datacenter` in that nomad.hcl to one of them (e.g. the node's availability "
                "zone) or list its datacenter in jobspec.datacenters"
            )
        if client.node_pool != js.node_pool:
            out.problems.append(
                f"{_key(index, pool, 'node_pool')}: '{js.node_pool}' but the clients of {client.path} join node pool "
                f"'{client.node_pool}': Nomad would place nothing; make client.node_pool and jobspec.node_pool agree"
            )
        if js.node_class is not None and client.node_class != js.node_class:
            out.problems.append(
                f"{_key(index, pool, 'node_class')}: '{js.node_class}' but the clients of {client.path} have "
                f"node_class '{client.node_class}': the ${{node.class}} constraint would match no node"
            )
    if js.gpu_memory is None:
        return out
    model = js.gpu_model or (client.meta.get("gpu_model") if client is not None else None)
    reported = GPU_REPORTED_MIB.get(_gpu_key(model)) if model else None
    where = "jobspec.gpu_model" if js.gpu_model else f"meta.gpu_model of {client.path if client else '?'}"
    if reported is not None:
        low, high = reported
        if js.gpu_memory > low:
            out.problems.append(
                f"{_key(index, pool, 'gpu_memory')}: {js.gpu_memory} MiB, but a {model} ({where}) reports only "
                f"{low}-{high} MiB as ${{device.attr.memory}} (NVML total ÷ 2^20, less with ECC on): the device "
                f"constraint would match none; require at most {low}MiB (check with `nomad node status -verbose "
                "<node>`)"
            )
    elif js.gpu_memory % 1024 == 0 and js.gpu_memory // 1024 in NOMINAL_GIB:
        out.warnings.append(
            f"{_key(index, pool, 'gpu_memory')}: {js.gpu_memory // 1024}GiB is a nominal GPU size, but Nomad sees "
            "less (NVML total ÷ 2^20: a 16 GB T4 reports about 15079-15110 MiB): use the value `nomad node status "
            "-verbose <node>` shows for the device's memory, or set jobspec.gpu_model so render can check it"
        )
    return out


def validate_pool(config: Config, index: int, pool: PoolConfig) -> Validation:
    """Checks beyond the schema: kill_timeout budget and cap, GPU memory, lead time vs image pull."""
    out = Validation()
    js = pool.jobspec
    if js is None:
        return out
    # Defence in depth: these patterns are also in the schema, but names are what keeps HCL injection out.
    for key, value in (("name", pool.name), ("nomad.job", pool.nomad.job), ("nomad.group", pool.nomad.group)):
        if not re.match(NAME_RE, value):
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
    clients = _client_problems(config, index, pool, js)
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
    template = _environment().get_template("docker-compose.yml.j2")
    return template.render(
        source=_source_name(config),
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
    env = _environment()
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
        hcl = template.render(source=_source_name(config), job=job)
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


def _source_name(config: Config) -> str:
    """The config's file name for a rendered comment: one line, whatever the name holds."""
    return safe(config.source.name) if config.source else "forescale.yaml"


# ---------------------------------------------------------------- forescale's own job

SELF_IMAGE = f"forescale:{__version__}"
"""The tag `make image` builds; --self-image names the copy in the clients' registry."""

# Where the docker driver mounts the task's directories inside the container.
TASK_LOCAL = "/local"
ALLOC_DATA = "/alloc/data"  # kept across updates and migrations by the sticky, migrating ephemeral disk
TASK_SECRETS = "/secrets"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


@dataclass
class SelfJob:
    """How forescale itself runs on Nomad (options of `forescale render --self`)."""

    mode: Literal["service", "periodic"] = "service"
    image: str = SELF_IMAGE
    job_id: str = "forescale"
    node_pool: str = "default"
    datacenters: list[str] = field(default_factory=lambda: ["*"])
    cron: str = "*/20 * * * *"
    metrics_port: int = 9464
    secret_keys: list[str] = field(default_factory=list)
    count: int | None = None  # None: 2 daemons for a service with leader election (one scales), else 1
    override_store: Literal["nomad", "file"] = "nomad"
    prometheus_url: str | None = None  # the address inside the allocation, when it differs from the config's
    nomad_address: str | None = None


@dataclass
class SelfFile:
    """One file the job's templates write: ``destination`` relative to the task dir, ``data`` verbatim."""

    destination: str
    data: str
    perms: str = "0644"


_CRON_RE = re.compile(r"^[0-9*/,\- ]{9,64}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is this machine (127/8, ::1, 0.0.0.0, localhost): never Prometheus or Nomad
    as seen from inside an allocation's container."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def leader_election_on(config: Config) -> bool:
    """Whether the config makes several daemons safe: only the holder of the Nomad Variables lock scales, the
    others stand by (``leader.enabled``, the default; docs/operations.md)."""
    return config.leader.enabled


def render_self(config: Config, self_job: SelfJob) -> str:
    """The Nomad job running forescale itself, ready to deploy: the config and schedule file embedded
    through templates, secrets from the Nomad Variable ``nomad/jobs/<job>``, overrides in Nomad Variables,
    state on the sticky disk. Raises ConfigError naming every problem and its fix."""
    source = str(config.source or "config")
    self_job = resolve_count(config, self_job)
    problems = _self_job_problems(config, self_job)
    keys = self_job.secret_keys or secret_env_names(config)
    for key in keys:
        if not _ENV_NAME_RE.match(key):
            problems.append(f"env var name {key!r} (a *_env setting): use letters, digits and '_'")
    config_text, files, tls_secrets = "", list[SelfFile](), list[dict[str, str]]()
    if not problems:
        try:
            config_text, files, tls_secrets = _config_for_nomad(config, self_job)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(source, problems, heading="cannot render forescale's own job with")
    ctx_self = {**self_job.__dict__, "secret_keys": keys}
    return (
        _environment()
        .get_template("forescale.nomad.hcl.j2")
        .render(
            source=_source_name(config),
            fs=ctx_self,
            namespace=config.nomad.namespace,
            config_text=config_text,
            files=files,
            tls_secrets=tls_secrets,
            leader_election=leader_election_on(config),
            variable_prefix=config.overrides.nomad_variable_prefix,
            leader_lock_path=config.leader.lock_path,
        )
    )


def resolve_count(config: Config, self_job: SelfJob) -> SelfJob:
    """The default count: two daemons (leader + standby) for a service when leader election is on and the
    overrides are shared (Nomad Variables), else one."""
    if self_job.count is not None:
        return self_job
    two = self_job.mode == "service" and leader_election_on(config) and self_job.override_store == "nomad"
    return replace(self_job, count=2 if two else 1)


def _self_job_problems(config: Config, self_job: SelfJob) -> list[str]:
    assert self_job.count is not None
    problems = []
    if not re.match(NAME_RE, self_job.job_id):
        problems.append(f"--self-job {self_job.job_id!r}: use only lowercase letters, digits and '-'")
    if not re.match(IMAGE_RE, self_job.image):
        problems.append(f"--self-image {self_job.image!r}: not a plain image reference")
    if not re.match(NAME_RE, self_job.node_pool):
        problems.append(f"--self-node-pool {self_job.node_pool!r}: use only lowercase letters, digits and '-'")
    if self_job.mode == "periodic" and not _CRON_RE.match(self_job.cron):
        problems.append(f"--cron {self_job.cron!r}: five cron fields of digits, '*', '/', ',' and '-'")
    if self_job.count < 1:
        problems.append(f"--self-count {self_job.count}: at least 1")
    elif self_job.count > 1 and self_job.mode == "periodic":
        problems.append(f"--self-count {self_job.count}: a periodic job runs one `forescale tick` at a time; use 1")
    elif self_job.count > 1 and not leader_election_on(config):
        problems.append(
            f"--self-count {self_job.count}: several daemons would each scale the pools, and leader.enabled is "
            "false: set it to true (the default: one leader scales, the others stand by) or run one "
            "(--self-count 1: Nomad restarts or reschedules it)"
        )
    if self_job.count > 1 and self_job.override_store == "file":
        problems.append("--self-override-store file: each allocation would keep its own overrides; use nomad")
    prometheus = self_job.prometheus_url or config.prometheus.url
    if is_loopback(prometheus):
        where = "--self-prometheus-url" if self_job.prometheus_url else "prometheus.url"
        problems.append(
            f"{where} {prometheus}: a loopback address inside the allocation is forescale's own container, not "
            "Prometheus; set prometheus.url to an address the Nomad clients reach (e.g. "
            "http://prometheus.service.consul:9090) or pass --self-prometheus-url"
        )
    nomad = self_job.nomad_address or config.nomad.address
    if is_loopback(nomad):
        if self_job.nomad_address:
            where = "--self-nomad-addr"
        elif _file_sets(config, "nomad", "address"):
            where = "nomad.address"
        else:
            where = "nomad.address (not set in the file: taken from $NOMAD_ADDR or the default)"
        problems.append(
            f"{where} {nomad}: a loopback address inside the allocation is forescale's own container, not "
            "Nomad; set nomad.address to the servers' address the clients reach (e.g. "
            "https://nomad.service.consul:4646) or pass --self-nomad-addr"
        )
    for key, value in (("prometheus.url", prometheus), ("nomad.address", nomad)):
        if urlsplit(value).scheme not in ("http", "https"):
            problems.append(f"{key} {value}: use an http:// or https:// address")
    return problems


def self_job_warnings(config: Config, self_job: SelfJob) -> list[str]:
    """Things that do not stop the job from running but will surprise: printed by `render --self`."""
    warnings = _secret_warnings(config, self_job)
    if self_job.override_store == "nomad" and config.overrides.store != "nomad":
        warnings.append(
            f"overrides.store: the job keeps overrides in Nomad Variables ({config.overrides.nomad_variable_prefix}/"
            f"<pool>), but {_source_name(config)} says {config.overrides.store}: set overrides.store: nomad there "
            "too, or `forescale override set` on this machine will not reach the job"
        )
    if ":" not in self_job.image.rsplit("/", 1)[-1] or self_job.image.endswith(":latest"):
        warnings.append(
            f"--self-image {self_job.image}: pin a version tag (e.g. forescale:{__version__}) so an update is a "
            "change Nomad can see and roll back"
        )
    return warnings


def secret_env_names(config: Config) -> list[str]:
    """Env vars the config reads secrets from: the Nomad token, Slack, Prometheus headers."""
    names = [config.nomad.token_env]
    if config.slack is not None:
        names += [config.slack.token_env, config.slack.webhook_url_env]
    names += list(config.prometheus.headers_env.values())
    return list(dict.fromkeys(names))


def _file_sets(config: Config, *keys: str) -> bool:
    """Whether the config file itself sets ``keys`` (a nested path), as opposed to a default."""
    if config.source is None:
        return False
    data: Any = yaml.safe_load(config.source.read_text(encoding="utf-8"))
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _read_for_embedding(path: Path, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, [f"{key}: cannot read {path} to embed it in the job: {exc.strerror}"]) from None


def _config_for_nomad(config: Config, self_job: SelfJob) -> tuple[str, list[SelfFile], list[dict[str, str]]]:
    """The config file as read, adjusted for the allocation, plus the files embedded next to it and the
    TLS client files that come from the Nomad Variable.

    In the allocation: the daemon listens on the container's interfaces at the mapped port; Prometheus
    and Nomad are the addresses checked above; audit log (and a file store) live on the sticky disk;
    the schedule file and CA certificates are files next to the config (relative paths resolve there);
    pools lose their ``jobspec:`` (render settings that name files on this machine).
    """
    if config.source is None:
        raise ConfigError("config", ["render --self needs a config file to embed"])
    data = yaml.safe_load(config.source.read_text(encoding="utf-8")) or {}
    files: list[SelfFile] = []
    tls_secrets: list[dict[str, str]] = []

    prometheus = data.get("prometheus") or {}
    prometheus["url"] = self_job.prometheus_url or config.prometheus.url
    if config.prometheus.ca_cert is not None:
        pem = _read_for_embedding(config.prometheus.ca_cert, "prometheus.ca_cert")
        files.append(SelfFile("local/prometheus-ca.pem", pem))
        prometheus["ca_cert"] = "prometheus-ca.pem"
    data["prometheus"] = prometheus

    nomad = data.get("nomad") or {}
    nomad["address"] = self_job.nomad_address or config.nomad.address
    if config.nomad.ca_cert is not None:
        files.append(SelfFile("local/nomad-ca.pem", _read_for_embedding(config.nomad.ca_cert, "nomad.ca_cert")))
        nomad["ca_cert"] = "nomad-ca.pem"
    for key, item in (("client_cert", "NOMAD_CLIENT_CERT"), ("client_key", "NOMAD_CLIENT_KEY")):
        if getattr(config.nomad, key) is not None:  # private: from the Variable, into the secrets dir
            name = f"nomad-{key.replace('_', '-')}.pem"
            tls_secrets.append({"destination": f"secrets/{name}", "item": item})
            nomad[key] = f"{TASK_SECRETS}/{name}"
    data["nomad"] = nomad

    data["audit_log"] = f"{ALLOC_DATA}/forescale-audit.jsonl"
    overrides = data.get("overrides") or {}
    overrides["store"] = self_job.override_store
    if self_job.override_store == "file":
        overrides["path"] = f"{ALLOC_DATA}/forescale-overrides.json"
    if config.overrides.schedule_file is not None:
        text = _read_for_embedding(config.overrides.schedule_file, "overrides.schedule_file")
        files.append(SelfFile("local/schedule.yaml", text))
        overrides["schedule_file"] = "schedule.yaml"
    data["overrides"] = overrides

    for pool in data.get("pools") or []:  # render/deploy settings: the daemon never reads them
        if isinstance(pool, dict):
            pool.pop("jobspec", None)

    daemon = data.get("daemon") or {}
    daemon["listen_host"] = "0.0.0.0"
    daemon["listen_port"] = self_job.metrics_port
    data["daemon"] = daemon
    _strip_secrets(data)
    header = (
        f"# {_source_name(config)}, embedded by `forescale render --self` and adjusted for the allocation:\n"
        "# prometheus.url, nomad.address, audit_log, overrides, daemon.listen_*; pools without their jobspec\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), files, tls_secrets


SLACK_SECRETS = {"token": "token_env", "webhook_url": "webhook_url_env"}  # slack.<key> → the env var instead
URL_KEYS = (("prometheus", "url"), ("nomad", "address"), ("nomad", "ui_url"))


def _strip_secrets(data: dict[str, Any]) -> None:
    """Secrets never go into the job file: ``slack.token``/``webhook_url`` and URL credentials are dropped (the
    job reads secrets from its Nomad Variable as environment variables; ``_secret_warnings`` says so)."""
    slack = data.get("slack")
    if isinstance(slack, dict):
        for key in SLACK_SECRETS:
            slack.pop(key, None)
    for section, key in URL_KEYS:
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            block[key] = _without_userinfo(block[key])


def _secret_warnings(config: Config, self_job: SelfJob) -> list[str]:
    out = []
    if config.slack is not None:
        for key, env_key in SLACK_SECRETS.items():
            if getattr(config.slack, key) is not None:
                env = getattr(config.slack, env_key)
                out.append(
                    f"slack.{key} is not embedded in the job (a secret): put it in the Nomad Variable "
                    f"nomad/jobs/{self_job.job_id} as {env}"
                )
    urls = {
        "prometheus.url": self_job.prometheus_url or config.prometheus.url,
        "nomad.address": self_job.nomad_address or config.nomad.address,
        "nomad.ui_url": config.nomad.ui_url or "",
    }
    for key, url in urls.items():
        if url != _without_userinfo(url):
            out.append(
                f"{key} carries credentials; they are not embedded in the job: authenticate with a secret from the "
                "Nomad Variable instead (prometheus.headers_env, nomad.token_env)"
            )
    return out


def _without_userinfo(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------- writing


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
