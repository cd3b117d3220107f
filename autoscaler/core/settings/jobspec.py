"""The per-pool ``jobspec:`` section of forescale.yaml (owned by the jobspec renderer).

Every string that ends up in HCL, YAML or a shell command is either checked against a strict
pattern here (names, image, paths) or escaped by the renderer (env values, command args).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import ENV_NAME_PATTERN, NAME_PATTERN, ConfigPath, StrictModel

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]; nothing that HCL, YAML or a shell interprets.
IMAGE_RE = r"^[a-z0-9][a-z0-9._/:-]{0,254}(@sha256:[a-f0-9]{64})?$"
ATTRIBUTE_RE = r"^[a-z][a-z0-9_.-]{0,127}$"
HOST_PATH_RE = r"^/[A-Za-z0-9._/-]{0,254}$"


def _has_control_chars(text: str) -> bool:
    """Newlines and other control characters would break out of a YAML, HCL or shell value."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


SIGNALS = Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kib|kb|mib|mb|m|gib|gb|g|tib|tb|t)?\s*$", re.IGNORECASE)
_MIB = {"b": 1 / 2**20, "kib": 1 / 1024, "kb": 1 / 1024, "mib": 1, "mb": 1, "m": 1}
_MIB |= {"gib": 1024, "gb": 1024, "g": 1024, "tib": 2**20, "tb": 2**20, "t": 2**20}


def parse_mib(value: Any) -> int:
    """``16GiB``, ``4096MiB``, ``12g`` or a plain number of MiB → whole MiB (memory sizes of GPUs and workers)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 16GiB or 4096MiB")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("a size must be positive")
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a size; write e.g. 16GiB, 4096MiB or 12g")
    mib = int(float(match.group(1)) * _MIB[(match.group(2) or "mib").lower()])
    if mib <= 0:
        raise ValueError("a size must be at least 1MiB")
    return mib


MiB = Annotated[int, BeforeValidator(parse_mib)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class HealthCheck(StrictModel):
    """The alloc's health: the entrypoint answers /healthz (200 when all N workers run) on a Nomad port."""

    provider: Literal["nomad", "consul"] = Field("nomad", description="service registration provider")
    service_name: str | None = Field(None, pattern=NAME_PATTERN, description="service name (default: the group name)")
    port: int = Field(0, ge=0, le=65535, description="static port of /healthz (0: Nomad picks a dynamic port)")
    interval: Duration = Field(timedelta(seconds=10), description="check interval")
    timeout: Duration = Field(timedelta(seconds=2), description="check timeout")


