"""decide: the policy, as one pure function. No I/O, no clock: everything comes in as arguments.

Precedence (DESIGN.md): manual pin > max(schedule floor, forecast need, reactive need), then the
pool's min/max; ``bounds`` answers it for any forecast (what `schedule show` prints), and every Reason an
override set names it (``Reason.effect``). Scale-in is cautious (cooldown; the scale-in window: never below
the highest need of the last hour, as Kubernetes HPA's stabilisation window; step limit; never below the
observed need) and missing metrics never shrink a fleet. Every clamp is reported as a Reason. The guard
between ticks is a mode of the same function: observed rate only, and it can only raise the count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from autoscaler.core.decision import Decision, Estimate, PastAction, PastNeed, PoolState, Reason
from autoscaler.core.durations import format_duration
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.queue import QueueNeed, QueueReading, hold_for_drain, queue_need
from predictor.base import Forecast
from predictor.capacity import nodes_for


def decide(
    pool: PoolConfig,
    now: datetime,
    current: int | PoolState,
    forecast: Forecast | None,
    overrides: Sequence[OverrideEffect] = (),
    recent_actions: Sequence[PastAction] = (),
    metrics_error: str | None = None,
    recent_needs: Sequence[PastNeed] = (),
    guard: bool = False,
    *,
    bad_data: bool = False,
    data_notes: Sequence[str] = (),
    queue: QueueReading | None = None,
    degraded: str | None = None,
) -> Decision:
    """Return the count ``pool`` should have at ``now`` and every reason that shaped it.

    ``current`` is the pool's state (or just its desired count): decide compares with and steps from the
    *desired* count, never from the placed one — nodes still booting are queued in Nomad, and stepping from
    what is placed would re-send (or even lower) a count already asked for. Placed and queued are carried
    into the Decision for reporting. ``forecast`` is None when metrics are unavailable or were refused as bad
    data (``metrics_error`` says why): the pool holds. ``data_notes`` say which samples were ignored on the
    way (shown as ``bad_data`` reasons). ``recent_needs`` are earlier decisions' needs (the scale-in window
    keeps their highest). ``guard=True`` is the fast check between ticks: ``forecast.observed_rps`` is the
    only input, and the count can only go up (see ``_guard``); the desired count is the ready + warming fleet.
    ``queue`` is a queue-fed pool's backlog reading (policy/queue.py: the backlog beyond the SLO adds to the
    need and blocks scale-in).
    ``degraded`` (why the forecast is not the model's on whole samples: a gap, a warming ``rate()``, a capped
    latest sample) forbids scaling in: the forecast may only raise the count.
    """
    screen = (bad_data, tuple(data_notes), degraded)
    desired = current.desired if isinstance(current, PoolState) else current
    serving = current.placed if isinstance(current, PoolState) else desired
    backlog = (queue, serving) if queue is not None and pool.queue is not None else None
    decision = _decide(
        pool, now, desired, forecast, overrides, recent_actions, metrics_error, recent_needs, guard, screen, backlog
    )
    if not isinstance(current, PoolState):
        return decision
    return replace(decision, placed=current.placed, queued=current.queued, rescheduling=current.rescheduling)


def _decide(
    pool: PoolConfig,
    now: datetime,
    current: int,
    forecast: Forecast | None,
    overrides: Sequence[OverrideEffect],
    recent_actions: Sequence[PastAction],
    metrics_error: str | None,
    recent_needs: Sequence[PastNeed],
    guard: bool,
    screen: tuple[bool, tuple[str, ...], str | None] = (False, (), None),
    backlog: tuple[QueueReading, int] | None = None,
) -> Decision:
    bad_data, data_notes, degraded = screen
    if current < 0:
        raise ValueError("current count cannot be negative")
    pin = _manual_pin(overrides)

    if forecast is None:
        return _held(pool, now, current, overrides, pin, metrics_error or "no forecast", bad_data)
    if guard:
        return _guard(pool, now, current, forecast, overrides, pin, backlog)

    forecast_nodes, reactive_nodes, reasons = forecast_need(pool, forecast)
    reasons.extend(Reason("bad_data", note) for note in data_notes)
    need = max(forecast_nodes, reactive_nodes)
    queued = _queue_need(pool, max(forecast.peak_rps, forecast.observed_rps), "forecast", backlog, reasons)
    rate_need = need
    if queued is not None and queued.beyond_slo:
        need = max(need, queued.nodes)
    wanted = need
    if degraded is not None:
        reasons.append(Reason("degraded", _degraded_text(degraded, forecast, current, need), max(current, need)))

    if need > current:
        wanted = _step_up(pool, current, need, reasons)
    elif need < current and degraded is None:
        wanted = _scale_in(pool, now, current, need, recent_actions, recent_needs, pin, reasons)
        drain = hold_for_drain(queued, current, wanted, pool.queue.latency_slo) if queued and pool.queue else None
        if drain is not None:
            reasons.append(drain)
            wanted = current
    elif need < current:
        wanted = current

    count = _overrides_and_bounds(pool, wanted, overrides, pin, f"forecast wanted {need}", reasons)
    decision = Decision(
        pool=pool.name,
        at=now,
        current=current,
        desired=count,
        reasons=tuple(reasons),
        forecast_rps=forecast.peak_rps,
        observed_rps=forecast.observed_rps,
        forecast_nodes=forecast_nodes,
        reactive_nodes=reactive_nodes,
        model=forecast.model,
        forecast_details=_details(forecast),
        need=need,
        degraded=degraded,
    )
    return _with_queue(decision, queued, rate_need)


def _queue_need(
    pool: PoolConfig, rate: float, rate_name: str, backlog: tuple[QueueReading, int] | None, reasons: list[Reason]
) -> QueueNeed | None:
    """A queue-fed pool's backlog need (policy/queue.py), its reason appended; None for other pools."""
    if backlog is None:
        return None
    queued = queue_need(pool, rate, backlog[0], backlog[1], rate_name)
    reasons.append(queued.reason)
    return queued


