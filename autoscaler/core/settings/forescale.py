"""The schema of forescale.yaml: pydantic models with a description (the fix) on every key.

Data only: the file is read by ``autoscaler.config.load_config``. The sections owned by a subsystem sit
beside this module (``slack``, ``jobspec``, ``predictor``, ``overrides``).
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ByteSize, Field, PrivateAttr, field_validator, model_validator
from pydantic.config import JsonDict

from autoscaler.core.durations import Duration
from autoscaler.core.errors import UnknownPool
from autoscaler.core.settings.adapters import METRICS_SOURCES
from autoscaler.core.settings.base import NAME_PATTERN, EnvName, HttpUrl, StrictModel
from autoscaler.core.settings.jobspec import JobspecSettings
from autoscaler.core.settings.marks import FilePath, RenderOnly
from autoscaler.core.settings.metrics import MetricsSettings
from autoscaler.core.settings.nodes import NodesSettings
from autoscaler.core.settings.overrides import OverridesSettings
from autoscaler.core.settings.predictor import PredictorSettings
from autoscaler.core.settings.queue import QueueSettings
from autoscaler.core.settings.slack import SlackSettings

NAME_HINT: JsonDict = {"pattern_hint": "use only lowercase letters, digits and '-' (no quotes, spaces or '${')"}
DEFAULT_NOMAD_ADDRESS = "http://127.0.0.1:4646"
PoolMode = Literal["active", "shadow", "off"]
LogFormat = Literal["text", "json"]


def _step_limit(value: Any) -> int | str | None:
    """A per-tick step limit: a node count (``3``) or a share of the current count (``"25%"``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "")):
        return None
    if isinstance(value, bool):
        raise ValueError("write a node count such as 3 or a share of the current count such as 25%")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a step limit is at least 1 node (or a share such as 25%; null for no limit)")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1])
            except ValueError:
                share = math.nan
            if not (0 < share <= 100):
                raise ValueError(f"'{value}' is not a share between 0% and 100% (e.g. 25%)")
            return f"{share:g}%"
        if text.isdigit():
            return _step_limit(int(text))
    raise ValueError(f"'{value}' is not a step limit: write a node count such as 3 or a share such as 25%")


StepLimit = Annotated[int | str | None, BeforeValidator(_step_limit)]


def step_nodes(limit: int | str | None, current: int) -> int | None:
    """Nodes a step limit allows from ``current``: a count as is; a share of ``current`` rounded up, at least 1."""
    if limit is None:
        return None
    if isinstance(limit, int):
        return limit
    share = float(limit.rstrip("%"))
    return max(1, math.ceil(current * share / 100 - 1e-9))


MAX_NODES = 1_000_000  # no pool is larger; a bigger number is a typo (or a unit mix-up)
MAX_RPS_PER_NODE = 10_000_000.0


DEFAULT_INTERVAL = timedelta(minutes=20)
# A pool's scale-in cooldown and window count in ticks when not set: the window remembers the needs of the
# last three ticks (HPA's stabilisation over several recommendations), the cooldown skips one tick. At the
# default interval that is 20m and 1h; a pool ticking every 5m gets 5m and 15m, not a window that no
# scale-in within an hour can pass.
COOLDOWN_TICKS = 1
WINDOW_TICKS = 3


class _Strict(StrictModel):
    """Unknown keys are errors; numbers are finite and never true/false (``settings.base``)."""


