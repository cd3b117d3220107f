"""The composition root: a Config becomes real parts (Prometheus, Nomad, overrides, notifiers, audit log).

Every ``build_*`` here picks an implementation of a port (``autoscaler.core.ports``) from the config; nothing
else in forescale decides which implementation to use.
"""

from __future__ import annotations

import atexit
import logging
from datetime import timedelta
from functools import partial

from autoscaler.core.clock import SystemClock
from autoscaler.core.errors import ConfigError, NotifierError
from autoscaler.core.ports import Clock, LeaderLock, NodeProvider, Notifier, OverrideProvider, OverrideStore
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.daemon.leader import Leadership, LocalLock
from autoscaler.daemon.service import Daemon
from autoscaler.daemon.watch import OverrideWatcher
from autoscaler.nomad.client import NomadClient
from autoscaler.nomad.lock import NomadLock
from autoscaler.notify import metrics as notify_metrics
from autoscaler.notify.audit import AuditLog
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.notify.metrics import METRICS, NotifyMetrics
from autoscaler.policy.nodes import NodeMemory, NodeReconciler
from autoscaler.policy.placement import PlacementWatch
from autoscaler.policy.tick import ActionHistory, TickDeps, horizon_seconds
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.targets.nomad import NomadTarget
from overrides.manual import PoolRecords
from overrides.nomad_store import NomadVariablesStore
from overrides.provider import Overrides
from overrides.schedule import schedule_for, transition_times
from overrides.store import FileStore
from predictor.base import Predictor

log = logging.getLogger("forescale.wiring")


def _predictor(config: Config, pool: PoolConfig) -> Predictor:
    """The pool's model; imported on first use (scikit-learn costs seconds: `override`, `schedule` and `config`
    commands build a tick's parts without ever forecasting)."""
    from predictor.factory import make_predictor

    return make_predictor(config.predictor, pool)


def build_deps(
    config: Config,
    clock: Clock | None = None,
    notifiers: list[Notifier] | None = None,
    *,
    shadow: bool = False,
    store: OverrideStore[PoolRecords] | None = None,
) -> TickDeps:
    """The real parts of a tick; ``shadow`` (``run --dry-run``) puts every pool in shadow for this process."""
    clock = clock or SystemClock()
    audit = AuditLog(config.audit_log)
    if config.audit_log.is_dir():
        raise ConfigError(
            str(config.source or "the config"),
            [f"audit_log ({config.audit_log}): is a directory; point it at a file, e.g. "
             f"{config.audit_log / 'forescale-audit.jsonl'}"],
        )
    longest = max((max(p.scale_in_cooldown, p.scale_in_window) for p in config.pools), default=timedelta(0))
    history = ActionHistory(keep=max(longest, timedelta(hours=1)))
    since = clock.now() - longest - timedelta(minutes=1)
    for action in audit.recent_actions(since):
        history.add(action)
    for need in audit.recent_needs(since):
        history.add_need(need)
    for name, (at, decision) in audit.last_forecasts(clock.now() - 2 * config.daemon.interval).items():
        if any(p.name == name for p in config.pools):  # the guard's headroom and a degraded tick's fallback
            history.remember_forecast(name, at, decision, horizon_seconds(config, config.pool(name)))
    client = NomadClient(config.nomad)
    placement = PlacementWatch()
    placement.replay(audit.placement_history())  # queued episodes survive between cron runs
    return TickDeps(
        config=config,
        metrics=PrometheusSource(config.prometheus),
        predictor_for=partial(_predictor, config),
        target=NomadTarget(config.nomad, client=client),
        overrides=build_provider(config, store),
        clock=clock,
        notifiers=build_notifiers(config) if notifiers is None else notifiers,
        audit=audit,
        history=history,
        nodes=build_nodes(config, client, clock, audit),
        placement=placement,
        shadow=shadow,
        deadline_s=config.daemon.deadline().total_seconds(),
    )


def build_node_provider(pool: PoolConfig) -> NodeProvider | None:
    """The pool's ``nodes.provider`` (None for a fixed fleet). boto3 is imported only when a pool uses AWS."""
    settings = pool.nodes
    if settings.provider == "aws_asg" and settings.aws is not None:
        from autoscaler.nodes.aws_asg import AwsAsgProvider

        return AwsAsgProvider(settings.aws)
    if settings.provider == "command" and settings.command is not None:
        from autoscaler.nodes.command import CommandProvider

        return CommandProvider(settings.command)
    return None