def _with_queue(decision: Decision, queued: QueueNeed | None, rate_need: int) -> Decision:
    """The Decision with a queue-fed pool's backlog figures (a pool without a queue: as it was)."""
    if queued is None:
        return decision
    return replace(
        decision,
        backlog=queued.waiting,
        backlog_wait_s=queued.wait_s if queued.wait_s != float("inf") else None,
        backlog_beyond_slo=queued.beyond_slo,
        queue_nodes=queued.nodes if queued.beyond_slo else None,
        rate_need=rate_need,
    )


def _details(forecast: Forecast) -> dict[str, float | str]:
    """The forecast's details, with the guard's headroom it carries (read back by a one-shot guard)."""
    out = dict(forecast.details)
    if forecast.guard_multiplier != 1.0:
        out["guard_multiplier"] = round(forecast.guard_multiplier, 4)
    if math.isfinite(forecast.bound_rps):
        out["bound_rps"] = round(forecast.bound_rps, 3)
    return out


def _degraded_text(why: str, forecast: Forecast, current: int, need: int) -> str:
    """'degraded: <why>; planning with …; never scales in (held at N)'."""
    at = forecast.details.get("last_good_at")
    if isinstance(at, str):
        source = f"planning with the last good forecast (made at {at[11:16]} UTC)"
    else:
        source = "no recent good forecast: planning with the observed rate"
    held = f"; held at {current} (wanted {need})" if need < current else ""
    return f"degraded: {why}; {source}; never scales in on it{held}"


def _scale_in(
    pool: PoolConfig,
    now: datetime,
    current: int,
    need: int,
    recent_actions: Sequence[PastAction],
    recent_needs: Sequence[PastNeed],
    pin: OverrideEffect | None,
    reasons: list[Reason],
) -> int:
    """The count to scale in to: cooldown (skipped when the pin that set the count has ended), then the
    scale-in window (HPA stabilisation), then the step limit."""
    last = _last_change(pool.name, recent_actions)
    if last is not None and now - last.at < pool.scale_in_cooldown and last.pinned and pin is None:
        reasons.append(
            Reason(
                "pin_ended",
                f"the pin that set {last.count} at {last.at:%H:%M} UTC has ended: back to the forecast "
                "without the scale-in cooldown",
            )
        )
    elif last is not None and now - last.at < pool.scale_in_cooldown:
        until = last.at + pool.scale_in_cooldown
        reasons.append(
            Reason(
                "cooldown",
                f"scale-in cooldown: last change {last.previous}→{last.count} at "
                f"{last.at:%H:%M} UTC; no scale-in before {until:%H:%M} UTC (wanted {need})",
                current,
            )
        )
        return current
    wanted = need
    top = _window_need(pool, now, recent_needs)
    if top is not None and top.nodes > need:
        wanted = min(top.nodes, current)
        window = format_duration(pool.scale_in_window)
        if wanted == current:
            text = f"scale-in window: {top.nodes} nodes were needed at {top.at:%H:%M} UTC, within {window}; held"
        else:
            text = f"scale-in window: down to {wanted}, the most needed in the last {window} (at {top.at:%H:%M} UTC)"
        reasons.append(Reason("scale_in_window", f"{text} (wanted {need})", wanted))
    step_down = pool.step_down_nodes(current)
    if wanted < current and step_down is not None and current - wanted > step_down:
        limited = current - step_down
        share = _share(pool.max_step_down, current)
        reasons.append(Reason("step_down", f"step limit: -{step_down} per tick{share} (wanted {wanted})", limited))
        wanted = limited
    return wanted


