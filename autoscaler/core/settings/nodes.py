"""The per-pool ``nodes:`` section of forescale.yaml: who provisions the pool's GPU machines (docs/nodes.md).

``provider: none`` (the default) is a fixed fleet: forescale changes the task group's count only. With
``aws_asg`` or ``command`` the machines follow the count: one node = one allocation of the pool's job
(``distinct_hosts``), so the machines wanted are the group's desired count plus ``spare``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import ExecutablePath, SecretValue, StrictModel, UrlWithCredentials

ProviderKind = Literal["none", "aws_asg", "command"]
Strategy = Literal["least_busy", "newest", "empty_first"]

AWS_INSTANCE_ATTRIBUTE = "unique.platform.aws.instance-id"  # Nomad's env_aws fingerprint
HOSTNAME_ATTRIBUTE = "unique.hostname"
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

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("timeout must be between 1s and 1h")
        return value


class NodesSettings(_Strict):
    """How the pool's machines are provisioned and retired (Nomad node drain before every termination)."""

    provider: ProviderKind = Field(
        "none", description="none: fixed fleet (count only); aws_asg: an Auto Scaling group; command: your executable"
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
        timedelta(minutes=20), description="a machine without a registered Nomad node after this is reported"
    )
    # Which Nomad nodes belong to the pool (ANDed; at least one unless provider is none).
    node_pool: str | None = Field(None, description="only nodes of this Nomad node pool")
    node_class: str | None = Field(None, description="only nodes of this node_class")
    datacenter: str | None = Field(None, description="only nodes of this datacenter")
    meta: dict[str, str] = Field(default_factory=dict, description="only nodes whose client meta has these values")
    instance_attribute: str | None = Field(
        None,
        pattern=ATTRIBUTE_RE,
        description=f"node attribute naming the node's machine (default: {AWS_INSTANCE_ATTRIBUTE} for aws_asg, "
        f"{HOSTNAME_ATTRIBUTE} for command)",
    )
    aws: AwsAsgSettings | None = Field(None, description="the Auto Scaling group (provider: aws_asg)")
    command: CommandSettings | None = Field(None, description="the executable (provider: command)")
    # Learning the lead time from boots (pool lead_time: auto).
    min_boots: int = Field(5, ge=1, le=1000, description="boots to observe before lead_time: auto trusts their p95")
    boot_window: Duration = Field(timedelta(days=7), description="lead_time: auto uses boots observed this recently")

    @model_validator(mode="after")
    def _consistent(self) -> NodesSettings:
        if self.provider == "aws_asg" and self.aws is None:
            raise ValueError("provider aws_asg needs an 'aws:' section with at least asg_name")
        if self.provider == "command" and self.command is None:
            raise ValueError("provider command needs a 'command:' section with at least path")
        if self.provider != "none" and not self.has_filter():
            raise ValueError(
                "say which Nomad nodes belong to the pool: set node_pool, node_class, datacenter or meta "
                "(forescale never drains a node outside the pool)"
            )
        return self

    def has_filter(self) -> bool:
        return bool(self.node_pool or self.node_class or self.datacenter or self.meta)

    @property
    def enabled(self) -> bool:
        return self.provider != "none"

    def machine_attribute(self) -> str:
        if self.instance_attribute:
            return self.instance_attribute
        return AWS_INSTANCE_ATTRIBUTE if self.provider == "aws_asg" else HOSTNAME_ATTRIBUTE

    def filters_text(self) -> str:
        """'node_pool=gpu, meta.forescale_pool=ocr' for messages."""
        parts = [f"{k}={v}" for k, v in (("node_pool", self.node_pool), ("node_class", self.node_class)) if v]
        if self.datacenter:
            parts.append(f"datacenter={self.datacenter}")
        parts += [f"meta.{k}={v}" for k, v in sorted(self.meta.items())]
        return ", ".join(parts) or "no filter"
