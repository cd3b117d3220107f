"""Degraded forecasts (issue 21 deliverable 4) and the guard's screened rate (issue 22 item 1), through run_tick.

A forecast whose window has a gap (or whose latest sample is not yet confirmed) is not the model's: the tick
plans with the last good forecast while its horizon lasts, else the observed rate, says ``degraded: …`` and
never scales in. The guard reads its rate through the same screen as the tick, and scales it by the headroom
the last good forecast chose for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from autoscaler.core.clock import ManualClock
from autoscaler.core.series import RateSeries
from autoscaler.policy.tick import run_tick
from autoscaler.targets.simulated import SimulatedCluster
from predictor.base import Forecast
from tests.helpers import T0, make_config, make_deps, pool_dict

STEP = 60.0


class ScriptMetrics:
    """One-minute samples of ``value(t)``; None is a sample the source does not have (a gap)."""

    step_s = STEP

    def __init__(self, value: Callable[[float], float | None]) -> None:
        self.value = value

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        first, last = int(start.timestamp() // STEP) + 1, int(end.timestamp() // STEP)
        points = [(k * STEP, self.value(k * STEP)) for k in range(first, last + 1)]
        kept = [(t, v) for t, v in points if v is not None]
        return RateSeries.from_lists([t for t, _ in kept], [v for _, v in kept], STEP)


class Fixed:
    """A predictor answering one forecast (with a guard headroom) and counting its calls."""

    name = "fixed"

    def __init__(self, peak: float, guard_multiplier: float = 1.0) -> None:
        self.peak, self.guard_multiplier, self.calls = peak, guard_multiplier, 0

    def history_seconds(self) -> float:
        return 6 * 3600.0

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        self.calls += 1
        return Forecast(self.peak, history.last_rps, horizon_s, self.name, guard_multiplier=self.guard_multiplier)


NOW = T0.timestamp()


def gap_then_back(t: float) -> float | None:
    """80 req/s, nothing from 3 hours ago until 4 minutes ago, then a rate() warming up (low readings)."""
    if NOW - 3 * 3600 <= t < NOW - 240:
        return None
    return 10.0 if t >= NOW - 240 else 80.0


def deps_for(value: Callable[[float], float | None], predictor: Fixed, count: int = 12):  # type: ignore[no-untyped-def]
    cfg = make_config(pool_dict("ocr", target_utilization=1.0, scale_in_cooldown="0s", scale_in_window="0s"))
    clock = ManualClock(T0)
    deps = make_deps(cfg, ScriptMetrics(value), target=SimulatedCluster(clock, {"ocr": count}), clock=clock)
    deps.predictor_for = lambda _p: predictor
    return deps


def test_a_gap_degrades_the_forecast_which_then_never_scales_in() -> None:
    model = Fixed(peak=20.0)
    deps = deps_for(gap_then_back, model)
    (outcome,) = run_tick(deps).outcomes
    d = outcome.decision
    assert d is not None and d.degraded is not None and "gap in the metrics" in d.degraded
    assert "rate() warming up" in d.degraded
    assert model.calls == 0  # no forecast is made on a window with a hole in it
    assert (d.current, d.desired, d.changed) == (12, 12, False)  # observed 10 req/s needs 1 node: not scaled in
    assert d.forecast_rps == 10.0 and d.model == "observed"
    assert any(r.code == "degraded" and "planning with the observed rate" in r.message for r in d.reasons)


def test_a_degraded_tick_plans_with_the_last_good_forecast_while_it_lasts() -> None:
    model = Fixed(peak=150.0)
    whole = {"on": True}
    deps = deps_for(lambda t: 80.0 if whole["on"] or t < NOW + 600 else None, model, count=2)
    first = run_tick(deps).outcomes[0].decision
    assert first is not None and first.degraded is None and first.desired == 15
    whole["on"] = False  # samples stop after NOW + 10 min; the source is back at NOW + 20 min
    deps.metrics = ScriptMetrics(lambda t: None if NOW + 600 < t < NOW + 1140 else 80.0)
    deps.clock.set(T0 + timedelta(minutes=20))
    second = run_tick(deps).outcomes[0].decision
    assert second is not None and second.degraded is not None
    assert second.forecast_rps == 150.0 and second.desired == 15  # the last good forecast, not the 80 req/s seen
    assert "planning with the last good forecast (made at 12:00 UTC)" in second.reasons[-1].message
    assert model.calls == 1


def test_the_guard_ignores_one_glitch_but_follows_a_confirmed_surge() -> None:
    latest = {"value": 1500.0, "since": NOW}
    deps = deps_for(lambda t: latest["value"] if t >= latest["since"] else 150.0, Fixed(peak=150.0), count=20)
    assert run_tick(deps, guard=True).outcomes == ()  # 10× a steady level, once: believed up to 150 req/s
    assert deps.target.desired_count("ocr") == 20
    latest["since"] = NOW - STEP  # the sample before rose too: a surge
    (outcome,) = run_tick(deps, guard=True).outcomes
    assert outcome.decision is not None and outcome.decision.desired == 50  # the pool's max


def test_the_guard_scales_the_rate_by_the_last_forecasts_guard_headroom() -> None:
    deps = deps_for(lambda t: 100.0, Fixed(peak=100.0, guard_multiplier=1.5), count=2)
    tick = run_tick(deps).outcomes[0].decision
    assert tick is not None and tick.desired == 10
    deps.metrics = ScriptMetrics(lambda t: 100.0 if t < NOW + 120 else 120.0)
    deps.metrics = ScriptMetrics(lambda t: 120.0)  # a level shift, seen whole
    deps.clock.set(T0 + timedelta(minutes=2))
    (outcome,) = run_tick(deps, guard=True).outcomes
    d = outcome.decision
    assert d is not None and (d.observed_rps, d.forecast_rps, d.desired) == (120.0, 180.0, 18)


def test_a_one_shot_guard_reads_the_last_forecasts_headroom_from_the_audit_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """cron: `tick` then, in another process, `tick --guard`: the guard's headroom survives in the audit log."""
    from autoscaler.notify.audit import AuditLog
    from autoscaler.policy.tick import ActionHistory, horizon_seconds

    deps = deps_for(lambda t: 100.0, Fixed(peak=100.0, guard_multiplier=1.5), count=2)
    deps.audit = AuditLog(tmp_path / "audit.jsonl")
    run_tick(deps)
    fresh = ActionHistory()
    cfg = deps.config
    for name, (at, decision) in deps.audit.last_forecasts(T0 - timedelta(minutes=40)).items():
        fresh.remember_forecast(name, at, decision, horizon_seconds(cfg, cfg.pool(name)))
    at, forecast = fresh.forecasts["ocr"]
    assert at == T0 and forecast.guard_multiplier == 1.5 and forecast.peak_rps == 100.0
    assert forecast.guard_rps(120.0) == 180.0


def test_the_guard_reads_its_own_short_window_query_when_given() -> None:
    """guard.query: the guard acts on a short-window rate (rate(x[1m])) while the tick reads the pool's query."""
    from autoscaler.core.settings.forescale import GuardSettings

    deps = deps_for(lambda t: 100.0, Fixed(peak=100.0), count=10)
    pool = deps.config.pools[0]
    short = "sum(rate(http_requests_total[1m]))"
    guarded = pool.model_copy(update={"guard": GuardSettings(query=short)})
    deps.config = deps.config.model_copy(update={"pools": [guarded]})
    seen: list[str] = []
    source = deps.metrics

    class Recording:
        step_s = STEP

        def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
            seen.append(query)
            return source.fetch(query, start, end, step_s)

    deps.metrics = Recording()
    run_tick(deps, guard=True)
    run_tick(deps)
    assert seen == [short, pool.query]
