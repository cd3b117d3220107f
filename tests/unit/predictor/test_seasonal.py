"""The seasonal model: recovers a daily pattern, degrades gracefully, and is causal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.series import RateSeries
from predictor.seasonal import (
    COLD_MULTIPLIER,
    DAY,
    PolicyShape,
    SeasonalPredictor,
)
from predictor.windows import held_back as _held_back
from predictor.windows import trailing_max as _trailing_max
from predictor.windows import trailing_mean as _trailing_mean

STEP = 300.0
T0 = 1_700_006_400.0  # a UTC midnight


def daily(days: float, noise: float = 0.0, seed: int = 0) -> RateSeries:
    """100 + 80·sin(2π·tod): a ramp every morning, stamped at interval ends like the trace source."""
    rng = np.random.default_rng(seed)
    t = T0 + STEP * np.arange(1, int(days * DAY / STEP) + 1)
    rps = 100 + 80 * np.sin(2 * np.pi * (t % DAY) / DAY) * 1.0
    rps = rps * np.exp(noise * rng.standard_normal(t.shape[0]))
    return RateSeries(t, rps, STEP)


def true_peak(now: float, horizon: float) -> float:
    t = np.arange(now, now + horizon + 1, 60.0)
    return float(np.max(100 + 80 * np.sin(2 * np.pi * (t % DAY) / DAY)))


@pytest.mark.parametrize("hour", [3.0, 6.0, 9.0, 15.0, 21.0])
def test_recovers_a_known_daily_pattern(hour: float) -> None:
    now = T0 + 9 * DAY + hour * 3600
    history = daily(10).before(now + 1)
    fc = SeasonalPredictor().forecast(history, now, 1800)
    assert fc.details["mode"] in ("daily", "weekly")
    # The point forecast is the peak of the coming window, within a few % even on the ramp.
    assert fc.details["predicted_rps"] == pytest.approx(true_peak(now, 1800), rel=0.05)
    # Noise-free history: almost no headroom is needed to meet the SLO.
    assert float(fc.details["multiplier"]) < 1.05
    assert fc.peak_rps >= float(fc.details["predicted_rps"]) - 1e-3


def test_headroom_grows_with_the_models_errors() -> None:
    now = T0 + 9 * DAY + 8 * 3600
    calm = SeasonalPredictor().forecast(daily(10, noise=0.02).before(now + 1), now, 1800)
    noisy = SeasonalPredictor().forecast(daily(10, noise=0.25).before(now + 1), now, 1800)
    assert float(noisy.details["multiplier"]) > float(calm.details["multiplier"]) + 0.1


def test_a_stricter_slo_buys_more_headroom() -> None:
    now = T0 + 9 * DAY + 8 * 3600
    history = daily(10, noise=0.2).before(now + 1)
    loose = SeasonalPredictor(slo_unserved_pct=5.0).forecast(history, now, 1800)
    strict = SeasonalPredictor(slo_unserved_pct=0.1).forecast(history, now, 1800)
    assert strict.peak_rps > loose.peak_rps


def test_little_history_falls_back_to_trend_then_cold() -> None:
    pred = SeasonalPredictor()
    one_day = daily(1)
    fc = pred.forecast(one_day, one_day.last_t, 1800)
    assert fc.details["mode"] == "trend"
    tiny = daily(1).window(T0, T0 + 3600 + 1)  # 12 samples: too few rows for the trend model
    cold = pred.forecast(tiny, tiny.last_t, 1800)
    assert cold.details["mode"] == "cold"
    # Reactive: at least the peak of the last horizon (6 samples), with headroom from the history's growth.
    assert cold.peak_rps >= float(np.max(tiny.rps[-6:])) - 1e-9
    single = RateSeries(tiny.t[:1], tiny.rps[:1], STEP)  # one sample: no growth measurable yet
    assert pred.forecast(single, single.last_t, 1800).peak_rps == pytest.approx(COLD_MULTIPLIER * tiny.rps[0])
    assert COLD_MULTIPLIER == 1.0  # the rate seen: never more than what has been seen


def test_cold_start_at_one_second_never_plans_past_the_highest_need_seen() -> None:
    """Fifteen minutes of bursty 1-second samples (a new pool on a fine-grained source), lead 10 min, tick
    20 min: the step-to-step growth of 1-second samples is enormous, and it must not become the headroom (it
    asked for 20× the highest rate ever seen). The capacity is bounded by the highest sample seen, whatever
    the resolution."""
    rng = np.random.default_rng(11)
    t = T0 + np.arange(1, 901, dtype=np.float64)
    rps = rng.poisson(2.5, 900) * np.where(rng.random(900) < 0.02, 8.0, 1.0)
    one_second = RateSeries(t, rps.astype(np.float64), 1.0)
    pred = SeasonalPredictor(policy=PolicyShape(lead_s=600.0, guard_s=120.0, window_s=3600.0))
    fc = pred.forecast(one_second, float(t[-1]), 1800.0)
    assert fc.details["mode"] == "cold"
    assert float(np.max(rps)) * 0.5 <= fc.peak_rps <= float(np.max(rps)) + 1e-9
    assert fc.guard_rps(float(np.max(rps))) <= float(np.max(rps)) + 1e-9


def minute_series(rps: np.ndarray) -> RateSeries:
    return RateSeries(T0 + 60.0 * np.arange(1, rps.shape[0] + 1), rps, 60.0)


def test_cold_start_is_cheap_on_steady_traffic_and_safe_on_growth() -> None:
    """An hour of 1-minute samples (a new pool), horizon 7 minutes: steady traffic is never provisioned past
    its highest minute, and growing traffic is provisioned for where it will be."""
    pred = SeasonalPredictor(policy=PolicyShape(lead_s=120.0, guard_s=120.0, window_s=3600.0))
    rng = np.random.default_rng(3)
    steady = minute_series(100.0 * rng.lognormal(0.0, 0.05, 60))
    fc = pred.forecast(steady, steady.last_t, 420.0)
    assert fc.details["mode"] == "cold"
    assert fc.peak_rps <= float(np.max(steady.rps)) + 1e-9  # never past what it has seen
    assert fc.guard_rps(1e6) == 1e6  # the observed rate itself is never capped
    growing = minute_series(100.0 * 1.01 ** np.arange(60))
    fc = pred.forecast(growing, growing.last_t, 420.0)
    # Safe: covers the growth until the guard's reaction to the next sample is ready (5 of the 7 minutes;
    # the guard follows from there), learned from the history's own step-to-step growth.
    assert fc.peak_rps >= growing.last_rps * 1.01**5


def test_the_budget_is_half_the_slo() -> None:
    assert SeasonalPredictor()._budget_pct() == pytest.approx(0.5)
    assert SeasonalPredictor(slo_unserved_pct=0.2)._budget_pct() == pytest.approx(0.1)


def test_a_queue_fed_pool_is_calibrated_for_its_wait_slo() -> None:
    """A queue-fed pool's budget is half the share of requests its SLO lets wait longer (p95: 5 % → 2.5 %), and
    its headroom is scored on waits: a tighter latency SLO buys more headroom on the same history."""
    queued = SeasonalPredictor(policy=PolicyShape(wait_slo_s=3.0, wait_beyond_pct=5.0))
    assert queued._budget_pct() == pytest.approx(2.5)
    assert queued._wait(STEP) is not None and queued._wait(STEP).slo_s == 3.0  # type: ignore[union-attr]
    assert SeasonalPredictor()._wait(STEP) is None
    now = T0 + 9 * DAY + 8 * 3600
    history = daily(10, noise=0.15).before(now + 1)
    loose = SeasonalPredictor(policy=PolicyShape(wait_slo_s=600.0)).forecast(history, now, 1800)
    tight = SeasonalPredictor(policy=PolicyShape(wait_slo_s=0.5)).forecast(history, now, 1800)
    assert tight.peak_rps > loose.peak_rps
    assert float(tight.details["budget_pct"]) == pytest.approx(2.5)
    assert tight.details["slo_metric"] == "requests waiting longer than 0.5 s"
    assert SeasonalPredictor().forecast(history, now, 1800).details["slo_metric"] == "unserved requests"


def test_gaps_are_skipped_not_read_as_zero() -> None:
    full = daily(9)
    keep = np.ones(len(full), dtype=bool)
    keep[len(full) - 400 : len(full) - 300] = False  # an 8-hour hole a day ago
    gappy = RateSeries(full.t[keep], full.rps[keep], STEP)
    now = full.last_t
    a = SeasonalPredictor().forecast(full, now, 1800)
    b = SeasonalPredictor().forecast(gappy, now, 1800)
    assert b.peak_rps == pytest.approx(a.peak_rps, rel=0.1)
    assert b.peak_rps > 0.5 * float(np.max(full.rps[-6:]))


def test_a_nan_sample_is_ignored() -> None:
    s = daily(3)
    rps = s.rps.copy()
    rps[-50] = math.nan
    fc = SeasonalPredictor().forecast(RateSeries(s.t, rps, STEP), s.last_t, 1800)
    assert math.isfinite(fc.peak_rps)


@settings(max_examples=15, deadline=None)
@given(
    cut=st.integers(min_value=30, max_value=300),
    future=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50),
)
def test_forecast_at_t_ignores_everything_after_t(cut: int, future: list[float]) -> None:
    base = daily(2, noise=0.1, seed=cut)
    now = float(base.t[cut])
    changed = base.rps.copy()
    changed[cut + 1 : cut + 1 + len(future)] = future[: len(changed) - cut - 1]
    pred = SeasonalPredictor()
    a = pred.forecast(base, now, 1800)
    b = pred.forecast(RateSeries(base.t, changed, STEP), now, 1800)
    assert a == b


@pytest.mark.parametrize("days", [0.01, 0.5, 3.0])
def test_all_zero_traffic_forecasts_zero(days: float) -> None:
    t = T0 + STEP * np.arange(1, int(days * DAY / STEP) + 2)
    fc = SeasonalPredictor().forecast(RateSeries(t, np.zeros(t.shape[0]), STEP), float(t[-1]), 1800)
    assert fc.peak_rps == pytest.approx(0.0, abs=1e-6)
    assert fc.observed_rps == 0.0


def test_jittered_prometheus_timestamps_are_gridded() -> None:
    s = daily(3, noise=0.05)
    rng = np.random.default_rng(5)
    jittered = RateSeries(s.t + rng.uniform(-2, 2, len(s)), s.rps, STEP)
    a = SeasonalPredictor().forecast(s, s.last_t, 1800)
    b = SeasonalPredictor().forecast(jittered, s.last_t + 2, 1800)
    assert b.peak_rps == pytest.approx(a.peak_rps, rel=0.05)


def test_empty_history_is_an_error_the_tick_reports() -> None:
    with pytest.raises(ValueError, match="no samples"):
        SeasonalPredictor().forecast(RateSeries.from_lists([], [], STEP), T0, 1800)


def test_trailing_mean_uses_what_there_is_then_a_full_window() -> None:
    y = np.array([1.0, np.nan, 3.0, 5.0, 7.0])
    out = _trailing_mean(y, 2)
    assert out.tolist() == [1.0, 1.0, 3.0, 4.0, 6.0]


def test_learned_floor_follows_the_traffic_level() -> None:
    """Bursty traffic whose level doubled a day ago: the floor is sized for today's level, not the average."""
    rng = np.random.default_rng(9)
    t = T0 + STEP * np.arange(1, int(10 * DAY / STEP) + 1)
    level = np.where(t < T0 + 8.5 * DAY, 10.0, 20.0)
    rps = level * (1 + 0.1 * rng.standard_normal(t.shape[0]))
    burst = rng.random(t.shape[0]) < 0.02
    rps[burst] = 6 * level[burst]
    history = RateSeries(t, rps, STEP)
    fc = SeasonalPredictor().forecast(history, float(t[-1]), 1800)
    floor = float(fc.details["floor_rps"])
    assert floor > 0
    # Today's bursts reach 120 req/s; a floor learned in absolute terms on mostly-10-req/s days sits near 60.
    assert floor > 80.0