class JobspecSettings(StrictModel):
    """How a pool's Nomad job is rendered: GPU packing and graceful teardown knobs."""

    # What runs.
    image: str = Field(..., pattern=IMAGE_RE, description="worker image, e.g. registry.example.com/ocr:1.4.2")
    command: list[str] | None = Field(None, description="override the image's command (escaped, never shell-parsed)")
    workers_per_gpu: int = Field(4, ge=1, le=64, description="worker containers sharing one GPU")
    env: dict[str, str] = Field(default_factory=dict, description="plain env vars of every worker (not secrets)")
    secret_env: list[str] = Field(
        default_factory=list,
        description="env vars read from the Nomad Variable nomad/jobs/<job> (keys of the same name)",
    )
    volumes: list[str] = Field(default_factory=list, description="bind mounts 'host_path:container_path[:ro]'")
    pull_policy: Literal["missing", "never", "always"] = Field("missing", description="compose pull_policy")
    image_pull_time: Duration | None = Field(
        None, description="measured time to pull the image on a fresh node (warns when above the pool's lead_time)"
    )
    network_mode: Literal["host", "none"] = Field("host", description="worker network (no compose networks)")
    gpu_runtime: Literal["nvidia", "none"] = Field("nvidia", description="docker runtime that exposes the GPU")
    worker_cpus: float | None = Field(None, gt=0, le=256, description="CPU limit of one worker (compose cpus)")
    worker_memory: MiB | None = Field(None, description="RAM limit of one worker, e.g. 6GiB (compose mem_limit)")
    worker_gpu_memory: MiB | None = Field(None, description="GPU memory one worker needs, e.g. 3GiB")
    cpu_mhz_per_core: int = Field(
        2500,
        ge=100,
        le=10000,
        description="MHz Nomad counts per CPU core on the GPU nodes (`nomad node status -verbose`: cpu.frequency); "
        "turns workers × worker_cpus into the task's cpu reservation",
    )

    # Where it runs.
    datacenters: list[str] = Field(default_factory=lambda: ["*"], description="Nomad datacenters ('*' = all)")
    node_pool: str = Field("gpu", pattern=NAME_PATTERN, description="Nomad node pool of the GPU clients")
    node_class: str | None = Field(None, pattern=NAME_PATTERN, description="only nodes of this node_class")
    spread_attribute: str | None = Field(
        "node.datacenter",
        pattern=ATTRIBUTE_RE,
        description="spread allocations over this node attribute, e.g. node.datacenter or meta.zone (null: off)",
    )
    gpu_memory: MiB | None = Field(
        None,
        description="require GPUs with at least this memory AS NOMAD REPORTS IT (`nomad node status -verbose "
        "<node>`: the device's memory attribute, NVML total ÷ 2^20): a 16 GB T4 reports about 15079-15110 MiB, so "
        "16GiB would match no T4; e.g. 15000MiB",
    )
    gpu_model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
        description="GPU model of the pool's nodes (e.g. tesla-t4): render checks gpu_memory against what Nomad "
        "reports for it; default: meta.gpu_model of the client config (nomad_client_config)",
    )

    # Graceful teardown (see docs/jobspecs.md for the timeline).
    kill_signal: Literal["SIGTERM", "SIGINT"] = Field("SIGTERM", description="signal Nomad sends the entrypoint")
    worker_stop_signal: SIGNALS = Field("SIGTERM", description="signal telling a worker to stop taking new work")
    drain_timeout: Duration = Field(timedelta(seconds=60), description="how long in-flight work may take after stop")
    stop_timeout: Duration = Field(timedelta(seconds=10), description="compose down timeout before SIGKILL")
    kill_margin: Duration = Field(timedelta(seconds=10), description="slack for docker/compose overhead")
    kill_timeout: Duration | None = Field(
        None, description="Nomad kill_timeout (default: drain_timeout + stop_timeout + kill_margin)"
    )
    shutdown_delay: Duration = Field(
        timedelta(seconds=10), description="time between service deregistration and the kill signal"
    )
    start_timeout: Duration = Field(timedelta(minutes=10), description="all workers must be running within this")
    nomad_client_config: ConfigPath | None = Field(
        None,
        description="the GPU clients' agent config (default: the bundled nomad.hcl): its max_kill_timeout bounds "
        "kill_timeout, and its datacenter, node_pool, node_class and meta.gpu_model must agree with this job",
    )
    max_kill_timeout: Duration | None = Field(
        None, description="the clients' max_kill_timeout, when no nomad.hcl is at hand"
    )

    # Scheduling policy.
    update: Literal["none", "rolling"] = Field(
        "none", description="none: scaling never opens a deployment; rolling: one alloc at a time (blocks scaling)"
    )
    rolling_max_parallel: int = Field(1, ge=1, description="allocations replaced at once with update: rolling")
    health: HealthCheck = Field(default_factory=HealthCheck)
    entrypoint: str = Field(
        "embed",
        pattern=r"^(embed|/[A-Za-z0-9._/-]{1,254})$",
        description="'embed' ships the entrypoint inside the job; or an absolute path installed on every node",
    )
    lock_dir: str = Field("/run/forescale", pattern=HOST_PATH_RE, description="entrypoint lock files on the node")

    @field_validator("datacenters")
    @classmethod
    def _datacenters(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one datacenter, or '*' for all")
        for dc in value:
            if dc != "*" and not re.match(NAME_PATTERN, dc):
                raise ValueError(f"datacenter {dc!r}: use only lowercase letters, digits and '-', or '*'")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not re.match(ENV_NAME_PATTERN, key):
                raise ValueError(f"env name {key!r}: use letters, digits and '_' (not starting with a digit)")
            if not isinstance(val, str):
                raise ValueError(f"env {key}: quote the value so it is a string")
            if _has_control_chars(val):
                raise ValueError(f"env {key}: newlines and control characters are not allowed")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: list[str]) -> list[str]:
        for key in value:
            if not re.match(ENV_NAME_PATTERN, key):
                raise ValueError(f"secret_env name {key!r}: use letters, digits and '_' (not starting with a digit)")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        for arg in value or []:
            if _has_control_chars(arg):
                raise ValueError(f"command argument {arg!r}: newlines and control characters are not allowed")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for vol in value:
            parts = vol.split(":")
            mode_ok = len(parts) == 2 or (len(parts) == 3 and parts[2] in ("ro", "rw"))
            if not mode_ok or not all(re.match(HOST_PATH_RE, p) for p in parts[:2]):
                raise ValueError(f"volume {vol!r}: write '/host/path:/container/path' or '...:ro' (plain path chars)")
        return value

    def worker_reservation(self) -> tuple[int, int] | None:
        """CPU MHz and memory MiB the workers of one allocation need (None unless both limits are set)."""
        if self.worker_cpus is None or self.worker_memory is None:
            return None
        cpu = round(self.workers_per_gpu * self.worker_cpus * self.cpu_mhz_per_core)
        return cpu, self.workers_per_gpu * self.worker_memory

    def effective_kill_timeout(self) -> timedelta:
        """The task's kill_timeout: as configured, or just enough for drain + compose stop + margin."""
        return self.kill_timeout or self.minimum_kill_timeout()

    def minimum_kill_timeout(self) -> timedelta:
        return self.drain_timeout + self.stop_timeout + self.kill_margin