class PrometheusSettings(_Strict):
    """Where the request rates come from."""

    url: HttpUrl = Field("http://127.0.0.1:9090", description="Prometheus base URL (http:// or https://)")
    headers_env: dict[str, EnvName] = Field(
        default_factory=dict,
        description="HTTP headers whose values come from env vars, e.g. {Authorization: PROM_AUTH}",
    )
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="total time one query may take: connect, headers and body (a dripping server is cut off)",
    )
    max_response_size: ByteSize = Field(
        ByteSize(16 * 2**20),
        ge=64 * 1024,
        le=4 * 2**30,
        description="largest answer read, e.g. 16MiB (a bigger one is refused unread)",
    )
    step: Duration = Field(timedelta(minutes=1), description="query resolution")
    max_in_flight: int = Field(
        8, ge=1, le=256, description="queries a tick has in flight at once (its pools are decided concurrently)"
    )
    verify_tls: bool = Field(True, description="verify the server certificate")
    ca_cert: Annotated[Path | None, FilePath("read", "prometheus-ca.pem")] = Field(
        None, description="CA bundle to verify Prometheus's certificate (default: system CAs)"
    )

    def headers(self) -> dict[str, str]:
        """Resolve header values from the environment (missing variables are left out)."""
        return {k: os.environ[v] for k, v in self.headers_env.items() if v in os.environ}


class NomadSettings(_Strict):
    """How to reach Nomad. The token is read from the environment, never from the file."""

    address: HttpUrl = Field(
        default_factory=lambda: os.environ.get("NOMAD_ADDR") or DEFAULT_NOMAD_ADDRESS,
        description=f"Nomad HTTP API address, http:// or https:// (default: $NOMAD_ADDR, else {DEFAULT_NOMAD_ADDRESS})",
    )
    token_env: EnvName = Field("NOMAD_TOKEN", description="env var holding the ACL token")
    namespace: str = Field("default", description="Nomad namespace of the jobs")
    region: str | None = Field(None, description="Nomad region (default: the agent's)")
    ca_cert: Annotated[Path | None, FilePath("read", "nomad-ca.pem")] = Field(
        None, description="CA bundle to verify Nomad's TLS certificate"
    )
    client_cert: Annotated[Path | None, FilePath("private", "nomad-client-cert.pem", "NOMAD_CLIENT_CERT")] = Field(
        None, description="client certificate for mTLS"
    )
    client_key: Annotated[Path | None, FilePath("private", "nomad-client-key.pem", "NOMAD_CLIENT_KEY")] = Field(
        None, description="client key for mTLS"
    )
    verify_tls: bool = Field(True, description="verify Nomad's certificate (keep on)")
    timeout: Duration = Field(
        timedelta(seconds=10),
        description="total time one request may take: connect, headers and body (a dripping server is cut off)",
    )
    max_response_size: ByteSize = Field(
        ByteSize(64 * 2**20),
        ge=64 * 1024,
        le=4 * 2**30,
        description="largest answer read, e.g. 64MiB (a bigger one is refused unread)",
    )
    max_in_flight: int = Field(
        8, ge=1, le=256, description="requests a tick has in flight at once (its pools are decided concurrently)"
    )
    retries: int = Field(3, ge=0, le=10, description="retries on 5xx/timeouts within one tick")
    retry_backoff: Duration = Field(
        timedelta(milliseconds=500), description="wait before the first retry; doubles each retry (max 10s)"
    )
    ui_url: HttpUrl | None = Field(None, description="Nomad UI base URL (http:// or https://), for links in messages")

    _address_origin: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _remember_origin(self) -> NomadSettings:
        if "address" in self.model_fields_set:
            self._address_origin = "nomad.address in the config"
        elif os.environ.get("NOMAD_ADDR"):
            self._address_origin = "$NOMAD_ADDR"
        else:
            self._address_origin = "the default: neither nomad.address nor $NOMAD_ADDR is set"
        return self

    def set_address_origin(self, origin: str) -> None:
        self._address_origin = origin

    @property
    def address_origin(self) -> str:
        """Where ``address`` came from, for error messages: the config, ``$NOMAD_ADDR`` or the default."""
        return self._address_origin or "nomad.address"

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None


class NomadGroupRef(_Strict):
    """The Nomad job and task group a pool scales."""

    job: str = Field(..., pattern=NAME_PATTERN, json_schema_extra=NAME_HINT, description="Nomad job ID")
    group: str = Field(
        ..., pattern=NAME_PATTERN, json_schema_extra=NAME_HINT, description="task group name inside the job"
    )