def build_nodes(config: Config, client: NomadClient, clock: Clock, audit: AuditLog) -> NodeReconciler | None:
    """The node step for pools with a provider; its memory (boots, reported problems) from the audit log."""
    providers = {p.name: prov for p in config.pools if (prov := build_node_provider(p)) is not None}
    learning = any(p.lead_time_auto for p in config.pools)
    if not providers and not learning:
        return None
    from autoscaler.nodes.directory import NomadNodeDirectory

    window = max((p.nodes.boot_window for p in config.pools), default=timedelta(days=7))
    boots, reported = audit.node_history(clock.now() - window)
    memory = NodeMemory(reported=reported)
    memory.add_boots(boots)
    return NodeReconciler(providers, NomadNodeDirectory(client), clock, memory)


def build_daemon(
    config: Config, clock: Clock | None = None, *, dry_run: bool = False, notifiers: list[Notifier] | None = None
) -> Daemon:
    """The daemon with its extra ticks at schedule-rule boundaries, the override store watch, the notifiers'
    metrics and leader election.

    ``dry_run``: every pool in shadow (decided, audited, posted and exported as "would scale"; Nomad untouched).
    """
    clock = clock or SystemClock()
    transitions = partial(transition_times, config) if config.overrides.schedule_file else None
    store = build_store(config)
    watcher = OverrideWatcher(
        store,
        [p.name for p in config.pools if p.mode != "off"],
        clock,
        poll_s=config.daemon.override_poll.total_seconds(),
    )
    deps = build_deps(config, clock=clock, shadow=dry_run, store=store, notifiers=notifiers)
    client = deps.target.client if isinstance(deps.target, NomadTarget) else NomadClient(config.nomad)
    return Daemon(
        deps,
        transitions=transitions,
        extra_registries=[notify_metrics.REGISTRY],
        watcher=watcher,
        leadership=build_leadership(config, client, shadow=dry_run),
    )


def build_leadership(config: Config, client: NomadClient | None = None, *, shadow: bool = False) -> Leadership:
    """The locks held while acting: a local flock always; the Nomad Variables lock when leader.enabled and the
    run may write to Nomad (not in shadow: ``--dry-run``, or every pool ``mode: shadow``/``off``, writes nothing
    there, not even a lock)."""
    settings = config.leader
    lock_file = settings.lock_file or config.audit_log.with_name(config.audit_log.name + ".lock")
    locks: list[LeaderLock] = [LocalLock(lock_file)]
    writes = not shadow and any(p.mode == "active" for p in config.pools)
    if settings.enabled and writes:
        client = client or NomadClient(config.nomad)
        locks.append(NomadLock(client, settings.lock_path, settings.ttl, settings.lock_delay))
    ttl = settings.ttl.total_seconds()
    return Leadership(locks, renew_every_s=ttl / 3, retry_every_s=max(1.0, ttl / 2))


def build_store(config: Config) -> OverrideStore[PoolRecords]:
    """The configured manual store (file by default, or Nomad Variables)."""
    if config.overrides.store == "nomad":
        return NomadVariablesStore(NomadClient(config.nomad), config.overrides.nomad_variable_prefix)
    return FileStore(config.overrides.path)


def build_provider(config: Config, store: OverrideStore[PoolRecords] | None = None) -> OverrideProvider:
    """Schedule rules + the configured store. Raises ConfigError for an invalid schedule file."""
    return Overrides(
        schedule_for(config),
        store or build_store(config),
        [p.name for p in config.pools],
        {p.name: p.lead_time for p in config.pools},
        config.overrides.max_duration,
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
    plus Slack when ``slack:`` is configured.

    A Slack section that cannot be used (e.g. the token env var is empty) is logged with the fix and
    counted (``forescale_notifier_errors_total{error="not_configured"}``), but never stops scaling.
    """
    out: list[Notifier] = []
    if console:
        out.append(ConsoleNotifier())
    if log_decisions:
        from autoscaler.notify.log import LogNotifier

        out.append(LogNotifier())
    if config.slack is not None:
        from autoscaler.notify.slack.notifier import SlackNotifier

        try:
            slack = SlackNotifier.from_config(config, clock=clock, metrics=metrics)
        except NotifierError as exc:
            log.error("Slack notifications are off: %s", exc)
            metrics.errors.labels("slack", "not_configured").inc()
            metrics.healthy.labels("slack").set(0)
        else:
            atexit.register(slack.close)  # a one-shot `forescale tick` still posts its message before exiting
            out.append(slack)
    return out
