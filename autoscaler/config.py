"""Reading forescale.yaml: the file → ``Config`` (schema in ``autoscaler.core.settings``), plus the checks
`forescale config check` runs beyond the schema. With ``wiring``, the composition root of forescale."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.secrets import configured_secrets
from autoscaler.core.text import remember_secrets
from autoscaler.core.yamlfile import load_model, load_yaml, read_text


def load_config(path: str | Path) -> Config:
    """Read and validate forescale.yaml; relative paths inside it are relative to the file."""
    path = Path(path)
    text = read_text(path, "copy forescale.example.yaml and edit it")
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    data, root_node = load_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping with at least a 'pools:' list"])
    config = load_model(Config, data, root_node, path)
    config.source = path
    if "address" in config.nomad.model_fields_set:
        config.nomad.set_address_origin(f"nomad.address in {path}")
    _resolve_paths(config, path.parent)
    remember_secrets(configured_secrets(config))  # masked in every output of this process from now on
    return config


def _resolve_paths(config: Config, base: Path) -> None:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    config.audit_log = fix(config.audit_log) or config.audit_log
    config.overrides.path = fix(config.overrides.path) or config.overrides.path
    config.overrides.schedule_file = fix(config.overrides.schedule_file)
    config.leader.lock_file = fix(config.leader.lock_file)
    config.prometheus.ca_cert = fix(config.prometheus.ca_cert)
    for attr in ("ca_cert", "client_cert", "client_key"):
        setattr(config.nomad, attr, fix(getattr(config.nomad, attr)))
    for pool in config.pools:
        if pool.nodes.command is not None:
            pool.nodes.command.path = fix(pool.nodes.command.path) or pool.nodes.command.path
        if pool.jobspec is not None:
            pool.jobspec.nomad_client_config = fix(pool.jobspec.nomad_client_config)


def extra_checks(config: Config) -> list[str]:
    """Problems the schema cannot see (e.g. contradictory schedule rules); one line each with the fix."""
    from autoscaler.jobspec.checks import check_config as jobspec_checks
    from autoscaler.nodes.checks import check_config as node_checks
    from overrides.checks import check_config as override_checks

    return _path_checks(config) + override_checks(config) + jobspec_checks(config) + node_checks(config)


def environment_checks(config: Config) -> list[str]:
    """What this process's environment lacks for the config to work as written: a ``slack:`` section whose
    secret env var is unset (the daemon would log the error and run console-only)."""
    from autoscaler.core.errors import NotifierError

    if config.slack is None:
        return []
    try:
        config.slack.resolve()
    except NotifierError as exc:
        return [f"slack: {exc} (without it forescale runs console-only; `config check --no-env` checks the file only)"]
    return []


def _path_checks(config: Config) -> list[str]:
    """Files forescale writes must be files: a directory there fails at the first tick, not in `config check`."""
    files = [("audit_log", config.audit_log, "forescale-audit.jsonl")]
    if config.overrides.store == "file":
        files.append(("overrides.path", config.overrides.path, "forescale-overrides.json"))
    return [
        f"{key} ({path}): is a directory; point it at a file, e.g. {path / example}"
        for key, path, example in files
        if path.is_dir()
    ]


def config_warnings(config: Config) -> list[str]:
    """Settings that are valid but probably not what was meant (printed by `config check`, exit 0)."""
    tick = config.daemon.interval
    every = format_duration(tick)
    out = []
    for i, pool in enumerate(config.pools):
        key = f"pools[{i}] ({pool.name})"
        cooldown = pool.scale_in_cooldown
        if timedelta(0) < cooldown < tick:
            out.append(
                f"{key}.scale_in_cooldown: {format_duration(cooldown)} is shorter than daemon.interval ({every}), "
                "so it never holds back a regular tick (only guard and schedule ticks); set it to at least "
                f"{every}, or to 0s to turn it off (scale_in_window already stabilises scale-in)"
            )
        window = pool.scale_in_window
        if timedelta(0) < window <= tick:
            out.append(
                f"{key}.scale_in_window: {format_duration(window)} holds no earlier tick's need (ticks are "
                f"{every} apart), so it does not stabilise scale-in; make it a few ticks long (default: three) or 0s"
            )
        if pool.guard.enabled and pool.guard.interval >= tick:
            out.append(
                f"{key}.guard.interval: {format_duration(pool.guard.interval)} is not shorter than "
                f"daemon.interval ({every}): the guard never runs between ticks; make it a few minutes"
            )
    return out
