"""Headroom calibration: the smallest (multiplier, floor) that meets the SLO budget on history."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.headroom import calibrate, unserved_share


def test_no_errors_no_headroom() -> None:
    forecast = np.full(100, 10.0)
    demand = np.full((100, 4), 10.0)
    h = calibrate(forecast, demand, 0.5)
    assert h.multiplier == pytest.approx(1.0)
    assert h.floor_rps == 0.0
    assert h.unserved_pct == 0.0


def test_multiplier_follows_the_residuals_and_meets_the_budget() -> None:
    rng = np.random.default_rng(1)
    forecast = rng.uniform(10, 100, 2000)
    small = forecast[:, None] * np.exp(0.05 * rng.standard_normal((2000, 4)))
    large = forecast[:, None] * np.exp(0.30 * rng.standard_normal((2000, 4)))
    hs, hl = calibrate(forecast, small, 0.5), calibrate(forecast, large, 0.5)
    assert 1.0 < hs.multiplier < hl.multiplier
    for h, d in ((hs, small), (hl, large)):
        assert h.unserved_pct <= 0.5 + 1e-9
        assert unserved_share(np.maximum(h.multiplier * forecast, h.floor_rps), d) * 100 == pytest.approx(
            h.unserved_pct
        )
    # Smallest: 2 % less headroom would break the budget.
    assert unserved_share(hl.multiplier * 0.98 * forecast, large) * 100 > 0.5


def test_a_looser_budget_needs_less_headroom() -> None:
    rng = np.random.default_rng(2)
    forecast = rng.uniform(10, 100, 1000)
    demand = forecast[:, None] * np.exp(0.2 * rng.standard_normal((1000, 6)))
    assert calibrate(forecast, demand, 2.0).multiplier < calibrate(forecast, demand, 0.2).multiplier


def test_bursts_teach_a_floor() -> None:
    """Bursts to 60 req/s at any time of a 5–50 req/s cycle: a floor is far cheaper than a 12× multiplier."""
    rng = np.random.default_rng(3)
    forecast = rng.uniform(5, 50, 3000)
    demand = np.repeat(forecast[:, None], 4, axis=1)
    bursts = rng.random((3000, 4)) < 0.01
    demand[bursts] = 60.0
    h = calibrate(forecast, demand, 0.5)
    assert h.floor_rps >= 40.0  # standing capacity for the bursts …
    assert h.multiplier < 1.5  # … instead of a 12× multiplier on the quiet hours
    assert h.unserved_pct <= 0.5


def test_unobserved_cells_are_ignored() -> None:
    forecast = np.full(10, 5.0)
    demand = np.full((10, 3), 5.0)
    demand[0, 0] = np.nan
    assert calibrate(forecast, demand, 0.1).multiplier == pytest.approx(1.0)


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError):
        calibrate(np.ones(3), np.ones((4, 2)), 1.0)


def test_recent_errors_can_weigh_more() -> None:
    """Old rows were calm, recent rows are noisy: weighting recent rows up buys more headroom."""
    rng = np.random.default_rng(4)
    forecast = rng.uniform(10, 100, 2000)
    noise = np.where(np.arange(2000)[:, None] < 1500, 0.02, 0.3)
    demand = forecast[:, None] * np.exp(noise * rng.standard_normal((2000, 4)))
    flat = calibrate(forecast, demand, 0.5)
    recent = calibrate(forecast, demand, 0.5, weight=0.5 ** ((1999 - np.arange(2000)) / 200))
    assert recent.multiplier > flat.multiplier
    assert recent.unserved_pct <= 0.5 + 1e-9