def _window_need(pool: PoolConfig, now: datetime, needs: Sequence[PastNeed]) -> PastNeed | None:
    """The highest need of this pool within ``scale_in_window`` before ``now`` (latest on ties). As HPA's
    stabilisation window, a need exactly one window old has left it."""
    if pool.scale_in_window <= timedelta(0):
        return None
    since = now - pool.scale_in_window
    mine = [n for n in needs if n.pool == pool.name and since < n.at <= now]
    return max(mine, key=lambda n: (n.nodes, n.at)) if mine else None


def _step_up(pool: PoolConfig, current: int, need: int, reasons: list[Reason]) -> int:
    """``need`` (> current), or current + the pool's step limit when the step is larger (with its reason)."""
    step_up = pool.step_up_nodes(current)
    if step_up is None or need - current <= step_up:
        return need
    wanted = current + step_up
    share = _share(pool.max_step_up, current)
    reasons.append(Reason("step_up", f"step limit: +{step_up} per tick{share} (wanted {need})", wanted))
    return wanted


def _overrides_and_bounds(
    pool: PoolConfig,
    count: int,
    overrides: Sequence[OverrideEffect],
    pin: OverrideEffect | None,
    wanted: str,
    reasons: list[Reason],
) -> int:
    """The precedence after the policy's own count: schedule bounds, manual bounds, a manual pin, the pool's
    min/max — each change with its reason (``wanted`` says what the policy asked for, for the pin's reason)."""
    for source in ("schedule", "manual"):
        count = _apply_bounds(count, [o for o in overrides if o.source == source], reasons)
    if pin is not None:
        reasons.append(Reason("manual_pin", f"{pin.explanation} ({wanted})", pin.value, effect=pin.name))
        count = pin.value
    return _clamp_to_pool(pool, count, reasons)


def _guard(
    pool: PoolConfig,
    now: datetime,
    current: int,
    forecast: Forecast,
    overrides: Sequence[OverrideEffect],
    pin: OverrideEffect | None,
    backlog: tuple[QueueReading, int] | None = None,
) -> Decision:
    """The fast guard: if the observed rate exceeds what the current fleet (ready + warming, i.e. the
    group's desired count) serves at the pool's utilisation, scale up to what the rate needs; never down.
    In a queue-fed pool, a backlog beyond the SLO also counts (observed rate + backlog ÷ drain time).

    Step limit, overrides and pool bounds apply exactly as in a tick; a result at or below ``current``
    holds (scale-in is the tick's job).
    """
    per_node = pool.capacity_per_node * pool.target_utilization
    observed = forecast.observed_rps
    wanted = max(forecast.peak_rps, observed)
    need = nodes_for(wanted, pool.capacity_per_node, pool.target_utilization)
    rate_need = need
    capacity = current * per_node
    fleet = f"{current} nodes × {_rps(per_node)} rps"
    seen = f"observed {_rps(observed)} rps"
    if wanted > observed * (1 + 1e-9):
        seen += f" (+ the last forecast's headroom: {_rps(wanted)} rps)"
    queue_reasons: list[Reason] = []
    queued = _queue_need(pool, observed, "observed", backlog, queue_reasons)
    if queued is not None and queued.beyond_slo and queued.nodes > need:
        need = queued.nodes
    if need <= current:
        quiet = f"guard: {seen} ≤ capacity {_rps(capacity)} rps ({fleet})"
        reasons = [Reason("guard", quiet, need), *queue_reasons]
        count = current
    else:
        if rate_need <= current:  # only the backlog asks for more
            text = f"guard: the backlog needs more than capacity {_rps(capacity)} rps ({fleet}) → {need} nodes"
        else:
            text = f"guard: {seen} > capacity {_rps(capacity)} rps ({fleet}) → {need} nodes"
        reasons = [Reason("guard", text, need), *queue_reasons]
        count = _step_up(pool, current, need, reasons)
        count = _overrides_and_bounds(pool, count, overrides, pin, f"guard wanted {need}", reasons)
        if count < current:
            reasons.append(Reason("guard_no_scale_in", f"the guard never scales in: kept at {current}", current))
            count = current
    decision = Decision(
        pool=pool.name,
        at=now,
        current=current,
        desired=count,
        reasons=tuple(reasons),
        observed_rps=observed,
        forecast_rps=wanted if wanted > observed else None,
        reactive_nodes=rate_need,
        model="guard",
        need=need,
        guard=True,
    )
    return _with_queue(decision, queued, rate_need)


