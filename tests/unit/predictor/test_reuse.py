"""The seasonal model between refits (predictor/reuse.py, ``predictor.refit_every``): once its history is full it
keeps its fit for ``refit_s`` of data, predicting from today's features; a short history, a new step or horizon,
a changed feature set or an old fit mean a full fit again. Without ``refit_s`` every call fits afresh."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.series import RateSeries
from predictor.seasonal import DAY, SeasonalPredictor

STEP = 300.0
T0 = 1_700_006_400.0
HORIZON = 1800.0


def series(days: float) -> RateSeries:
    rng = np.random.default_rng(7)
    t = T0 + STEP * np.arange(1, int(days * DAY / STEP) + 1)
    rps = (100 + 80 * np.sin(2 * np.pi * (t % DAY) / DAY)) * np.exp(0.05 * rng.standard_normal(t.shape[0]))
    return RateSeries(t, rps, STEP)


def at(history: RateSeries, now: float) -> RateSeries:
    return history.before(now + 1)


def test_a_full_history_keeps_its_fit_until_refit_s_has_passed() -> None:
    history = series(12)
    model = SeasonalPredictor(history_s=8 * DAY, refit_s=6 * 3600)
    first_now = T0 + 10 * DAY
    model.forecast(at(history, first_now), first_now, HORIZON)
    assert model.memo is not None and model.memo.kept is not None
    fitted_at = model.memo.kept.at
    later = first_now + 4 * 3600  # 4 hours of new data: the kept fit
    kept = model.forecast(at(history, later), later, HORIZON)
    assert model.memo.kept.at == fitted_at
    fresh = SeasonalPredictor(history_s=8 * DAY).forecast(at(history, later), later, HORIZON)
    assert kept.peak_rps == pytest.approx(fresh.peak_rps, rel=0.05)  # today's features, yesterday's coefficients
    assert kept.observed_rps == fresh.observed_rps
    much_later = first_now + 7 * 3600
    model.forecast(at(history, much_later), much_later, HORIZON)
    assert model.memo.kept.at > fitted_at  # refit


def test_a_growing_history_and_a_new_horizon_refit_every_time() -> None:
    history = series(5)
    model = SeasonalPredictor(history_s=8 * DAY, refit_s=6 * 3600)  # 5 days of an 8-day window: still growing
    for hours in (0, 1, 2):
        now = T0 + 4 * DAY + hours * 3600
        got = model.forecast(at(history, now), now, HORIZON)
        assert got.peak_rps == SeasonalPredictor(history_s=8 * DAY).forecast(at(history, now), now, HORIZON).peak_rps
    full = SeasonalPredictor(history_s=3 * DAY, refit_s=6 * 3600)
    now = T0 + 4 * DAY
    full.forecast(at(history, now), now, HORIZON)
    assert full.memo is not None and full.memo.kept is not None
    fitted_at = full.memo.kept.at
    full.forecast(at(history, now + 3600), now + 3600, 2 * HORIZON)  # another horizon: another model
    assert full.memo.kept.at > fitted_at


def test_without_refit_s_every_call_fits_afresh() -> None:
    history = series(10)
    model = SeasonalPredictor(history_s=8 * DAY)
    assert model.memo is None
    now = T0 + 9 * DAY
    assert model.forecast(at(history, now), now, HORIZON) == model.forecast(at(history, now), now, HORIZON)
