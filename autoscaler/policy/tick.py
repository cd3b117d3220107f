"""One tick: metrics → predictor → decide → target (→ machines) → notifiers/audit, for every pool.

The apply step sets the count on the target, then — for pools with a node provider — lets the machines
follow it (``autoscaler.policy.nodes``). A dry run plans both and changes neither.

The target's state is read first: decide steps from the pool's *desired* count (placed and queued are
reported), a scale is sent only when the desired count changes, and workers queued too long raise one
``pool_unplaceable`` event per episode (policy/placement.py).

The daemon, ``forescale tick``, ``plan``, ``demo`` and ``backtest`` all call ``run_tick``; there is
no second copy of the policy. A failure in one pool never stops the others.

``run_tick(guard=True)`` is the fast guard between ticks, on the same line with a shorter first step:
metrics (the current rate only, no predictor) → decide (guard mode: up only) → target (→ machines) →
notifiers/audit. It reports only the pools it scaled (or would have, in shadow), so a quiet guard is silent.

Pool modes: ``off`` pools are not evaluated; ``shadow`` pools (and every pool of a daemon run with
``--dry-run``) are decided, audited, notified and exported, but ``write_gate`` stops every write in
``apply_decision``: the target's scale and anything that would change machines.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from autoscaler.core.deadline import Deadline, within
from autoscaler.core.decision import Decision, PastAction, PastNeed, PoolState
from autoscaler.core.errors import DeploymentActive, MetricsUnavailable, TargetError
from autoscaler.core.nodes import LeadTime
from autoscaler.core.ports import AuditTrail, ChangeHistory, Clock, MetricsSource, Notifier, OverrideProvider, Target
from autoscaler.core.report import Event, PoolOutcome, TickReport
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.policy.decide import decide, estimate
from autoscaler.policy.nodes import NodeReconciler, node_events
from autoscaler.policy.nodes import lead_time as configured_lead_time
from autoscaler.policy.placement import PlacementWatch
from autoscaler.policy.screen import Screened, gaps, rate_window_s, screen
from predictor.base import Forecast, Predictor

log = logging.getLogger("forescale.tick")


@dataclass
class ActionHistory:
    """Recent applied changes per pool (for cooldowns) and recent needs (for the scale-in window).
    Bounded: older than ``keep`` is dropped."""

    keep: timedelta = timedelta(hours=6)
    actions: list[PastAction] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)  # pools whose target history (Nomad's events) was merged
    needs: list[PastNeed] = field(default_factory=list)
    forecasts: dict[str, tuple[datetime, Forecast]] = field(default_factory=dict)  # last good forecast per pool

    def add(self, action: PastAction) -> None:
        if any(_same_change(a, action) for a in self.actions):
            return  # the audit log and Nomad's scaling events both remember it
        self.actions.append(action)
        cutoff = max(a.at for a in self.actions) - self.keep
        if min(a.at for a in self.actions) < cutoff:
            self.actions = [a for a in self.actions if a.at >= cutoff]

    def add_need(self, need: PastNeed) -> None:
        self.needs.append(need)
        cutoff = need.at - self.keep
        if self.needs[0].at < cutoff:
            self.needs = [n for n in self.needs if n.at >= cutoff]

    def for_pool(self, pool: str) -> list[PastAction]:
        return [a for a in self.actions if a.pool == pool]

    def needs_for(self, pool: str) -> list[PastNeed]:
        return [n for n in self.needs if n.pool == pool]

    def remember_forecast(self, pool: str, at: datetime, decision: dict[str, object], horizon_s: float) -> None:
        """A good forecast read back from the audit log (a decision's ``to_dict``), unless a newer one is known."""
        known = self.forecasts.get(pool)
        if known is not None and known[0] >= at:
            return
        details = decision.get("forecast_details")
        details = dict(details) if isinstance(details, dict) else {}
        try:
            forecast = Forecast(
                peak_rps=float(decision["forecast_rps"]),  # type: ignore[arg-type]
                observed_rps=float(decision.get("observed_rps") or 0.0),  # type: ignore[arg-type]
                horizon_s=horizon_s,
                model=str(decision.get("model") or "forecast"),
                details=details,
                guard_multiplier=float(details.get("guard_multiplier", 1.0)),
                bound_rps=float(details.get("bound_rps", math.inf)),
            )
        except (KeyError, TypeError, ValueError):
            return
        if math.isfinite(forecast.peak_rps) and forecast.guard_multiplier >= 1.0:
            self.forecasts[pool] = (at, forecast)

    def reset(self) -> None:
        """Forget every action (a replay's first decision sets the fleet: it is not a change).
        Needs stay: they are what the metrics called for, whatever the fleet was."""
        self.actions.clear()


def _same_change(a: PastAction, b: PastAction) -> bool:
    return (
        a.pool == b.pool
        and a.previous == b.previous
        and a.count == b.count
        and abs((a.at - b.at).total_seconds()) <= 120
    )


@dataclass
class TickDeps:
    """Everything a tick talks to, injected (real, simulated or fake)."""

    config: Config
    metrics: MetricsSource
    predictor_for: Callable[[PoolConfig], Predictor]
    target: Target
    overrides: OverrideProvider
    clock: Clock
    notifiers: Sequence[Notifier] = ()
    audit: AuditTrail | None = None
    history: ActionHistory = field(default_factory=ActionHistory)
    nodes: NodeReconciler | None = None  # machines follow the count (pools with nodes.provider set)
    placement: PlacementWatch = field(default_factory=PlacementWatch)
    shadow: bool = False  # `forescale run --dry-run`: every pool in shadow, whatever its mode
    deadline_s: float | None = None  # a tick's time limit (daemon.tick_deadline); None: none (backtest, demo)
    may_act: Callable[[], str | None] | None = None  # leader gate: None = may scale now, else why not
    monotonic: Callable[[], float] = time.monotonic  # the deadline's clock (tests inject one)


def write_gate(deps: TickDeps, pool: PoolConfig) -> str | None:
    """Why this pool must not be changed this tick (None: writes are allowed).

    The one switch of shadow mode: every write of a tick — the target's scale and any node action — asks it
    first, in ``apply_decision``.
    """
    if deps.shadow:
        return "shadow (forescale run --dry-run)"
    if pool.mode == "shadow":
        return "shadow (mode: shadow)"
    return None


def pool_lead_time(deps: TickDeps, pool: PoolConfig, now: datetime) -> LeadTime:
    """The pool's lead time: configured, or learned from observed boots (``lead_time: auto``)."""
    if deps.nodes is not None:
        return deps.nodes.lead_time(pool, now)
    return configured_lead_time(pool, (), now)


def horizon_seconds(config: Config, pool: PoolConfig, lead_s: float | None = None) -> float:
    """A decision must cover the time until the next decision's nodes are ready."""
    lead = pool.lead_time.total_seconds() if lead_s is None else lead_s
    return lead + config.daemon.interval.total_seconds()


class PoolForecast(NamedTuple):
    """A pool's forecast, or why there is none (``bad_data``: the samples were refused, see policy/screen.py).

    ``degraded`` says why the forecast is not the model's on fresh, whole samples (a gap, a ``rate()`` warming
    up, a latest sample capped at its precedent): then it is the last good forecast while its horizon lasts,
    else the observed rate, and decide never scales in on it.
    """

    forecast: Forecast | None
    cause: str | None = None
    bad_data: bool = False
    notes: tuple[str, ...] = ()
    degraded: str | None = None


def fetch_screened(
    deps: TickDeps,
    pool: PoolConfig,
    now: datetime,
    since: datetime,
    gap_window_s: float | None = None,
    query: str | None = None,
) -> Screened | str:
    """The pool's samples from ``since`` to ``now`` through the plausibility screen (policy/screen.py), or why
    there are none (missing, empty or stale). The tick and the guard read their rates here: one screen for both.
    With ``gap_window_s``, samples missing from the source within that window before ``now`` (or a ``rate()``
    still warming up) make the result degraded (``screen.gaps``). ``query`` replaces the pool's (the guard's own)."""
    step_s = deps.config.prometheus.step.total_seconds()
    try:
        series = deps.metrics.fetch(query or pool.query, since, now, step_s).finite()
    except MetricsUnavailable as exc:
        return str(exc)
    if len(series) == 0:
        return "no samples (empty result or only NaN)"
    age = now.timestamp() - series.last_t
    if age > 2 * max(step_s, series.step_s):
        return f"stale: last sample is {age:.0f}s old (more than 2 steps)"
    screened = screen(series, pool, deps.config.predictor)
    if gap_window_s is not None and screened.degraded is None:
        warmup = rate_window_s(pool.query)
        hole = gaps(series, now.timestamp(), since.timestamp(), gap_window_s + warmup, warmup)
        if hole is not None:
            screened = replace(screened, degraded=hole)
    return screened


def forecast_pool(deps: TickDeps, pool: PoolConfig, now: datetime) -> PoolForecast:
    """Fetch history, screen it (bad data, implausible jumps, gaps) and forecast; no forecast when metrics are
    missing, stale, refused or unusable (``cause`` says why); a degraded one when the recent samples are not whole."""
    predictor = deps.predictor_for(pool)
    now_s = now.timestamp()
    start = now - timedelta(seconds=predictor.history_seconds())
    try:
        lead_s = pool_lead_time(deps, pool, now).seconds
    except ValueError as exc:
        return PoolForecast(None, f"lead time: {exc}")
    horizon = horizon_seconds(deps.config, pool, lead_s)
    screened = fetch_screened(deps, pool, now, start, gap_window_s=horizon)
    if isinstance(screened, str):
        return PoolForecast(None, screened)
    if screened.hold is not None:
        return PoolForecast(None, screened.hold, bad_data=True)
    if screened.degraded is not None:
        fallback = last_good_forecast(deps, pool, now, screened.series.last_rps, horizon)
        return PoolForecast(fallback, notes=screened.notes, degraded=screened.degraded)
    try:
        forecast = predictor.forecast(screened.series, now_s, horizon)
    except ValueError as exc:
        return PoolForecast(None, f"predictor {predictor.name}: {exc}")
    if not (math.isfinite(forecast.peak_rps) and math.isfinite(forecast.observed_rps)):
        return PoolForecast(None, "forecast is not a finite number", bad_data=True)
    return PoolForecast(forecast, notes=screened.notes)


def last_good_forecast(deps: TickDeps, pool: PoolConfig, now: datetime, observed: float, horizon_s: float) -> Forecast:
    """What a degraded tick plans with: the last good forecast while the period it planned for lasts (with the
    rate observed now), else the observed rate alone (decide then only raises the count to what it needs)."""
    last = deps.history.forecasts.get(pool.name)
    if last is not None and (now - last[0]).total_seconds() < last[1].horizon_s:
        at, good = last
        return replace(good, observed_rps=observed, details={**good.details, "last_good_at": at.isoformat()})
    return Forecast(peak_rps=observed, observed_rps=observed, horizon_s=horizon_s, model="observed")


def recent_actions(deps: TickDeps, pool: PoolConfig, now: datetime) -> list[PastAction]:
    """The pool's recent changes for cooldowns: this process's history, merged once with the target's own
    record (Nomad's scaling events), so a lost or moved audit log never resets a cooldown."""
    if pool.name not in deps.history.loaded and isinstance(deps.target, ChangeHistory):
        deps.history.loaded.add(pool.name)
        since = now - max(pool.scale_in_cooldown, timedelta(minutes=1))
        try:
            for action in deps.target.recent_changes(pool, since, now):
                deps.history.add(action)
        except TargetError as exc:
            log.warning("pool %s: cannot read recent scaling events (cooldowns use the audit log): %s", pool.name, exc)
    return deps.history.for_pool(pool.name)


def read_state(deps: TickDeps, pool: PoolConfig) -> tuple[PoolState | None, str | None]:
    """The pool's desired/placed/queued counts from the target (None with the error if unknown)."""
    try:
        return deps.target.status(pool), None
    except TargetError as exc:
        return None, f"cannot read current count: {exc}"


def decide_pool(deps: TickDeps, pool: PoolConfig, now: datetime, state: PoolState) -> Decision:
    """Pool state + forecast + overrides → Decision (decide steps from the desired count)."""
    got = forecast_pool(deps, pool, now)
    if got.forecast is not None and got.degraded is None:
        deps.history.forecasts[pool.name] = (now, got.forecast)
    effects = deps.overrides.effects(pool.name, now)
    return decide(
        pool,
        now,
        state,
        got.forecast,
        effects,
        recent_actions(deps, pool, now),
        metrics_error=got.cause,
        recent_needs=deps.history.needs_for(pool.name),
        bad_data=got.bad_data,
        data_notes=got.notes,
        degraded=got.degraded,
    )


def screen_window(config: Config) -> timedelta:
    """How far back the guard reads to screen its rate as the tick does: the screen's reference window
    (``predictor.plausible_window``), but no more history than the tick's model reads."""
    settings = config.predictor
    read = settings.trend_window if settings.model == "trend_lr" else settings.history
    return min(settings.plausible_window, read)


def current_rate(deps: TickDeps, pool: PoolConfig, now: datetime) -> float | None:
    """The short-window rate (the latest sample of ``guard.query``, else of the pool's query, at the pool's step)
    through the tick's plausibility screen (over its ``plausible_window``), or None when it is missing, stale or
    refused (the guard then does nothing: holding and alerting is the tick's job). A latest sample rising past
    its precedent counts only up to it (policy/screen.py)."""
    since = now - screen_window(deps.config)
    screened = fetch_screened(deps, pool, now, since, query=pool.guard.query)
    if isinstance(screened, str) or screened.hold is not None:
        return None
    rate = float(screened.series.last_rps)
    return rate if math.isfinite(rate) else None


def guard_pool(deps: TickDeps, pool: PoolConfig, now: datetime, state: PoolState) -> Decision | None:
    """The guard's decision for one pool (it compares with the desired count: the ready + warming fleet);
    None when there is nothing to do (rate missing, or within capacity)."""
    rate = current_rate(deps, pool, now)
    if rate is None:
        return None
    last = deps.history.forecasts.get(pool.name)
    wanted = last[1].guard_rps(rate) if last is not None else rate
    details: dict[str, float | str] = {"multiplier": last[1].guard_multiplier} if last is not None else {}
    observed = Forecast(peak_rps=wanted, observed_rps=rate, horizon_s=0.0, model="guard", details=details)
    decision = decide(pool, now, state, observed, deps.overrides.effects(pool.name, now), guard=True)
    return decision if decision.changed else None


def failed_outcome(deps: TickDeps, pool: PoolConfig, now: datetime, error: str | None) -> PoolOutcome:
    """A pool whose count could not be read: failed, with what the forecast alone asks for (plan shows it)."""
    forecast = forecast_pool(deps, pool, now).forecast
    guess = estimate(pool, now, forecast) if forecast is not None else None
    return PoolOutcome(pool.name, "failed", None, error=error, estimate=guess)


def apply_decision(deps: TickDeps, pool: PoolConfig, decision: Decision, dry_run: bool) -> PoolOutcome:
    """Scale only when the new desired count differs from the current *desired* count: never re-send a count
    Nomad already has (each Job.Scale is a new job version, an evaluation and a scaling event)."""
    if not decision.changed:
        return PoolOutcome(pool.name, "unchanged", decision)
    if dry_run:
        return PoolOutcome(pool.name, "dry_run", decision, note="dry run: nothing changed")
    gate = write_gate(deps, pool)
    if gate is not None:
        return PoolOutcome(
            pool.name,
            "shadow",
            decision,
            note=f"{gate}: would scale {decision.current} → {decision.desired}; Nomad not changed",
        )
    why_not = deps.may_act() if deps.may_act is not None else None
    if why_not is not None:  # checked right before acting: leadership can be lost during a tick
        return PoolOutcome(pool.name, "deferred", decision, error=f"not scaled: {why_not}")
    try:
        note = deps.target.scale(pool, decision)
    except DeploymentActive as exc:
        return PoolOutcome(pool.name, "deferred", decision, error=f"{exc}; will retry next tick")
    except TargetError as exc:
        return PoolOutcome(pool.name, "failed", decision, error=str(exc))
    pinned = "manual_pin" in decision.reason_codes()
    deps.history.add(PastAction(decision.at, pool.name, decision.current, decision.desired, pinned=pinned))
    return PoolOutcome(pool.name, "applied", decision, note=note)


def _late(deadline: Deadline, step: str) -> str:
    return f"{deadline.reason} passed before this pool was {step}: nothing changed; the next tick decides it"


def apply_nodes(deps: TickDeps, pool: PoolConfig, outcome: PoolOutcome, dry_run: bool) -> PoolOutcome:
    """Machines follow the count that stands after the target step (whoever raised it: tick or guard).

    When the count was not applied (failed, deferred) the step only finishes work already started (drains,
    terminations); it never retires machines on a held decision (metrics unavailable: never shrink blind).
    """
    if deps.nodes is None or not pool.nodes.enabled or outcome.decision is None:
        return outcome
    if deps.may_act is not None and not dry_run and deps.may_act() is not None:
        return outcome  # not the leader (any more): machines are the leader's business
    decision = outcome.decision
    followed = ("applied", "unchanged", "dry_run", "shadow")
    wanted = decision.desired + pool.nodes.spare if outcome.status in followed else None
    plan_only = dry_run or write_gate(deps, pool) is not None  # shadow: say what would happen to machines, do none
    report = deps.nodes.step(pool, wanted, decision.at, scale_in_allowed=not decision.held, dry_run=plan_only)
    return outcome if report is None else replace(outcome, nodes=report)


def run_tick(
    deps: TickDeps,
    *,
    dry_run: bool = False,
    only: Sequence[str] | None = None,
    deadline: Deadline | None = None,
    guard: bool = False,
) -> TickReport:
    """Run one cycle for every pool (or ``only`` these) and report it to the audit log and notifiers.

    The tick runs under ``deadline`` (default: ``deps.deadline_s`` from now): every external call gets at most
    the time left, and a pool not decided (or not yet applied) when it has passed is reported failed and left
    exactly as it is — never shrunk for lack of time. ``guard=True`` runs the fast guard instead, for pools
    whose guard is enabled (module docstring).
    """
    started = time.perf_counter()
    now = deps.clock.now()  # one instant for the whole tick: query windows, staleness, decisions, report
    deadline = deadline or Deadline(deps.deadline_s, deps.monotonic)
    outcomes = []
    pool_events: list[Event] = []
    with within(deadline):
        for pool in deps.config.pools:
            if only and pool.name not in only:
                continue
            if guard and (not pool.guard.enabled or pool.mode == "off"):
                continue
            if pool.mode == "off":
                outcomes.append(PoolOutcome(pool.name, "off", None, note="mode: off (not evaluated)"))
                continue
            if deadline.expired():
                if not guard:
                    outcomes.append(PoolOutcome(pool.name, "failed", None, error=_late(deadline, "decided")))
                continue
            try:
                state, error = read_state(deps, pool)
                if state is None:
                    if not guard:  # an unreachable target is the next tick's to report
                        outcomes.append(failed_outcome(deps, pool, now, error))
                    continue
                if guard:
                    guarded = guard_pool(deps, pool, now, state)
                    if guarded is None:
                        continue
                    decision = guarded
                else:
                    decision = decide_pool(deps, pool, now, state)
                if deadline.expired() and decision.changed and not dry_run:
                    outcomes.append(PoolOutcome(pool.name, "failed", decision, error=_late(deadline, "applied")))
                    continue
                if not dry_run and decision.need is not None and not decision.held:
                    deps.history.add_need(PastNeed(now, pool.name, decision.need))
                outcomes.append(apply_nodes(deps, pool, apply_decision(deps, pool, decision, dry_run), dry_run))
                watch = not dry_run and not guard  # queued-too-long is judged once per tick
                warning = deps.placement.observe(pool, state, now) if watch else None
                if warning is not None:
                    pool_events.append(warning)
            except Exception as exc:  # a bug or an unexpected library error must not stop the other pools
                log.exception("pool %s: unexpected error", pool.name)
                outcomes.append(PoolOutcome(pool.name, "failed", None, error=f"internal error: {exc!r}"))
    if dry_run or guard:  # expired overrides are announced by ticks; a quiet guard tells nobody
        events: tuple[Event, ...] = ()
    elif deps.shadow:  # --dry-run writes nothing anywhere: expired overrides are ignored, not moved to history
        events = (*pool_events, *deps.overrides.warnings())
    else:
        events = (*pool_events, *deps.overrides.drain_events(now))
    for outcome in outcomes:
        if outcome.nodes is not None:
            events += tuple(node_events(outcome.pool, outcome.nodes, now))
    report = TickReport(
        at=now,
        outcomes=tuple(outcomes),
        events=events,
        dry_run=dry_run,
        duration_s=time.perf_counter() - started,
        guard=guard,
    )
    if guard and not outcomes:
        return report
    if deps.audit is not None and not dry_run:
        try:
            deps.audit.record_tick(report)
        except OSError as exc:
            log.error("cannot append to audit log %s: %s", deps.audit.location, exc)
    for notifier in deps.notifiers:
        try:
            notifier.notify(report)
        except Exception:  # a notifier must never fail the tick
            log.exception("notifier %s failed", type(notifier).__name__)
    return report