def forecast_need(pool: PoolConfig, forecast: Forecast) -> tuple[int, int, list[Reason]]:
    """Nodes the forecast peak and the observed rate need, with the two reasons that say so.

    The first step of ``decide``; `plan` also shows it alone (an Estimate) when the current count is unknown.
    """
    per_node = pool.capacity_per_node * pool.target_utilization
    forecast_nodes = nodes_for(forecast.peak_rps, pool.capacity_per_node, pool.target_utilization)
    reactive_nodes = nodes_for(forecast.observed_rps, pool.capacity_per_node, pool.target_utilization)
    horizon = format_duration_s(forecast.horizon_s)
    reasons = [
        Reason(
            "forecast",
            f"forecast {_rps(forecast.peak_rps)} rps peak in the next {horizon} → {forecast_nodes} nodes "
            f"at {_rps(per_node)} rps/node ({_rps(pool.capacity_per_node)} × {pool.target_utilization:.0%})",
            forecast_nodes,
        ),
        Reason("observed", f"observed {_rps(forecast.observed_rps)} rps now → {reactive_nodes} nodes", reactive_nodes),
    ]
    return forecast_nodes, reactive_nodes, reasons


def estimate(
    pool: PoolConfig, now: datetime, forecast: Forecast, overrides: Sequence[OverrideEffect] = ()
) -> Estimate:
    """The forecast's need with no current count (no step limit or cooldown applied), and what the overrides in
    force and the pool's min/max make of it (``count``, each clamp a Reason): what `plan` shows without Nomad."""
    forecast_nodes, reactive_nodes, reasons = forecast_need(pool, forecast)
    need = max(forecast_nodes, reactive_nodes)
    count = _overrides_and_bounds(pool, need, overrides, _manual_pin(overrides), f"forecast wanted {need}", reasons)
    return Estimate(
        pool=pool.name,
        at=now,
        forecast_rps=forecast.peak_rps,
        observed_rps=forecast.observed_rps,
        forecast_nodes=forecast_nodes,
        reactive_nodes=reactive_nodes,
        reasons=tuple(reasons),
        count=count,
    )


@dataclass(frozen=True)
class Bounds:
    """What the overrides in force allow a pool, whatever the forecast: ``lowest``..``highest`` nodes, and the
    pin, floor and ceiling that bind there — each a Reason naming the winning effect (``Reason.effect``). The
    precedence is decide's own (the same helpers): pin > max(floor, forecast), then the pool's min/max."""

    lowest: int
    highest: int
    pin: Reason | None = None  # the pin in force: it beats every floor, ceiling and the forecast
    floor: Reason | None = None  # the floor that sets the lowest count (None: none binds)
    ceiling: Reason | None = None  # the ceiling that sets the highest count (None: none binds)


