"""forescale's own job (`forescale render --self`): the daemon (or a periodic `forescale tick`) on Nomad, its config
embedded and adjusted for the allocation, secrets only from the Nomad Variable, state on the sticky disk."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml

from autoscaler import __version__
from autoscaler.core.errors import ConfigError
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.jobspec import IMAGE_RE, NAME_RE
from autoscaler.jobspec.escape import environment
from autoscaler.jobspec.workers import source_name

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
        environment()
        .get_template("forescale.nomad.hcl.j2")
        .render(
            source=source_name(config),
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
            f"<pool>), but {source_name(config)} says {config.overrides.store}: set overrides.store: nomad there "
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
        f"# {source_name(config)}, embedded by `forescale render --self` and adjusted for the allocation:\n"
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