class GuardSettings(_Strict):
    """The fast guard between ticks: reads only the current rate and may scale up at once (never down)."""

    enabled: bool = Field(
        True, description="check the current rate every `interval` between ticks and scale up when it exceeds capacity"
    )
    interval: Duration = Field(
        timedelta(minutes=2), description="time between guard checks (a few minutes: short against the tick)"
    )
    query: str | None = Field(
        None,
        min_length=1,
        description="PromQL of the short-window rate the guard acts on, e.g. sum(rate(x[1m])) beside the pool's "
        "sum(rate(x[5m])); default: the pool's query (its latest sample at the pool's step)",
    )

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("guard.interval must be at least 1s")
        return v


class PoolConfig(_Strict):
    """One scaled pool of GPU nodes: what it serves, how fast one node is, and its limits."""

    name: str = Field(..., pattern=NAME_PATTERN, json_schema_extra=NAME_HINT, description="pool name, [a-z0-9-]")
    query: str = Field(
        ...,
        min_length=1,
        description="the pool's request rate in req/s, in the metrics source's query language (metrics.source; "
        "PromQL for prometheus)",
    )
    nomad: NomadGroupRef
    capacity_per_node: float = Field(
        ..., gt=0, le=MAX_RPS_PER_NODE, description="req/s one node sustains, from load tests"
    )
    target_utilization: float = Field(
        1.0,
        gt=0,
        le=1,
        description="fraction of capacity_per_node to plan for; forecast headroom already comes from the "
        "SLO (predictor.slo_unserved_pct), so lower this only if load tests overstate a node",
    )
    min: int = Field(1, ge=0, le=MAX_NODES, description="never fewer nodes")
    max: int = Field(..., ge=1, le=MAX_NODES, description="never more nodes")
    lead_time: Duration = Field(
        timedelta(minutes=10),
        description="time a new node needs to be ready, or 'auto': the p95 of observed boots (nodes.min_boots "
        "of them; until then lead_time_initial)",
    )
    lead_time_auto: bool = Field(False, description="set by 'lead_time: auto' (learn the lead time from boots)")
    mode: PoolMode = Field(
        "active",
        description="active: scale Nomad; shadow: decide, audit, notify and export metrics as 'would scale' "
        "but never change Nomad or machines; off: not evaluated",
    )
    max_step_up: StepLimit = Field(
        None, description="most nodes added per tick: a count (3) or a share of the current count (50%); null: no limit"
    )
    max_step_down: StepLimit = Field(
        "25%",
        description="most nodes removed per tick: a count (3) or a share of the current count, rounded up, at "
        "least 1 (default 25%); null: no limit",
    )
    scale_in_cooldown: Duration = Field(
        COOLDOWN_TICKS * DEFAULT_INTERVAL,
        description="no scale-in sooner than this after the last change (default: one daemon.interval, 20m at "
        "the default interval); 0 turns it off (a value shorter than daemon.interval only affects extra "
        "ticks: `config check` warns)",
    )
    scale_in_window: Duration = Field(
        WINDOW_TICKS * DEFAULT_INTERVAL,
        description="scale in only to the highest count the metrics called for during this window "
        "(Kubernetes HPA's stabilizationWindowSeconds; default: three daemon.intervals, 1h at the default "
        "interval); 0 turns it off",
    )
    guard: GuardSettings = Field(
        default_factory=GuardSettings, description="the fast guard between ticks (scale-up only)"
    )
    queued_warning_after: Duration | None = Field(
        None,
        description="warn once when Nomad keeps some of the pool's workers queued (no eligible node to place "
        "them on) for longer than this; default: twice lead_time, since new nodes are queued while they boot",
    )
    jobspec: Annotated[JobspecSettings | None, RenderOnly()] = Field(
        None, description="how `forescale render` builds the job"
    )
    nodes: NodesSettings = Field(
        default_factory=NodesSettings, description="who provisions the pool's machines (docs/nodes.md)"
    )
    queue: QueueSettings | None = Field(
        None, description="the workers consume a queue: scale on its backlog too, with a latency SLO (docs/queues.md)"
    )

    @model_validator(mode="before")
    @classmethod
    def _lead_time_auto(cls, data: Any) -> Any:
        """``lead_time: auto`` → learn it (``lead_time_auto``); ``lead_time_initial`` (default 10m) until then."""
        if not isinstance(data, dict):
            return data
        initial = data.get("lead_time_initial")
        if isinstance(data.get("lead_time"), str) and data["lead_time"].strip().lower() == "auto":
            data = {k: v for k, v in data.items() if k not in ("lead_time", "lead_time_initial")}
            data["lead_time_auto"] = True
            data["lead_time"] = initial if initial is not None else "10m"
        elif initial is not None:
            raise ValueError("lead_time_initial is only used with 'lead_time: auto'; remove it or set lead_time: auto")
        return data

    def step_up_nodes(self, current: int) -> int | None:
        """Most nodes one tick may add from ``current`` (None: no limit)."""
        return step_nodes(self.max_step_up, current)

    def step_down_nodes(self, current: int) -> int | None:
        """Most nodes one tick may remove from ``current`` (None: no limit)."""
        return step_nodes(self.max_step_down, current)

    @model_validator(mode="after")
    def _min_le_max(self) -> PoolConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); lower min or raise max")
        return self

    def queued_warning_delay(self, lead: timedelta | None = None) -> timedelta:
        """How long workers may stay queued before the "cannot be placed" warning (default 2 × the lead time the
        pool plans with: ``lead``, resolved by ``ports.LeadTimes``; else the configured one)."""
        if self.queued_warning_after is not None:
            return self.queued_warning_after
        return 2 * (lead if lead is not None else self.lead_time)


