"""The config forescale's own job runs with (`render --self`): the file as written, adjusted for the allocation.

The job's own choices, set explicitly: the daemon listens on the container's interfaces at the mapped port;
Prometheus (when it is the metrics source) and Nomad are the addresses the allocation reaches; the audit log
lives on the sticky disk; overrides are kept in the store the job uses.

Everything else follows the schema's marks (``autoscaler.core.settings.marks``), in whatever section it is —
there is no list of keys to keep up to date:

- ``RenderOnly`` sections (a pool's ``jobspec:``) are left out: they name files on the rendering machine;
- ``Secret`` values are left out: the job reads them from its Nomad Variable as environment variables;
- ``Credentials`` URLs lose their userinfo;
- files (``FilePath``): ``read`` ones are embedded next to the config (relative paths resolve there), ``run``
  ones embedded as executables, ``state`` ones moved to the sticky disk, ``private`` ones (TLS client keys)
  come from the Variable into the task's secrets directory.

``secret_env_names`` and ``embedding_warnings`` walk the same marks: the Variable's keys, and what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autoscaler.core.errors import ConfigError
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.marks import Credentials, FilePath, Marked, RenderOnly, Secret, SecretEnv, marked
from autoscaler.core.text import strip_userinfo
from autoscaler.jobspec.workers import source_name

if TYPE_CHECKING:
    from autoscaler.jobspec.selfjob import SelfJob

# Where the docker driver mounts the task's directories inside the container.
TASK_LOCAL = "/local"
ALLOC_DATA = "/alloc/data"  # kept across updates and migrations by the sticky, migrating ephemeral disk
TASK_SECRETS = "/secrets"
MAX_PROGRAM_BYTES = 1024 * 1024  # a `run` file is embedded as text in the job: a script, not a binary


@dataclass
class SelfFile:
    """One file the job's templates write: ``destination`` relative to the task dir, ``data`` verbatim."""

    destination: str
    data: str
    perms: str = "0644"


@dataclass
class EmbeddedConfig:
    """The config text for ``local/forescale.yaml``, the files next to it and the TLS files from the Variable."""

    text: str
    files: list[SelfFile] = field(default_factory=list)
    tls_secrets: list[dict[str, str]] = field(default_factory=list)


def secret_env_names(config: Config) -> list[str]:
    """The environment variables the daemon reads secrets from — every ``*_env`` setting of its config (the Nomad
    token, Slack, Prometheus headers, …) and every secret moved out of the file under its own name (a command's
    ``env``) — in schema order: the keys of the job's Nomad Variable."""
    names: list[str] = []
    for item in marked(config, (SecretEnv, Secret), daemon=True):
        if isinstance(item.mark, SecretEnv):
            names.append(str(item.value))
        elif isinstance(item.mark, Secret) and item.mark.env_field is None:
            names.append(str(item.key))
    return list(dict.fromkeys(names))


def embedding_warnings(config: Config, self_job: SelfJob) -> list[str]:
    """What the job leaves out of its config and where it comes from instead (secrets, URL credentials), and
    what an embedded program may still need."""
    out = []
    addresses = _addresses(config, self_job)
    for item in marked(config, (Secret, Credentials), daemon=True):
        if isinstance(item.mark, Secret):
            env = getattr(item.owner, item.mark.env_field) if item.mark.env_field else item.key
            inherit = "" if item.mark.env_field else " (the command inherits forescale's environment)"
            out.append(
                f"{item.dotted()} is not embedded in the job (a secret): put it in the Nomad Variable "
                f"nomad/jobs/{self_job.job_id} as {env}{inherit}"
            )
        elif isinstance(item.value, str):
            url = addresses.get(item.path, item.value)
            if url != strip_userinfo(url):
                out.append(
                    f"{item.dotted()} carries credentials; they are not embedded in the job: authenticate with a "
                    "secret from the Nomad Variable instead (prometheus.headers_env, nomad.token_env)"
                )
    for item in marked(config, FilePath, daemon=True):
        args = getattr(item.owner, "args", None)
        if isinstance(item.mark, FilePath) and item.mark.use == "run" and args:
            out.append(
                f"{item.dotted()}: the job runs {item.value.name} embedded from {item.value}; the files its args name "
                f"({' '.join(map(str, args))}) must exist inside the allocation too"
            )
    return out