def bounds(pool: PoolConfig, overrides: Sequence[OverrideEffect]) -> Bounds:
    """The lowest and highest count ``decide`` can give ``pool`` under ``overrides`` (a forecast of nothing and
    one above the pool's max), and which pin, floor and ceiling win. Pure, like decide."""
    pin = _manual_pin(overrides)
    low: list[Reason] = []
    high: list[Reason] = []
    lowest = _overrides_and_bounds(pool, 0, overrides, pin, "forecast wanted 0", low)
    highest = _overrides_and_bounds(pool, pool.max + 1, overrides, pin, f"forecast wanted {pool.max + 1}", high)
    if pin is not None:
        return Bounds(lowest, highest, pin=next(r for r in low if r.code == "manual_pin"))
    # The last floor (ceiling) applied sets the count, unless the pool's min/max moved it again.
    floors = [r for r in low if r.code.endswith("_floor") and r.nodes == lowest]
    ceilings = [r for r in high if r.code.endswith("_ceiling") and r.nodes == highest]
    return Bounds(lowest, highest, floor=floors[-1] if floors else None, ceiling=ceilings[-1] if ceilings else None)


def _share(limit: int | str | None, current: int) -> str:
    """' (25% of 12)' for a share limit, '' for a node count."""
    return f" ({limit} of {current})" if isinstance(limit, str) else ""


def _held(
    pool: PoolConfig,
    now: datetime,
    current: int,
    overrides: Sequence[OverrideEffect],
    pin: OverrideEffect | None,
    cause: str,
    bad_data: bool = False,
) -> Decision:
    """Metrics are unavailable (or refused as bad data): keep the fleet; only raise it (floors) or obey a pin."""
    if bad_data:
        reasons = [Reason("bad_data", f"held at {current}: {cause}", current)]
    else:
        reasons = [Reason("metrics_unavailable", f"held at {current}: metrics unavailable ({cause})", current)]
    count = current
    floors = [o for o in overrides if o.kind == "min" and o.value > count]
    if floors:
        top = max(floors, key=lambda o: o.value)
        count = top.value
        reasons.append(Reason(f"{top.source}_floor", f"raised to {count}: {top.explanation}", count, effect=top.name))
    if pin is not None:
        count = pin.value
        reasons.append(Reason("manual_pin", pin.explanation, count, effect=pin.name))
    ignored = [o for o in overrides if o.kind == "max" and o.value < count and pin is None]
    if ignored:
        reasons.append(
            Reason("ceiling_ignored", "ceilings are not applied while metrics are unavailable (never shrink blind)")
        )
    count = _clamp_to_pool(pool, count, reasons)
    return Decision(
        pool=pool.name, at=now, current=current, desired=count, reasons=tuple(reasons), held=True, hold_cause=cause
    )


def _apply_bounds(count: int, effects: Sequence[OverrideEffect], reasons: list[Reason]) -> int:
    """Floors raise, ceilings cap; when a floor and a ceiling conflict, the floor (availability) wins."""
    floors = [o for o in effects if o.kind == "min"]
    ceilings = [o for o in effects if o.kind == "max"]
    if ceilings:
        low = min(ceilings, key=lambda o: o.value)
        if count > low.value:
            reasons.append(
                Reason(
                    f"{low.source}_ceiling",
                    f"capped at {low.value}: {low.explanation} (wanted {count})",
                    low.value,
                    effect=low.name,
                )
            )
            count = low.value
    if floors:
        high = max(floors, key=lambda o: o.value)
        if count < high.value:
            reasons.append(
                Reason(
                    f"{high.source}_floor",
                    f"raised to {high.value}: {high.explanation} (wanted {count})",
                    high.value,
                    effect=high.name,
                )
            )
            count = high.value
    return count


def _clamp_to_pool(pool: PoolConfig, count: int, reasons: list[Reason]) -> int:
    if count < pool.min:
        reasons.append(Reason("pool_min", f"raised to pool min {pool.min} (wanted {count})", pool.min))
        return pool.min
    if count > pool.max:
        reasons.append(Reason("pool_max", f"clamped to pool max {pool.max} (wanted {count})", pool.max))
        return pool.max
    return count


def _manual_pin(overrides: Sequence[OverrideEffect]) -> OverrideEffect | None:
    pins = [o for o in overrides if o.kind == "pin"]
    if not pins:
        return None
    # Several pins on one pool: the manual one that expires last was set most deliberately.
    return max(pins, key=lambda o: (o.source == "manual", o.expires_at.timestamp() if o.expires_at else 0.0))


def _last_change(pool: str, actions: Sequence[PastAction]) -> PastAction | None:
    mine = [a for a in actions if a.pool == pool and a.count != a.previous]
    return max(mine, key=lambda a: a.at) if mine else None


def _rps(value: float) -> str:
    """Rates in messages: one decimal for big numbers, three significant digits for small ones."""
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))
