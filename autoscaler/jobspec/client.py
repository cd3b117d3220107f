"""The GPU clients' Nomad agent config (nomad.hcl) and what a pool's job must agree with in it: the kill
timeout cap, datacenter, node pool, node class and the GPU memory Nomad reports."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from autoscaler.core.durations import parse_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.resources import _REPO
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.core.settings.jobspec import JobspecSettings

NOMAD_DEFAULT_MAX_KILL_TIMEOUT = timedelta(seconds=30)


@dataclass
class Validation:
    """Problems (render refuses) and warnings (render goes on) found by the checks."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def jobspec_key(index: int, pool: PoolConfig, key: str) -> str:
    """The key path of a pool's jobspec setting in messages: ``pools[0] (ocr).jobspec.image``."""
    return f"pools[{index}] ({pool.name}).jobspec.{key}"


_key = jobspec_key


# What nomad-device-nvidia reports as ``${device.attr.memory}`` (NVML total bytes ÷ 2^20, truncated) for GPU
# models forescale knows: (lowest, highest) MiB seen, the lowest with ECC on. A 16 GB T4 reports 15079-15110 MiB
# (nomad-device-nvidia nvml/driver_linux.go determineMemoryInfo; deviceQuery and nvidia-smi on T4s).
GPU_REPORTED_MIB = {"t4": (15079, 15110)}
NOMINAL_GIB = (8, 12, 16, 20, 24, 32, 40, 48, 80, 94, 141)


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


def client_problems(config: Config, index: int, pool: PoolConfig, js: JobspecSettings) -> Validation:
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
