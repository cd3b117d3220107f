"""The composition root: a Config becomes real parts (metrics source, Nomad, overrides, notifiers, audit log).

``Runtime`` holds one process's shared parts (one Nomad client, the override store, the audit log, leadership)
and builds a tick's parts and the daemon from them. Every ``build_*`` here picks an implementation of a port
(``autoscaler.core.ports``) from the config — through the adapter tables (``autoscaler.sources.registry``,
``autoscaler.notify.registry``, ``overrides.registry``) where there is a choice; nothing else in forescale
decides which implementation to use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property, partial

from autoscaler.core.clock import SystemClock
from autoscaler.core.errors import ConfigError
from autoscaler.core.ports import (
    Clock,
    History,
    LeaderLock,
    LeadTimes,
    MetricsSource,
    NodeProvider,
    Notifier,
    OverrideStore,
)
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.daemon.leader import Leadership, LocalLock
from autoscaler.daemon.service import Daemon, TickRecorder
from autoscaler.daemon.watch import OverrideWatcher
from autoscaler.nomad.client import NomadClient
from autoscaler.nomad.lock import NomadLock
from autoscaler.notify import metrics as notify_metrics
from autoscaler.notify import registry as notify_registry
from autoscaler.notify.audit import AuditLog
from autoscaler.notify.metrics import METRICS, NotifyMetrics
from autoscaler.notify.registry import NotifierOptions
from autoscaler.policy.nodes import NodeMemory, NodeReconciler, PoolLeadTimes
from autoscaler.policy.placement import PlacementWatch
from autoscaler.policy.runner import FairOrder
from autoscaler.policy.tick import ActionHistory, TickDeps, horizon_seconds
from autoscaler.sources.registry import build_metrics_source
from autoscaler.targets.nomad import NomadTarget
from overrides import registry as overrides_registry
from overrides.manual import PoolRecords
from overrides.provider import Overrides
from overrides.schedule import schedule_for, schedule_transitions
from predictor.base import Forecast, Predictor

log = logging.getLogger("forescale.wiring")


class Predictors:
    """One model per pool for the life of the process, calibrated for the lead time the pool plans with now (a new
    one when that changes): a seasonal model keeps its fit between refits (``predictor.refit_every``). Imported on
    first use (`override`, `schedule` and `config` commands build a tick's parts without ever forecasting). Its
    forecasts take one of ``fits`` (``FitSlots``)."""

    def __init__(self, config: Config, lead_times: LeadTimes, clock: Clock) -> None:
        self.config, self.lead_times, self.clock = config, lead_times, clock
        self.fits = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self._models: dict[str, tuple[float, Predictor]] = {}
        self._lock = threading.Lock()

    def __call__(self, pool: PoolConfig) -> Predictor:
        from predictor.factory import make_predictor

        lead_s = self.lead_times.of(pool, self.clock.now()).seconds
        with self._lock:
            known = self._models.get(pool.name)
            if known is None or known[0] != lead_s:
                known = (lead_s, make_predictor(self.config.predictor, pool, lead_s))
                self._models[pool.name] = known
        return FitSlots(known[1], self.fits)


class FitSlots:
    """A predictor whose forecasts take one of a few slots (one per core). A tick's pools overlap their calls to
    Prometheus and Nomad; their fits are CPU work that more threads than cores only slow down — and each fit in
    flight holds its working arrays (tens of MB for 14 days of 1-minute history)."""

    def __init__(self, inner: Predictor, slots: threading.Semaphore) -> None:
        self.inner = inner
        self.slots = slots
        self.name = inner.name

    def history_seconds(self) -> float:
        return self.inner.history_seconds()

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        with self.slots:
            return self.inner.forecast(history, now, horizon_s)


class Runtime:
    """One process's shared parts, built once from the config and handed to whatever runs: the single Nomad client
    (the target, the node directory, the Variables store and the leader lock all use it), the override store, the
    audit log (written as the tick's trail, read back as its history) and leadership. Each part is built on first
    use: `plan` never builds a lock, a file store never a Nomad client.

    ``shadow`` (``run --dry-run``) puts every pool in shadow for this process.
    """

    def __init__(
        self, config: Config, clock: Clock | None = None, *, shadow: bool = False, history_cache: bool = False
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.shadow = shadow
        self.history_cache = history_cache  # `tick` (cron): keep the pools' samples in metrics.history_cache

    @cached_property
    def metrics(self) -> MetricsSource:
        """The configured source, read incrementally: each query's window whole once, then only what is new (the
        daemon keeps the samples in memory; a one-shot `tick` in ``metrics.history_cache`` when it is set)."""
        from autoscaler.sources.incremental import IncrementalSource, SeriesFiles

        config = self.config
        where = config.metrics.history_cache if self.history_cache else None
        return IncrementalSource(
            build_metrics_source(config),
            max_gap_s=3 * config.daemon.interval.total_seconds(),  # kept samples older than that: read whole again
            store=SeriesFiles(where) if where is not None else None,
        )

    @cached_property
    def predictors(self) -> Predictors:
        """Each pool's model, kept for the process (``Predictors``)."""
        return Predictors(self.config, self.lead_times, self.clock)

    @cached_property
    def nomad(self) -> NomadClient:
        """The one Nomad client of this process."""
        return NomadClient(self.config.nomad)

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log: the tick's trail (``ports.AuditTrail``) and the history it reads back (``ports.History``)."""
        config = self.config
        if config.audit_log.is_dir():
            raise ConfigError(
                str(config.source or "the config"),
                [
                    f"audit_log ({config.audit_log}): is a directory; point it at a file, e.g. "
                    f"{config.audit_log / 'forescale-audit.jsonl'}"
                ],
            )
        return AuditLog(config.audit_log)

    @property
    def history(self) -> History:
        return self.audit

    @cached_property
    def store(self) -> OverrideStore[PoolRecords]:
        """The configured manual store (a Nomad Variables store uses the one client)."""
        return overrides_registry.build_store(self.config, lambda: self.nomad)

    @cached_property
    def nodes(self) -> NodeReconciler | None:
        """The node step for pools with a provider (its memory read back from the audit log)."""
        return build_nodes(self.config, self.nomad, self.clock, self.audit)

    @cached_property
    def lead_times(self) -> LeadTimes:
        """Every pool's one lead time (``ports.LeadTimes``): learned from the node step's boots, else configured."""
        return self.nodes.lead_times if self.nodes is not None else PoolLeadTimes()

    @cached_property
    def overrides(self) -> Overrides:
        """Schedule rules + the store; a rule's pre-warming follows the pool's lead time when it is evaluated."""
        return build_provider(self.config, self.store, self.lead_times, self.clock)

    @cached_property
    def leadership(self) -> Leadership:
        """The locks this process holds while acting (``build_leadership``), on the one client."""
        return build_leadership(self.config, self.nomad, shadow=self.shadow)

    def tick_deps(self, notifiers: Sequence[Notifier] | None = None, *, gated: bool = False) -> TickDeps:
        """The real parts of a tick (default notifiers: ``build_notifiers``). ``gated``: every write asks the
        leader gate first (``leadership.may_act``), as `tick` and the daemon need; `plan` is not gated."""
        config, clock, history = self.config, self.clock, self.history
        longest = max((max(p.scale_in_cooldown, p.scale_in_window) for p in config.pools), default=timedelta(0))
        actions = ActionHistory(keep=max(longest, timedelta(hours=1)))
        since = clock.now() - longest - timedelta(minutes=1)
        for action in history.recent_actions(since):
            actions.add(action)
        for need in history.recent_needs(since):
            actions.add_need(need)
        for name, (at, decision) in history.last_forecasts(clock.now() - 2 * config.daemon.interval).items():
            if any(p.name == name for p in config.pools):  # the guard's headroom and a degraded tick's fallback
                pool = config.pool(name)
                lead_s = self.lead_times.of(pool, clock.now()).seconds
                actions.remember_forecast(name, at, dict(decision), horizon_seconds(config, pool, lead_s))
        placement = PlacementWatch()
        placement.replay(history.placement_history())  # queued episodes survive between cron runs
        late = history.late_pools(clock.now() - 3 * config.daemon.interval)  # a cron tick's deadline skips go first
        return TickDeps(
            config=config,
            metrics=self.metrics,
            predictor_for=self.predictors,
            target=NomadTarget(config.nomad, client=self.nomad),
            overrides=self.overrides,
            clock=clock,
            notifiers=build_notifiers(config) if notifiers is None else notifiers,
            audit=self.audit,
            history=actions,
            nodes=self.nodes,
            lead_times=self.lead_times,
            placement=placement,
            shadow=self.shadow,
            deadline_s=config.daemon.deadline().total_seconds(),
            may_act=self.leadership.may_act if gated else None,
            workers=tick_workers(config),
            fair=FairOrder(late),
        )

    def daemon(self, notifiers: Sequence[Notifier] | None = None) -> Daemon:
        """The daemon with its extra ticks at schedule-rule boundaries, the override store watch, the notifiers'
        metrics and leader election; its recorder is the tick's first notifier (health sees a tick before Slack
        does) and its leader gate is in the tick's parts."""
        config = self.config
        transitions = partial(self._transitions) if config.overrides.schedule_file else None
        watcher = OverrideWatcher(
            self.store,
            [p.name for p in config.pools if p.mode != "off"],
            self.clock,
            poll_s=config.daemon.override_poll.total_seconds(),
        )
        recorder = TickRecorder()
        told = build_notifiers(config) if notifiers is None else notifiers
        return Daemon(
            self.tick_deps([recorder, *told], gated=True),
            transitions=transitions,
            extra_registries=[notify_metrics.REGISTRY],
            watcher=watcher,
            leadership=self.leadership,
            recorder=recorder,
        )

    def _transitions(self, start: datetime, end: datetime) -> list[datetime]:
        """Where the schedule's floors and ceilings start and end, with the leads in force now."""
        return schedule_transitions(self.overrides.current_schedule(start), start, end)


def build_runtime(
    config: Config, clock: Clock | None = None, *, shadow: bool = False, history_cache: bool = False
) -> Runtime:
    """This process's shared parts (``Runtime``); ``shadow``: every pool in shadow (``run --dry-run``);
    ``history_cache``: a one-shot `tick` keeps the pools' samples in ``metrics.history_cache`` (when set)."""
    return Runtime(config, clock, shadow=shadow, history_cache=history_cache)


def tick_workers(config: Config) -> int:
    """Pools a tick works on at once: enough to keep both servers at their in-flight limits (a pool waits on one
    of them, or computes its forecast), never more than there are pools."""
    return max(1, min(len(config.pools), config.prometheus.max_in_flight + config.nomad.max_in_flight))


def build_deps(
    config: Config,
    clock: Clock | None = None,
    notifiers: list[Notifier] | None = None,
    *,
    shadow: bool = False,
) -> TickDeps:
    """The real parts of one tick of a new process (`plan`, tests); ``shadow`` (``run --dry-run``) puts every
    pool in shadow. Not gated by leadership: `tick` and the daemon use ``Runtime`` for that."""
    return build_runtime(config, clock, shadow=shadow).tick_deps(notifiers)


def build_node_provider(pool: PoolConfig) -> NodeProvider | None:
    """The pool's ``nodes.provider`` (None for a fixed fleet), from the providers' table."""
    from autoscaler.nodes.registry import build_node_provider as build

    return build(pool)


def build_nodes(config: Config, client: NomadClient, clock: Clock, audit: AuditLog) -> NodeReconciler | None:
    """The node step for pools with a provider; its memory (boots, reported problems) from the audit log."""
    providers = {p.name: prov for p in config.pools if (prov := build_node_provider(p)) is not None}
    learning = any(p.lead_time_auto for p in config.pools)
    if not providers and not learning:
        return None
    from autoscaler.nodes.directory import NomadNodeDirectory

    window = max((p.nodes.boot_window for p in config.pools), default=timedelta(days=7))
    boots, reported = audit.node_history(clock.now() - window)
    asks, backoffs = audit.node_state(clock.now() - timedelta(days=1))
    memory = NodeMemory(reported=reported, last_ask=asks, backoff=backoffs)
    memory.add_boots(boots)
    return NodeReconciler(providers, NomadNodeDirectory(client), clock, memory)


def build_daemon(
    config: Config, clock: Clock | None = None, *, dry_run: bool = False, notifiers: list[Notifier] | None = None
) -> Daemon:
    """The daemon (``Runtime.daemon``). ``dry_run``: every pool in shadow (decided, audited, posted and exported
    as "would scale"; Nomad untouched)."""
    return build_runtime(config, clock, shadow=dry_run).daemon(notifiers)


def build_leadership(config: Config, client: NomadClient | None = None, *, shadow: bool = False) -> Leadership:
    """The locks held while acting: a local flock, and the Nomad Variables lock when leader.enabled. A run that
    may not write to Nomad (shadow: ``--dry-run``, or every pool ``mode: shadow``/``off``) holds no lock at all,
    not even the local one, so a shadow trial never silences the real forescale on the same host."""
    settings = config.leader
    ttl = settings.ttl.total_seconds()
    writes = not shadow and any(p.mode == "active" for p in config.pools)
    if not writes:
        return Leadership([], renew_every_s=ttl / 3, retry_every_s=max(1.0, ttl / 2), shadow=True)
    lock_file = settings.lock_file or config.audit_log.with_name(config.audit_log.name + ".lock")
    locks: list[LeaderLock] = [LocalLock(lock_file)]
    if settings.enabled:
        client = client or NomadClient(config.nomad)
        locks.append(NomadLock(client, settings.lock_path, settings.ttl, settings.lock_delay))
    return Leadership(locks, renew_every_s=ttl / 3, retry_every_s=max(1.0, ttl / 2))


def build_store(config: Config) -> OverrideStore[PoolRecords]:
    """The configured manual store (``overrides.store``: file by default, or Nomad Variables)."""
    return overrides_registry.build_store(config)


def build_provider(
    config: Config,
    store: OverrideStore[PoolRecords] | None = None,
    lead_times: LeadTimes | None = None,
    clock: Clock | None = None,
) -> Overrides:
    """Schedule rules + the configured store; a rule without its own ``lead`` pre-warms by the pool's lead time as
    ``lead_times`` resolves it when the rule is evaluated (default: the configured one). Raises ConfigError for an
    invalid schedule file."""
    pools = {p.name: p for p in config.pools}
    resolve = lead_times or PoolLeadTimes()

    def lead_for(pool: str, now: datetime) -> timedelta:
        return timedelta(seconds=resolve.of(pools[pool], now).seconds)

    return Overrides(
        schedule_for(config),
        store or build_store(config),
        list(pools),
        {p.name: p.lead_time for p in config.pools},
        config.overrides.max_duration,
        lead_for=lead_for,
    )


def build_notifiers(
    config: Config,
    console: bool = True,
    *,
    clock: Clock | None = None,
    metrics: NotifyMetrics = METRICS,
    log_decisions: bool = False,
) -> list[Notifier]:
    """Console (unless ``console=False``), decisions as log records (``log_decisions``: the daemon's JSON logs)
    plus Slack when ``slack:`` is configured (the notifier table: ``autoscaler.notify.registry``).

    A Slack section that cannot be used (e.g. the token env var is empty) is logged with the fix and
    counted (``forescale_notifier_errors_total{error="not_configured"}``), but never stops scaling.
    """
    options = NotifierOptions(console=console, log_decisions=log_decisions, clock=clock, metrics=metrics)
    return notify_registry.build_notifiers(config, options)