# -- robustness: what the headroom must shrug off (benchmarks/robustness.py replays the same cases) --------


def noisy_diurnal(days: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Trough 25, peak 100 req/s at 15:00 UTC, 8 % multiplicative noise; 5-minute samples."""
    rng = np.random.default_rng(seed)
    t = T0 + STEP * np.arange(1, int(days * DAY / STEP) + 1)
    hours = (t % DAY) / 3600.0
    shape = 0.25 + 0.75 * (0.5 + 0.5 * np.cos(2 * np.pi * (hours - 15.0) / 24.0)) ** 2
    return t, 100.0 * shape * rng.lognormal(0.0, 0.08, t.shape[0])


def headroom_at(t: np.ndarray, y: np.ndarray, day: float) -> float:
    """Capacity asked at T0 + day over the true peak of the coming 30 minutes (1 = no headroom)."""
    now = T0 + day * DAY
    fc = SeasonalPredictor(policy=PolicyShape(guard_s=120.0, window_s=3600.0)).forecast(
        RateSeries(t[t <= now], y[t <= now], STEP), now, 1800.0
    )
    return fc.peak_rps / float(np.max(y[(t > now) & (t <= now + 1800.0)]))


def test_an_outage_then_a_jump_does_not_hold_days_of_headroom() -> None:
    """8 hours at 5 % then ×20: the floor is not learned against the near-zero day and the forecast does
    not extrapolate the jump (the old model asked for 12× the coming peak 16 hours later, 7× a day later)."""
    t, y = noisy_diurnal(3, 1)
    y = y * np.where(t - T0 < 8 * 3600.0, 0.05, 1.0)
    for day in (0.75, 1.0, 1.5, 2.0):
        assert headroom_at(t, y, day) < 1.3


def test_a_single_spike_decays_but_recurring_spikes_are_planned_for() -> None:
    """One 6× spike of 15 minutes (shorter than lead time + guard) must not hold 4× headroom for days;
    the same spike on four days at different hours must keep being planned for."""
    for label, spikes in (("single", [(4, 11)]), ("recurring", [(1, 11), (2, 3), (3, 17), (4, 8)])):
        t, y = noisy_diurnal(6, 2)
        for day, hour in spikes:
            at = int((day * DAY + hour * 3600.0) / STEP)
            y[at : at + 3] *= 6.0
        late = [headroom_at(t, y, day) for day in (5.0, 5.5)]
        if label == "single":
            assert max(late) < 1.3, late
        else:
            assert min(late) > 3.0, late


def test_a_step_up_is_followed_within_hours() -> None:
    t, y = noisy_diurnal(6, 3)
    y = y * np.where(t - T0 < 4 * DAY + 9 * 3600.0, 1.0, 2.0)
    assert headroom_at(t, y, 4.0 + 18 / 24) >= 1.0  # 9 hours after the step: sized for the new level
    assert headroom_at(t, y, 5.0) < 1.3


def test_trailing_max_and_held_back_helpers() -> None:
    y = np.array([1.0, 5.0, np.nan, 2.0, 3.0, 1.0])
    assert _trailing_max(y, 2).tolist() == [1.0, 5.0, 5.0, 2.0, 3.0, 3.0]
    assert _trailing_max(y, 10).tolist() == [1.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    held = _held_back(np.array([1.0, 4.0, 2.0, 0.5]), [0, 2])
    assert held.tolist() == [1.0, 4.0, 2.0, 4.0]


def test_cover_credits_the_ticks_observed_need_and_the_guard_at_their_lags() -> None:
    """5-minute samples, lead 10 min, guard every 2 min, horizon 6 cells. Cell j holds the sample ending j
    steps after the decision and is served by the nodes ready at its end (the SLO's accounting, as the
    replay scores it): the tick's own observed-rate need is ready from cell 2 (exactly the lead), the
    guard's reaction to sample k from cell k + 3 (seen at most a guard interval after its end, ready a
    lead time later: 12 min ≤ 3 cells). Neither is credited a cell later than it serves (that would buy
    headroom for what the policy already covers) nor earlier."""
    pred = SeasonalPredictor(policy=PolicyShape(lead_s=600.0, guard_s=120.0, window_s=0.0))
    y = np.arange(1.0, 21.0)
    cal = np.array([5])
    cover, reaction = pred._cover(y, cal, 6, STEP, np.full(20, np.nan))
    # y[5] = 6 is observed at the decision; y[6] = 7 is the first sample after it. The guard's reaction is
    # kept apart: the guard scales it by its own multiplier.
    assert cover.tolist() == [[0.0, 6.0, 6.0, 6.0, 6.0, 6.0]]
    assert reaction.tolist() == [[0.0, 0.0, 0.0, 7.0, 8.0, 9.0]]
    no_guard = SeasonalPredictor(policy=PolicyShape(lead_s=600.0, guard_s=None, window_s=0.0))
    cover, reaction = no_guard._cover(y, cal, 6, STEP, np.full(20, np.nan))
    assert cover.tolist() == [[0.0, 6.0, 6.0, 6.0, 6.0, 6.0]] and not reaction.any()
    # A lead that is not a whole number of cells: ready 11 min after the decision serves cell 3 on.
    odd = SeasonalPredictor(policy=PolicyShape(lead_s=660.0, guard_s=None, window_s=0.0))
    assert odd._cover(y, cal, 6, STEP, np.full(20, np.nan))[0].tolist() == [[0.0, 0.0, 6.0, 6.0, 6.0, 6.0]]
    held = np.full(20, 50.0)  # needs held by the scale-in window cover every cell at once
    assert no_guard._cover(y, cal, 6, STEP, held)[0].tolist() == [[50.0] * 6]
