"""Reading forescale.yaml: the file → ``Config`` (schema in ``autoscaler.core.settings``), plus the checks
`forescale config check` runs beyond the schema. With ``wiring``, the composition root of forescale."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import ConfigError
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.marks import FilePath, marked
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
    """Every file path of the schema (``FilePath``-marked, render-only sections included) relative to ``base``."""
    for item in marked(config, FilePath):
        if isinstance(item.value, Path) and not item.value.is_absolute():
            item.replace(base / item.value)


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


def adapters_in_use(config: Config) -> dict[str, object]:
    """Which implementation of each port the config selects, by the registry tables (`config check`): the metrics
    source, the override store, the notifiers the daemon gets, and each pool's node provider."""
    from autoscaler.notify.registry import NotifierOptions, selected

    json_logs = config.daemon.log_format == "json"
    return {
        "metrics_source": config.metrics.source,
        "override_store": config.overrides.store,
        "notifiers": selected(config, NotifierOptions(console=not json_logs, log_decisions=json_logs)),
        "node_providers": {p.name: p.nodes.provider for p in config.pools if p.nodes.enabled},
    }


def describe_adapters(config: Config) -> str:
    """One line: 'metrics prometheus · overrides file · notify console, slack · nodes ocr=aws_asg'."""
    used = adapters_in_use(config)
    notifiers = used["notifiers"]
    providers = used["node_providers"]
    assert isinstance(notifiers, list) and isinstance(providers, dict)
    parts = [
        f"metrics {used['metrics_source']}",
        f"overrides {used['override_store']}",
        f"notify {', '.join(notifiers) or 'nobody'}",
    ]
    if providers:
        parts.append("nodes " + ", ".join(f"{pool}={kind}" for pool, kind in providers.items()))
    return " · ".join(parts)


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
