"""The seasonal model: recovers a daily pattern, degrades gracefully, and is causal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.series import RateSeries
from predictor.seasonal import COLD_MULTIPLIER, DAY, SeasonalPredictor, _trailing_mean

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
    tiny = daily(1).window(T0, T0 + 3600 + 1)  # 12 samples: no error can be measured yet
    cold = pred.forecast(tiny, tiny.last_t, 1800)
    assert cold.details["mode"] == "cold"
    assert cold.peak_rps == pytest.approx(COLD_MULTIPLIER * float(np.max(tiny.rps)))


def test_less_history_means_wider_headroom_budget() -> None:
    pred = SeasonalPredictor()
    assert pred._budget_pct(3600) < pred._budget_pct(DAY / 2) < pred._budget_pct(DAY) == pred._budget_pct(5 * DAY)
    assert pred._budget_pct(5 * DAY) == pytest.approx(0.5)


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