class DaemonSettings(_Strict):
    """`forescale run`: how often to tick and where to serve /metrics and /healthz."""

    interval: Duration = Field(DEFAULT_INTERVAL, description="time between ticks")
    tick_deadline: Duration | None = Field(
        None,
        description="a tick's time limit (default: half the interval); pools not decided by then are reported "
        "failed and left as they are; /healthz fails while a tick runs past it",
    )
    stop_grace: Duration = Field(
        timedelta(seconds=5), description="on SIGTERM, the running tick has this long to finish its calls"
    )
    listen_host: str = Field("127.0.0.1", description="address of the /metrics and /healthz server")
    listen_port: int = Field(9464, ge=0, le=65535, description="port of that server (0: pick a free one)")
    log_format: LogFormat = Field("text", description="daemon log lines: text, or json (one object per line)")
    override_poll: Duration = Field(
        timedelta(seconds=2), description="how often the daemon looks for override store changes (file store)"
    )

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("interval must be at least 1s")
        return v

    @field_validator("override_poll")
    @classmethod
    def _poll(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0.1:
            raise ValueError("override_poll must be at least 100ms (e.g. 2s)")
        return v

    @model_validator(mode="after")
    def _deadline_within_interval(self) -> DaemonSettings:
        if self.tick_deadline is not None and not timedelta(seconds=1) <= self.tick_deadline <= self.interval:
            raise ValueError("tick_deadline must be between 1s and the interval (default: half the interval)")
        return self

    def deadline(self) -> timedelta:
        """The tick deadline: ``tick_deadline``, or half the interval."""
        return self.tick_deadline if self.tick_deadline is not None else self.interval / 2


class LeaderSettings(_Strict):
    """Leader election: only one forescale acts (scales) at a time, the others stand by (docs/operations.md)."""

    enabled: bool = Field(
        True,
        description="hold a Nomad Variables lock while acting (needs Nomad >= 1.7 and variables write on "
        "lock_path); false only for a single instance",
    )
    lock_path: str = Field(
        "forescale/leader",
        pattern=r"^[A-Za-z0-9_~/-]{1,128}$",
        json_schema_extra={"pattern_hint": "a Nomad variable path: letters, digits, '-', '_', '~' and '/'"},
        description="Nomad variable that holds the lock (its Items name the holder)",
    )
    ttl: Duration = Field(
        timedelta(seconds=30), description="lock TTL (10s..24h); renewed every ttl/3, lost after 2 x ttl"
    )
    lock_delay: Duration = Field(
        timedelta(seconds=15), description="after an expiry, Nomad keeps the lock this long before another takes it"
    )
    lock_file: Annotated[Path | None, FilePath("state", "forescale-audit.jsonl.lock")] = Field(
        None, description="local flock against overlapping runs on one host (default: <audit_log>.lock)"
    )

    @field_validator("ttl")
    @classmethod
    def _ttl_bounds(cls, v: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= v <= timedelta(hours=24):
            raise ValueError("ttl must be between 10s and 24h (Nomad's bounds)")
        return v

    @field_validator("lock_path")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v.strip("/") == "nomad" or v.startswith("nomad/"):
            raise ValueError("paths under nomad/ are reserved by Nomad; use e.g. forescale/leader")
        return v.strip("/")


def _same_group(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Group keys are (kind, name, scope…); an empty scope (e.g. the default AWS region) matches any."""
    if a[:2] != b[:2]:
        return False
    return all(x == y or not x or not y for x, y in zip(a[2:], b[2:], strict=False))


class Config(_Strict):
    """The whole forescale.yaml."""

    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="which metrics source reads the pools' queries"
    )
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    nomad: NomadSettings = Field(default_factory=NomadSettings)
    audit_log: Annotated[Path, FilePath("state", "forescale-audit.jsonl")] = Field(
        Path("forescale-audit.jsonl"), description="JSON-lines audit log"
    )
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    leader: LeaderSettings = Field(default_factory=LeaderSettings)
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

    @model_validator(mode="after")
    def _one_pool_per_group(self) -> Config:
        """Two pools retiring machines of one group would each count the other's machines as theirs."""
        owners: list[tuple[str, tuple[str, ...]]] = []
        for pool in self.pools:
            section = pool.nodes.section()
            if section is None or pool.mode == "off":
                continue
            key = section.group_key()
            for other, other_key in owners:
                if _same_group(key, other_key):
                    raise ValueError(
                        f"pools '{other}' and '{pool.name}' both manage the machines of {' '.join(key[:2])}: one "
                        "group (Auto Scaling group, command) per pool — give each pool its own group, or set "
                        "mode: off on one"
                    )
            owners.append((pool.name, key))
        return self

    @model_validator(mode="after")
    def _source_section(self) -> Config:
        section = METRICS_SOURCES[self.metrics.source].section
        if section is not None and getattr(self, section, None) is None:
            raise ValueError(f"metrics.source is {self.metrics.source} but there is no '{section}:' section; add it")
        return self

    @model_validator(mode="after")
    def _per_tick_defaults(self) -> Config:
        """A pool's unset scale-in cooldown and window follow daemon.interval (``COOLDOWN_TICKS``,
        ``WINDOW_TICKS``). They stay unset, so validating again with another interval derives them anew."""
        tick = self.daemon.interval
        derived = {"scale_in_cooldown": COOLDOWN_TICKS * tick, "scale_in_window": WINDOW_TICKS * tick}
        pools = []
        for pool in self.pools:
            update = {k: v for k, v in derived.items() if k not in pool.model_fields_set and getattr(pool, k) != v}
            if update:
                pool = pool.model_copy(update=update)
                pool.model_fields_set.difference_update(update)  # still unset: derived from the interval
            pools.append(pool)
        self.__dict__["pools"] = pools
        return self

    def with_interval(self, interval: timedelta) -> Config:
        """This config ticking every ``interval`` (pool defaults that follow the interval follow it)."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        daemon = self.daemon.model_copy(update={"interval": interval})
        return type(self).model_validate({**fields, "daemon": daemon})

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise UnknownPool(name, [p.name for p in self.pools], str(self.source or "the config"))
