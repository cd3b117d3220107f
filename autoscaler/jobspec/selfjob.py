"""forescale's own job (`forescale render --self`): the daemon (or a periodic `forescale tick`) on Nomad, its config
embedded and adjusted for the allocation (``selfconfig.py``), secrets only from the Nomad Variable, state on the
sticky disk."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from autoscaler import __version__
from autoscaler.core.errors import ConfigError
from autoscaler.core.settings.base import ENV_NAME, NAME_PATTERN
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.jobspec import IMAGE_RE
from autoscaler.jobspec.escape import environment
from autoscaler.jobspec.selfconfig import (
    ALLOC_DATA,
    TASK_LOCAL,
    TASK_SECRETS,
    EmbeddedConfig,
    SelfFile,
    config_for_nomad,
    embedding_warnings,
    secret_env_names,
)
from autoscaler.jobspec.workers import source_name

__all__ = ["ALLOC_DATA", "TASK_LOCAL", "TASK_SECRETS", "SelfFile", "secret_env_names"]  # also from selfconfig

SELF_IMAGE = f"forescale:{__version__}"
"""The tag `make image` builds; --self-image names the copy in the clients' registry."""

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


_CRON_RE = re.compile(r"^[0-9*/,\- ]{9,64}$")


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
        if not ENV_NAME.match(key):
            problems.append(
                f"env var name {key!r} (a *_env setting or a nodes.command.env key): use letters, digits and '_'"
            )
    embedded = EmbeddedConfig("")
    if not problems:
        try:
            embedded = config_for_nomad(config, self_job)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(source, problems, heading="cannot render forescale's own job with")
    ctx_self = {**self_job.__dict__, "secret_keys": keys}
    return (
        environment()
        .get_template("forescale.nomad.hcl.j2")
        .render(
            source=source_name(config),
            fs=ctx_self,
            namespace=config.nomad.namespace,
            config_text=embedded.text,
            files=embedded.files,
            tls_secrets=embedded.tls_secrets,
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
    if not re.match(NAME_PATTERN, self_job.job_id):
        problems.append(f"--self-job {self_job.job_id!r}: use only lowercase letters, digits and '-'")
    if not re.match(IMAGE_RE, self_job.image):
        problems.append(f"--self-image {self_job.image!r}: not a plain image reference")
    if not re.match(NAME_PATTERN, self_job.node_pool):
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
    prometheus_used = config.metrics.source == "prometheus"  # its section is the metrics source's
    if prometheus_used and is_loopback(prometheus):
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
        if (key == "nomad.address" or prometheus_used) and urlsplit(value).scheme not in ("http", "https"):
            problems.append(f"{key} {value}: use an http:// or https:// address")
    return problems


def self_job_warnings(config: Config, self_job: SelfJob) -> list[str]:
    """Things that do not stop the job from running but will surprise: printed by `render --self`."""
    warnings = embedding_warnings(config, self_job)
    if self_job.override_store == "nomad" and config.overrides.store != "nomad":
        warnings.append(
            f"overrides.store: the job keeps overrides in Nomad Variables ({config.overrides.nomad_variable_prefix}/"
            f"<pool>), but {source_name(config)} says {config.overrides.store}: set overrides.store: nomad there "
            "too, or `forescale override set` on this machine will not reach the job"
        )
    if ":" not in self_job.image.rsplit("/", 1)[-1] or self_job.image.endswith(":latest"):
        warnings.append(
            f"--self-image {self_job.image}: pin a version tag (e.g. forescale:{__version__}) so an update is a "
            "change Nomad can see and roll back"
        )
    return warnings


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
