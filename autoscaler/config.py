"""forescale.yaml: pydantic models, loading, and errors that name the file, the key and the fix."""

from __future__ import annotations

import difflib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoscaler.durations import Duration
from autoscaler.errors import ConfigError
from autoscaler.jobspec_settings import JobspecSettings
from autoscaler.slack_settings import SlackSettings
from overrides.settings import OverridesSettings
from predictor.settings import PredictorSettings

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrometheusSettings(_Strict):
    """Where the request rates come from."""

    url: str = Field("http://127.0.0.1:9090", description="Prometheus base URL")
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers whose values come from env vars, e.g. {Authorization: PROM_AUTH}",
    )
    timeout: Duration = Field(timedelta(seconds=10), description="per-request timeout")
    step: Duration = Field(timedelta(minutes=1), description="query resolution")
    verify_tls: bool = Field(True, description="verify the server certificate")
    ca_cert: Path | None = Field(None, description="CA bundle to verify Prometheus's certificate (default: system CAs)")

    def headers(self) -> dict[str, str]:
        """Resolve header values from the environment (missing variables are left out)."""
        return {k: os.environ[v] for k, v in self.headers_env.items() if v in os.environ}


class NomadSettings(_Strict):
    """How to reach Nomad. The token is read from the environment, never from the file."""

    address: str = Field(
        default_factory=lambda: os.environ.get("NOMAD_ADDR", "http://127.0.0.1:4646"),
        description="Nomad HTTP API address (default: $NOMAD_ADDR)",
    )
    token_env: str = Field("NOMAD_TOKEN", description="env var holding the ACL token")
    namespace: str = Field("default", description="Nomad namespace of the jobs")
    region: str | None = Field(None, description="Nomad region (default: the agent's)")
    ca_cert: Path | None = Field(None, description="CA bundle to verify Nomad's TLS certificate")
    client_cert: Path | None = Field(None, description="client certificate for mTLS")
    client_key: Path | None = Field(None, description="client key for mTLS")
    verify_tls: bool = Field(True, description="verify Nomad's certificate (keep on)")
    timeout: Duration = Field(timedelta(seconds=10), description="per-request timeout")
    retries: int = Field(3, ge=0, le=10, description="retries on 5xx/timeouts within one tick")
    retry_backoff: Duration = Field(
        timedelta(milliseconds=500), description="wait before the first retry; doubles each retry (max 10s)"
    )
    ui_url: str | None = Field(None, description="Nomad UI base URL, for links in messages")

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None


class NomadGroupRef(_Strict):
    """The Nomad job and task group a pool scales."""

    job: str = Field(..., pattern=NAME_PATTERN, description="Nomad job ID")
    group: str = Field(..., pattern=NAME_PATTERN, description="task group name inside the job")


class PoolConfig(_Strict):
    """One scaled pool of GPU nodes: what it serves, how fast one node is, and its limits."""

    name: str = Field(..., pattern=NAME_PATTERN, description="pool name, [a-z0-9-]")
    query: str = Field(..., min_length=1, description="PromQL giving the pool's request rate in req/s")
    nomad: NomadGroupRef
    capacity_per_node: float = Field(..., gt=0, description="req/s one node sustains, from load tests")
    target_utilization: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of capacity_per_node to plan for; forecast headroom already comes from the "
        "SLO (predictor.slo_unserved_pct), so lower this only if load tests overstate a node",
    )
    min: int = Field(1, ge=0, description="never fewer nodes")
    max: int = Field(..., ge=1, description="never more nodes")
    lead_time: Duration = Field(timedelta(minutes=10), description="time a new node needs to be ready")
    max_step_up: int | None = Field(None, ge=1, description="most nodes added per tick (none: no limit)")
    max_step_down: int | None = Field(None, ge=1, description="most nodes removed per tick (none: no limit)")
    scale_in_cooldown: Duration = Field(
        timedelta(minutes=15), description="no scale-in sooner than this after the last change"
    )
    jobspec: JobspecSettings | None = Field(None, description="how `forescale render` builds the job")

    @model_validator(mode="after")
    def _min_le_max(self) -> PoolConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); lower min or raise max")
        return self