def config_for_nomad(config: Config, self_job: SelfJob) -> EmbeddedConfig:
    """The config file as read, adjusted for the allocation (module docstring). Raises ConfigError naming every
    file it cannot embed."""
    if config.source is None:
        raise ConfigError("config", ["render --self needs a config file to embed"])
    data = yaml.safe_load(config.source.read_text(encoding="utf-8")) or {}
    for (section, key), value in _addresses(config, self_job).items():
        block = data.get(section) or {}
        block[key] = value
        data[section] = block
    data["audit_log"] = f"{ALLOC_DATA}/forescale-audit.jsonl"
    overrides = data.get("overrides") or {}
    overrides["store"] = self_job.override_store
    if self_job.override_store == "file":
        overrides["path"] = f"{ALLOC_DATA}/forescale-overrides.json"
    data["overrides"] = overrides
    daemon = data.get("daemon") or {}
    daemon["listen_host"] = "0.0.0.0"
    daemon["listen_port"] = self_job.metrics_port
    data["daemon"] = daemon
    out = EmbeddedConfig("")
    problems: list[str] = []
    for item in marked(config, daemon=True):
        found = _locate(data, item.path)
        if found is not None:
            _adjust(config, item, found, out, problems)
    if problems:
        raise ConfigError(str(config.source), problems)
    header = (
        f"# {source_name(config)}, embedded by `forescale render --self` and adjusted for the allocation:\n"
        "# prometheus.url, nomad.address, audit_log, overrides, daemon.listen_*; pools without their jobspec\n"
    )
    out.text = header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return out


def _addresses(config: Config, self_job: SelfJob) -> dict[tuple[str | int, ...], str]:
    """The addresses the allocation reaches: the metrics source's (Prometheus) and Nomad's."""
    out: dict[tuple[str | int, ...], str] = {}
    if config.metrics.source == "prometheus":
        out["prometheus", "url"] = self_job.prometheus_url or config.prometheus.url
    out["nomad", "address"] = self_job.nomad_address or config.nomad.address
    return out


def _adjust(config: Config, item: Marked, found: tuple[Any, Any], out: EmbeddedConfig, problems: list[str]) -> None:
    """One marked value of the file, as the allocation needs it (module docstring)."""
    holder, key = found
    mark = item.mark
    if isinstance(mark, RenderOnly | Secret):
        holder.pop(key)
    elif isinstance(mark, Credentials) and isinstance(holder[key], str):
        holder[key] = strip_userinfo(holder[key])
    elif isinstance(mark, FilePath) and isinstance(item.value, Path):
        path: Path = item.value
        if mark.use == "state":
            holder[key] = f"{ALLOC_DATA}/{mark.name or path.name}"
        elif mark.use == "private":
            name = mark.name or path.name
            out.tls_secrets.append({"destination": f"secrets/{name}", "item": mark.item or name})
            holder[key] = f"{TASK_SECRETS}/{name}"
        elif mark.use == "read":
            name = mark.name or f"{'-'.join(str(p) for p in item.path[:-1])}-{path.name}"
            text = _read(path, item, problems)
            if text is not None:
                out.files.append(SelfFile(f"local/{name}", text))
                holder[key] = name
        elif mark.use == "run":
            name = f"bin/{_pool_of(config, item) or 'forescale'}-{path.name}"
            text = _read(path, item, problems, program=True)
            if text is not None:
                out.files.append(SelfFile(f"local/{name}", text, perms="0755"))
                holder[key] = name


def _read(path: Path, item: Marked, problems: list[str], program: bool = False) -> str | None:
    key = item.dotted()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"{key}: cannot read {path} to embed it in the job: {exc.strerror}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if program and (text is None or "\0" in text or len(raw) > MAX_PROGRAM_BYTES):
        problems.append(
            f"{key}: {path} is not a script forescale can embed in its job (text, at most 1 MiB); for a binary, "
            f"write a short script that runs it from where your image installs it and point {key} at the script"
        )
        return None
    if text is None:
        problems.append(f"{key}: {path} is not UTF-8 text; forescale embeds it in the job as text")
    return text


def _pool_of(config: Config, item: Marked) -> str | None:
    if len(item.path) > 1 and item.path[0] == "pools" and isinstance(item.path[1], int):
        return config.pools[item.path[1]].name
    return None


def _locate(data: Any, path: tuple[str | int, ...]) -> tuple[Any, Any] | None:
    """The container and key of ``path`` in the file's data (None when the file does not set it)."""
    node: Any = data
    for i, part in enumerate(path):
        if isinstance(node, dict):
            if part not in node:
                return None
        elif not (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            return None
        if i == len(path) - 1:
            return node, part
        node = node[part]
    return None
