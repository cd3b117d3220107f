"""The per-pool ``nodes:`` section of forescale.yaml: who provisions the pool's GPU machines (docs/nodes.md).

``provider: none`` (the default) is a fixed fleet: forescale changes the task group's count only. With a
provider the machines follow the count: one node = one allocation of the pool's job (``distinct_hosts``), so
the machines wanted are the group's desired count plus ``spare``.

Providers are rows of ``PROVIDERS`` (kind → the key of its section and its settings model); the adapters'
builders are rows of ``autoscaler.nodes.registry.BUILDERS`` with the same keys (a unit test holds them equal).
A new provider is a settings model, a row here, a field for its section on ``NodesSettings``, and an adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import ExecutablePath, SecretValue, StrictModel, UrlWithCredentials
from autoscaler.core.settings.clouds import AzureVmssSettings, GceMigSettings

Strategy = Literal["least_busy", "newest", "empty_first"]

ASG_NAME_RE = r"^[A-Za-z0-9_\-.:/@+= ]{1,255}$"  # what AWS allows in an Auto Scaling group name
ATTRIBUTE_RE = r"^[A-Za-z0-9_.\-]{1,128}$"


class _Strict(StrictModel):
    """Unknown keys are errors; numbers are finite and never true/false (``settings.base``)."""


class AwsAsgSettings(_Strict):
    """An EC2 Auto Scaling Group. Credentials come from the standard AWS chain, never from this file."""

    asg_name: str = Field(..., pattern=ASG_NAME_RE, description="name of the Auto Scaling group of the pool's nodes")
    region: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS region of the group (default: the AWS chain's, e.g. $AWS_REGION)",
    )
    endpoint_url: UrlWithCredentials | None = Field(
        None, description="AWS API endpoint override, for tests against a local moto server only"
    )
    max_attempts: int = Field(
        4, ge=1, le=10, description="total attempts per AWS call (botocore standard retry mode: throttling, 5xx)"
    )
    timeout: Duration = Field(timedelta(seconds=10), description="connect and read timeout of one AWS call")

    def group_key(self) -> tuple[str, ...]:
        """(kind, name, scope): two pools on one key manage the same machines."""
        return ("ASG", self.asg_name, self.region or "")

    @field_validator("endpoint_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("write a URL such as http://127.0.0.1:5000 (or leave it out to use AWS)")
        return value


class CommandSettings(_Strict):
    """A user executable: JSON request on stdin, JSON reply on stdout (docs/nodes.md). Never run by a shell."""

    path: ExecutablePath = Field(..., description="executable to run (relative paths are relative to the config file)")
    args: list[str] = Field(default_factory=list, description="extra arguments, passed as is (no shell)")
    timeout: Duration = Field(timedelta(minutes=2), description="kill the command if it has not answered by then")
    env: dict[str, SecretValue] = Field(default_factory=dict, description="extra environment variables for the command")

    def group_key(self) -> tuple[str, ...]:
        return ("command", " ".join([str(self.path), *self.args]))

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("timeout must be between 1s and 1h")
        return value


class NodesSettings(_Strict):
    """How the pool's machines are provisioned and retired (Nomad node drain before every termination)."""

    provider: str = Field(
        "none",
        description="none: fixed fleet (count only); aws_asg: an Auto Scaling group; gce_mig: a managed instance "
        "group; azure_vmss: a virtual machine scale set; command: your executable",
    )
    spare: int = Field(0, ge=0, le=1000, description="warm machines kept on top of the group's desired count")
    selection: Strategy = Field(
        "least_busy",
        description="which nodes scale-in drains: least_busy (fewest allocations, then least reserved CPU/memory), "
        "newest (highest create index), empty_first (nodes without allocations, then least busy)",
    )
    drain_deadline: Duration | None = Field(
        None,
        description="Nomad drain deadline; default: the jobspec's shutdown_delay + kill_timeout + 1m, else 15m",
    )
    drain_grace: Duration = Field(
        timedelta(minutes=5),
        description="after the deadline, how long allocations may still take to stop before the drain is 'failed'",
    )
    drain_ignore_system_jobs: bool = Field(False, description="leave system jobs running on drained nodes")
    purge: bool = Field(False, description="purge a node from Nomad once its machine is terminated")
    boot_timeout: Duration = Field(
        timedelta(minutes=20),
        description="a machine without a registered Nomad node after this is dead: reported, and reaped (reap_dead)",
    )
    down_timeout: Duration = Field(
        timedelta(minutes=20),
        description="a machine whose node stays down (or disconnected) this long, with nothing live on it, is reaped",
    )
    reap_dead: bool = Field(
        True,
        description="terminate (with decrement) machines that never registered or whose node stayed down; off: only "
        "report them",
    )
    launch_timeout: Duration = Field(
        timedelta(minutes=15),
        description="capacity asked for and not appeared after this is a failed launch: reported once, the capacity "
        "lowered to the machines that exist, scale-out backed off",
    )
    launch_backoff: Duration = Field(
        timedelta(minutes=5), description="first back-off of scale-out after a failed launch (doubles each time)"
    )
    launch_backoff_max: Duration = Field(timedelta(minutes=30), description="longest back-off of scale-out")
    # Which Nomad nodes belong to the pool (ANDed; at least one unless provider is none).
    node_pool: str | None = Field(None, description="only nodes of this Nomad node pool")
    node_class: str | None = Field(None, description="only nodes of this node_class")
    datacenter: str | None = Field(None, description="only nodes of this datacenter")
    meta: dict[str, str] = Field(default_factory=dict, description="only nodes whose client meta has these values")
    instance_attribute: str | None = Field(
        None,
        pattern=ATTRIBUTE_RE,
        description="node attribute naming the node's machine (default: the provider's own mapping, e.g. "
        "unique.platform.aws.instance-id for aws_asg, unique.platform.gce.hostname for gce_mig, "
        "unique.platform.azure.name for azure_vmss, unique.hostname for command)",
    )
    aws: AwsAsgSettings | None = Field(None, description="the Auto Scaling group (provider: aws_asg)")
    gce: GceMigSettings | None = Field(None, description="the managed instance group (provider: gce_mig)")
    azure: AzureVmssSettings | None = Field(None, description="the virtual machine scale set (provider: azure_vmss)")
    command: CommandSettings | None = Field(None, description="the executable (provider: command)")
    # Learning the lead time from boots (pool lead_time: auto).
    min_boots: int = Field(5, ge=1, le=1000, description="boots to observe before lead_time: auto trusts their p95")
    boot_window: Duration = Field(timedelta(days=7), description="lead_time: auto uses boots observed this recently")

    @field_validator("provider")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != "none" and value not in PROVIDERS:
            choices = ", ".join(["none", *PROVIDERS])
            raise ValueError(f"unknown provider {value!r}; one of: {choices}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NodesSettings:
        if self.provider != "none" and self.section() is None:
            raise ValueError(
                f"provider {self.provider} needs its '{PROVIDERS[self.provider].section}:' section "
                f"with at least {PROVIDERS[self.provider].required}"
            )
        if self.provider != "none" and not self.has_filter():
            raise ValueError(
                "say which Nomad nodes belong to the pool: set node_pool, node_class, datacenter or meta "
                "(forescale never drains a node outside the pool)"
            )
        if self.launch_backoff_max < self.launch_backoff:
            raise ValueError("launch_backoff_max must be at least launch_backoff")
        return self

    def section(self) -> Any:
        """The selected provider's settings (None for a fixed fleet or when its section is missing)."""
        schema = PROVIDERS.get(self.provider)
        return getattr(self, schema.section) if schema is not None else None

    def has_filter(self) -> bool:
        return bool(self.node_pool or self.node_class or self.datacenter or self.meta)

    @property
    def enabled(self) -> bool:
        return self.provider != "none"

    def filters_text(self) -> str:
        """'node_pool=gpu, meta.forescale_pool=ocr' for messages."""
        parts = [f"{k}={v}" for k, v in (("node_pool", self.node_pool), ("node_class", self.node_class)) if v]
        if self.datacenter:
            parts.append(f"datacenter={self.datacenter}")
        parts += [f"meta.{k}={v}" for k, v in sorted(self.meta.items())]
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True)
class ProviderSchema:
    """One row of the provider table: where its settings live in ``nodes:`` and their model."""

    section: str  # the key under nodes: (and the field of NodesSettings) holding its settings
    settings: type[BaseModel]
    required: str  # what the section needs at least, for the error message


PROVIDERS: dict[str, ProviderSchema] = {
    "aws_asg": ProviderSchema("aws", AwsAsgSettings, "asg_name"),
    "gce_mig": ProviderSchema("gce", GceMigSettings, "project, name and zone or region"),
    "azure_vmss": ProviderSchema("azure", AzureVmssSettings, "subscription_id, resource_group and name"),
    "command": ProviderSchema("command", CommandSettings, "path"),
}
"""The node providers forescale knows (``nodes.provider``), each with its section of ``nodes:``."""
