"""One tick: metrics → predictor → decide → target (→ machines) → notifiers/audit, for every pool.

The apply step sets the count on the target, then — for pools with a node provider — lets the machines
follow it (``autoscaler.policy.nodes``). A dry run plans both and changes neither.

The target's state is read first: decide steps from the pool's *desired* count (placed and queued are
reported), a scale is sent only when the desired count changes, and workers queued too long raise one
``pool_unplaceable`` event per episode (policy/placement.py).

The daemon, ``forescale tick``, ``plan``, ``demo`` and ``backtest`` all call ``run_tick`` (policy/cycle.py: the
pools of a tick run concurrently, policy/runner.py); there is no second copy of the policy. A failure in one pool
never stops the others.

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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from autoscaler.core.decision import Decision, PastAction, PastNeed, PoolState, Reason
from autoscaler.core.errors import DeploymentActive, MetricsUnavailable, TargetError
from autoscaler.core.nodes import LeadTime
from autoscaler.core.ports import (
    AuditTrail,
    ChangeHistory,
    Clock,
    LeadTimes,
    MetricsSource,
    Notifier,
    OverrideProvider,
    Target,
)
from autoscaler.core.report import PoolOutcome
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.policy.decide import decide, estimate
from autoscaler.policy.nodes import NodeReconciler, PoolLeadTimes
from autoscaler.policy.placement import PlacementWatch
from autoscaler.policy.queue import BacklogWatch, QueueRead, read_queue
from autoscaler.policy.runner import FairOrder, PoolLocks
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
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)  # tick workers, guard
    forecasts: dict[str, tuple[datetime, Forecast]] = field(default_factory=dict)  # last good forecast per pool

    def add(self, action: PastAction) -> None:
        with self.lock:
            if any(_same_change(a, action) for a in self.actions):
                return  # the audit log and Nomad's scaling events both remember it
            self.actions.append(action)
            cutoff = max(a.at for a in self.actions) - self.keep
            if min(a.at for a in self.actions) < cutoff:
                self.actions = [a for a in self.actions if a.at >= cutoff]

    def add_need(self, need: PastNeed) -> None:
        with self.lock:
            self.needs.append(need)
            cutoff = need.at - self.keep
            if self.needs[0].at < cutoff:
                self.needs = [n for n in self.needs if n.at >= cutoff]

    def for_pool(self, pool: str) -> list[PastAction]:
        with self.lock:
            return [a for a in self.actions if a.pool == pool]

    def needs_for(self, pool: str) -> list[PastNeed]:
        with self.lock:
            return [n for n in self.needs if n.pool == pool]

    def remember_forecast(self, pool: str, at: datetime, decision: dict[str, object], horizon_s: float) -> None:
        """A good forecast read back from the audit log (a decision's ``to_dict``), unless a newer one is known."""
        known = self.last_forecast(pool)
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
            self.keep_forecast(pool, at, forecast)

    def keep_forecast(self, pool: str, at: datetime, forecast: Forecast) -> None:
        """The pool's last good forecast (what the guard scales its rate by and a degraded tick plans with)."""
        with self.lock:
            self.forecasts[pool] = (at, forecast)

    def last_forecast(self, pool: str) -> tuple[datetime, Forecast] | None:
        with self.lock:
            return self.forecasts.get(pool)

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
    lead_times: LeadTimes = field(default_factory=PoolLeadTimes)  # configured unless built from boots (wiring)
    backlog: BacklogWatch = field(default_factory=BacklogWatch)  # queue-fed pools: backlog growing at max
    shadow: bool = False  # `forescale run --dry-run`: every pool in shadow, whatever its mode
    deadline_s: float | None = None  # a tick's time limit (daemon.tick_deadline); None: none (backtest, demo)
    may_act: Callable[[], str | None] | None = None  # leader gate: None = may scale now, else why not
    monotonic: Callable[[], float] = time.monotonic  # the deadline's clock (tests inject one)
    # `plan --at <a future time>`: metrics exist only up to this instant; the forecast is made from there for a
    # horizon that reaches past the planned time (None: the clock's now is also the data's now).
    data_until: datetime | None = None
    workers: int = 1  # pools in progress at once (the wiring: the Prometheus + Nomad in-flight limits)
    fair: FairOrder = field(default_factory=FairOrder)  # pools a deadline skipped go first next tick
    locks: PoolLocks = field(default_factory=PoolLocks)  # a tick and a guard check never work on one pool at once
    report_lock: threading.Lock = field(default_factory=threading.Lock)  # one report (audit, notifiers) at a time


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
    """The pool's lead time: configured, or learned from observed boots (``lead_time: auto``): ``deps.lead_times``,
    the one resolver every reader asks."""
    return deps.lead_times.of(pool, now)


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
    ahead: str | None = None  # `plan --at` a future time: what the forecast could and could not see
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
    step_s = deps.metrics.step_s
    try:
        series = deps.metrics.fetch(query or pool.query, since, now, step_s).finite()
    except MetricsUnavailable as exc:
        return str(exc)
    if len(series) == 0:
        return "no samples (empty result or only NaN)"
    stale = series.stale(now.timestamp(), step_s)
    if stale is not None:
        return stale
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
    data_end = min(now, deps.data_until) if deps.data_until is not None else now
    ahead_s = (now - data_end).total_seconds()  # > 0 only for a plan of a future time
    now_s = data_end.timestamp()
    start = data_end - timedelta(seconds=predictor.history_seconds())
    try:
        lead_s = pool_lead_time(deps, pool, now).seconds
    except ValueError as exc:
        return PoolForecast(None, f"lead time: {exc}")
    covered = horizon_seconds(deps.config, pool, lead_s)  # the period this decision must cover
    horizon = covered + ahead_s
    screened = fetch_screened(deps, pool, data_end, start, gap_window_s=covered)
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
    ahead = None
    if ahead_s > 0:
        until = now + timedelta(seconds=horizon - ahead_s)
        ahead = (
            f"planned ahead: forecast from the data up to {data_end:%Y-%m-%d %H:%M} UTC for the peak until "
            f"{until:%Y-%m-%d %H:%M} UTC (the traffic in between is not seen yet)"
        )
    return PoolForecast(forecast, notes=screened.notes, ahead=ahead)


def last_good_forecast(deps: TickDeps, pool: PoolConfig, now: datetime, observed: float, horizon_s: float) -> Forecast:
    """What a degraded tick plans with: the last good forecast while the period it planned for lasts (with the
    rate observed now), else the observed rate alone (decide then only raises the count to what it needs)."""
    last = deps.history.last_forecast(pool.name)
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
    queue = pool_queue(deps, pool, now)
    if got.forecast is not None and queue.cause is not None:  # a bad backlog holds the pool, as a bad rate does
        got = PoolForecast(None, queue.cause)
    if got.forecast is not None and got.degraded is None and got.ahead is None:
        deps.history.keep_forecast(pool.name, now, got.forecast)
    effects = deps.overrides.effects(pool.name, now)
    decision = decide(
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
        queue=queue.reading,
        degraded=got.degraded,
    )
    if got.ahead is not None:
        decision = replace(decision, reasons=(Reason("planned_ahead", got.ahead), *decision.reasons))
    return decision


def pool_queue(deps: TickDeps, pool: PoolConfig, now: datetime) -> QueueRead:
    """A queue-fed pool's backlog reading (policy/queue.py); nothing to read for other pools."""
    if pool.queue is None:
        return QueueRead(None)
    return read_queue(deps.metrics, pool.queue, now, deps.metrics.step_s)


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
    queue = pool_queue(deps, pool, now)
    if queue.cause is not None:
        return None
    last = deps.history.last_forecast(pool.name)
    wanted = last[1].guard_rps(rate) if last is not None else rate
    details: dict[str, float | str] = {"multiplier": last[1].guard_multiplier} if last is not None else {}
    observed = Forecast(peak_rps=wanted, observed_rps=rate, horizon_s=0.0, model="guard", details=details)
    effects = deps.overrides.effects(pool.name, now)
    decision = decide(pool, now, state, observed, effects, guard=True, queue=queue.reading)
    return decision if decision.changed else None


def failed_outcome(deps: TickDeps, pool: PoolConfig, now: datetime, error: str | None) -> PoolOutcome:
    """A pool whose count could not be read: failed, with what the forecast alone asks for (plan shows it)."""
    forecast = forecast_pool(deps, pool, now).forecast
    guess = estimate(pool, now, forecast, deps.overrides.effects(pool.name, now)) if forecast is not None else None
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


def __getattr__(name: str) -> Any:
    """``run_tick`` lives in policy/cycle.py (every pool of one tick through this line); it is still imported
    from here by the daemon, the CLI, the backtest and the tests."""
    if name == "run_tick":
        from autoscaler.policy.cycle import run_tick

        return run_tick
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
