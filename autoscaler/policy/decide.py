"""decide: the policy, as one pure function. No I/O, no clock: everything comes in as arguments.

Precedence (DESIGN.md): manual pin > max(schedule floor, forecast need, reactive need), then the
pool's min/max. Scale-in is cautious (cooldown, step limit, never below the observed need) and
missing metrics never shrink a fleet. Every clamp is reported as a Reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from autoscaler.core.decision import Decision, Estimate, PastAction, PoolState, Reason
from autoscaler.core.durations import format_duration
from autoscaler.core.effects import OverrideEffect
from autoscaler.core.settings.forescale import PoolConfig
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
    *,
    bad_data: bool = False,
    data_notes: Sequence[str] = (),
) -> Decision:
    """Return the count ``pool`` should have at ``now`` and every reason that shaped it.

    ``current`` is the pool's state (or just its desired count): decide compares with and steps from the
    *desired* count, never from the placed one — nodes still booting are queued in Nomad, and stepping from
    what is placed would re-send (or even lower) a count already asked for. Placed and queued are carried
    into the Decision for reporting. ``forecast`` is None when metrics are unavailable or were refused as bad
    data (``metrics_error`` says why): the pool holds. ``data_notes`` say which samples were ignored on the
    way (shown as ``bad_data`` reasons).
    """
    screen = (bad_data, tuple(data_notes))
    if not isinstance(current, PoolState):
        return _decide(pool, now, current, forecast, overrides, recent_actions, metrics_error, screen)
    decision = _decide(pool, now, current.desired, forecast, overrides, recent_actions, metrics_error, screen)
    return replace(decision, placed=current.placed, queued=current.queued, rescheduling=current.rescheduling)


def _decide(
    pool: PoolConfig,
    now: datetime,
    current: int,
    forecast: Forecast | None,
    overrides: Sequence[OverrideEffect],
    recent_actions: Sequence[PastAction],
    metrics_error: str | None,
    screen: tuple[bool, tuple[str, ...]] = (False, ()),
) -> Decision:
    bad_data, data_notes = screen
    if current < 0:
        raise ValueError("current count cannot be negative")
    pin = _manual_pin(overrides)

    if forecast is None:
        return _held(pool, now, current, overrides, pin, metrics_error or "no forecast", bad_data)

    forecast_nodes, reactive_nodes, reasons = forecast_need(pool, forecast)
    reasons.extend(Reason("bad_data", note) for note in data_notes)
    need = max(forecast_nodes, reactive_nodes)
    wanted = need

    step_up = pool.step_up_nodes(current)
    if need > current and step_up is not None and need - current > step_up:
        wanted = current + step_up
        share = _share(pool.max_step_up, current)
        reasons.append(Reason("step_up", f"step limit: +{step_up} per tick{share} (wanted {need})", wanted))
    elif need < current:
        last = _last_change(pool.name, recent_actions)
        step_down = pool.step_down_nodes(current)
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
            wanted = current
            reasons.append(
                Reason(
                    "cooldown",
                    f"scale-in cooldown: last change {last.previous}→{last.count} at "
                    f"{last.at:%H:%M} UTC; no scale-in before {until:%H:%M} UTC (wanted {need})",
                    current,
                )
            )
        if wanted < current and step_down is not None and current - need > step_down:
            wanted = current - step_down
            reasons.append(
                Reason(
                    "step_down",
                    f"step limit: -{step_down} per tick{_share(pool.max_step_down, current)} (wanted {need})",
                    wanted,
                )
            )

    count = wanted
    for source in ("schedule", "manual"):
        count = _apply_bounds(count, [o for o in overrides if o.source == source], reasons)

    if pin is not None:
        reasons.append(Reason("manual_pin", f"{pin.explanation} (forecast wanted {need})", pin.value))
        count = pin.value

    count = _clamp_to_pool(pool, count, reasons)
    return Decision(
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
        forecast_details=dict(forecast.details),
    )


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


def estimate(pool: PoolConfig, now: datetime, forecast: Forecast) -> Estimate:
    """The forecast's need alone (no current count: no step limit, cooldown or overrides applied)."""
    forecast_nodes, reactive_nodes, reasons = forecast_need(pool, forecast)
    return Estimate(
        pool=pool.name,
        at=now,
        forecast_rps=forecast.peak_rps,
        observed_rps=forecast.observed_rps,
        forecast_nodes=forecast_nodes,
        reactive_nodes=reactive_nodes,
        reasons=tuple(reasons),
    )


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
        reasons.append(Reason(f"{top.source}_floor", f"raised to {count}: {top.explanation}", count))
    if pin is not None:
        count = pin.value
        reasons.append(Reason("manual_pin", pin.explanation, count))
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
                Reason(f"{low.source}_ceiling", f"capped at {low.value}: {low.explanation} (wanted {count})", low.value)
            )
            count = low.value
    if floors:
        high = max(floors, key=lambda o: o.value)
        if count < high.value:
            reasons.append(
                Reason(
                    f"{high.source}_floor", f"raised to {high.value}: {high.explanation} (wanted {count})", high.value
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
