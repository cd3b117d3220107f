"""Turn a Config into the real TickDeps (Prometheus, Nomad, overrides, notifiers, audit log)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from autoscaler import notify_metrics
from autoscaler.audit import AuditLog
from autoscaler.clock import Clock, SystemClock
from autoscaler.config import Config
from autoscaler.daemon import Daemon
from autoscaler.interfaces import Notifier
from autoscaler.nomad_target import NomadTarget
from autoscaler.notifiers import build_notifiers
from autoscaler.prometheus_source import PrometheusSource
from autoscaler.tick import ActionHistory, TickDeps
from overrides.provider import build_provider
from predictor.factory import make_predictor


def build_deps(config: Config, clock: Clock | None = None, notifiers: list[Notifier] | None = None) -> TickDeps:
    clock = clock or SystemClock()
    audit = AuditLog(config.audit_log)
    longest = max((p.scale_in_cooldown for p in config.pools), default=timedelta(0))
    history = ActionHistory(keep=max(longest, timedelta(hours=1)))
    for action in audit.recent_actions(clock.now() - longest - timedelta(minutes=1)):
        history.add(action)
    return TickDeps(
        config=config,
        metrics=PrometheusSource(config.prometheus),
        predictor_for=lambda pool: make_predictor(config.predictor, pool),
        target=NomadTarget(config.nomad),
        overrides=build_provider(config),
        clock=clock,
        notifiers=build_notifiers(config) if notifiers is None else notifiers,
        audit=audit,
        history=history,
    )


def build_daemon(config: Config, clock: Clock | None = None) -> Daemon:
    """The daemon with its extra ticks at schedule-rule boundaries and the notifiers' metrics."""
    from overrides.schedule import transition_times

    transitions = partial(transition_times, config) if config.overrides.schedule_file else None
    return Daemon(
        build_deps(config, clock=clock),
        transitions=transitions,
        extra_registries=[notify_metrics.REGISTRY],
    )