class DaemonSettings(_Strict):
    """`forescale run`: how often to tick and where to serve /metrics and /healthz."""

    interval: Duration = Field(timedelta(minutes=20), description="time between ticks")
    listen_host: str = Field("127.0.0.1", description="address of the /metrics and /healthz server")
    listen_port: int = Field(9464, ge=0, le=65535, description="port of that server (0: pick a free one)")

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("interval must be at least 1s")
        return v


class Config(_Strict):
    """The whole forescale.yaml."""

    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    nomad: NomadSettings = Field(default_factory=NomadSettings)
    audit_log: Path = Field(Path("forescale-audit.jsonl"), description="JSON-lines audit log")
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    predictor: PredictorSettings = Field(default_factory=PredictorSettings)
    overrides: OverridesSettings = Field(default_factory=OverridesSettings)
    slack: SlackSettings | None = Field(None, description="Slack notifier (console when absent)")
    pools: list[PoolConfig] = Field(..., min_length=1, description="the pools to scale")

    source: Path | None = Field(None, exclude=True, description="file this config was loaded from")

    @model_validator(mode="after")
    def _unique_pools(self) -> Config:
        seen: set[str] = set()
        for pool in self.pools:
            if pool.name in seen:
                raise ValueError(f"pool name '{pool.name}' is used twice; pool names must be unique")
            seen.add(pool.name)
        return self

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        known = ", ".join(p.name for p in self.pools)
        raise ConfigError(str(self.source or "config"), [f"unknown pool '{name}' (pools: {known})"])


def load_config(path: str | Path) -> Config:
    """Read and validate forescale.yaml; relative paths inside it are relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found; copy forescale.example.yaml and edit it"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse_config(text, path)


def load_yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse YAML into data plus its node tree (for line numbers); a syntax error names line and column."""
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"not valid YAML{where}: {problem}"]) from None


def parse_config(text: str, path: Path) -> Config:
    data, root_node = load_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping with at least a 'pools:' list"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), _explain(exc, data, root_node)) from None
    config.source = path
    _resolve_paths(config, path.parent)
    return config


def _resolve_paths(config: Config, base: Path) -> None:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    config.audit_log = fix(config.audit_log) or config.audit_log
    config.overrides.path = fix(config.overrides.path) or config.overrides.path
    config.overrides.schedule_file = fix(config.overrides.schedule_file)
    config.prometheus.ca_cert = fix(config.prometheus.ca_cert)
    for attr in ("ca_cert", "client_cert", "client_key"):
        setattr(config.nomad, attr, fix(getattr(config.nomad, attr)))


def _explain(exc: ValidationError, data: dict[str, Any], root: yaml.Node | None) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        key = _key_path(loc, data)
        line = yaml_line(root, loc)
        where = f"{key}" + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_fix_for(err, loc)}")
    return problems


def _key_path(loc: list[Any], data: Any) -> str:
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str) and out.startswith("pools"):
                out += f" ({node['name']})"
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def yaml_line(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the key at ``loc`` in a composed YAML document (the last one found on the way)."""
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_for(loc: list[Any]) -> type[BaseModel] | None:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        ann = field.annotation
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        model = next((a for a in inner if issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) else None


def _fix_for(err: Any, loc: list[Any]) -> str:
    kind = err["type"]
    model = _model_for(loc)
    name = loc[-1] if loc else None
    if kind == "extra_forbidden":
        fields = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(name), fields, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(fields)}"
        return f"unknown key; {hint}"
    desc = ""
    if model is not None and isinstance(name, str) and name in model.model_fields:
        desc = model.model_fields[name].description or ""
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "missing":
        return f"required key is missing; add it ({desc})" if desc else "required key is missing; add it"
    got = err.get("input")
    got_text = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    if kind == "string_pattern_mismatch":
        msg = "use only lowercase letters, digits and '-' (no quotes, spaces or '${')"
    fix = f"; expected: {desc}" if desc else ""
    return f"{msg[0].lower()}{msg[1:]}{got_text}{fix}"
