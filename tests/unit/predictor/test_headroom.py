"""Headroom calibration: the smallest (multiplier, floor) that meets the SLO budget on history."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.headroom import WaitSLO, calibrate, unserved_share, waiting_beyond


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


def _growing_bursts(n: int, start: float, end: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level ramps from start to end; forecasts follow a cycle under it; 1 % of cells burst to 3 × level."""
    rng = np.random.default_rng(seed)
    level = np.linspace(start, end, n)
    forecast = level * rng.uniform(0.3, 1.0, n)
    demand = np.repeat(forecast[:, None], 4, axis=1)
    bursts = rng.random((n, 4)) < 0.01
    demand[bursts] = np.repeat(3.0 * level[:, None], 4, axis=1)[bursts]
    return level, forecast, demand


def test_a_floor_relative_to_the_level_follows_growth() -> None:
    """Bursts scale with traffic: a floor learned as a ratio to the level keeps the SLO when traffic grows."""
    level, forecast, demand = _growing_bursts(3000, 10.0, 20.0, 5)
    relative = calibrate(forecast, demand, 0.5, level=level)
    absolute = calibrate(forecast, demand, 0.5)
    assert relative.floor_ratio > 0 and relative.unserved_pct <= 0.5 + 1e-9
    assert relative.floor_rps == pytest.approx(relative.floor_ratio * level[-1])
    assert absolute.floor_ratio == 0.0 and absolute.at_level(99.0) == absolute
    # Next period: traffic keeps growing (20 → 30).
    lv, fc, dm = _growing_bursts(3000, 20.0, 30.0, 6)
    rel_cap = np.maximum(relative.multiplier * fc, relative.floor_ratio * lv)
    abs_cap = np.maximum(absolute.multiplier * fc, absolute.floor_rps)
    assert unserved_share(rel_cap, dm) * 100 <= 0.5
    assert unserved_share(abs_cap, dm) * 100 > 2 * unserved_share(rel_cap, dm) * 100


def test_at_level_scales_the_floor() -> None:
    level, forecast, demand = _growing_bursts(2000, 10.0, 10.0, 7)
    h = calibrate(forecast, demand, 0.5, level=level)
    assert h.at_level(40.0).floor_rps == pytest.approx(4 * h.at_level(10.0).floor_rps)
    assert h.at_level(40.0).multiplier == h.multiplier


def test_level_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError):
        calibrate(np.ones(3), np.ones((3, 2)), 1.0, level=np.ones(4))


def test_the_floor_never_exceeds_its_cap() -> None:
    """Rare bursts to 60 on a 5–50 cycle teach a floor; a cap (the recent peak) of 45 bounds it."""
    rng = np.random.default_rng(3)
    forecast = rng.uniform(5, 50, 3000)
    demand = np.repeat(forecast[:, None], 4, axis=1)
    demand[rng.random((3000, 4)) < 0.01] = 60.0
    free = calibrate(forecast, demand, 0.5)
    capped = calibrate(forecast, demand, 0.5, floor_cap=np.full(3000, 45.0))
    assert free.floor_rps > 45.0
    assert capped.floor_rps <= 45.0
    assert capped.at_level(1.0, 30.0).floor_rps <= 30.0  # at decision time: the cap then


def test_capacity_the_policy_already_has_needs_no_headroom() -> None:
    """Errors in cells the guard (``cover``) serves are not bought twice."""
    rng = np.random.default_rng(6)
    forecast = rng.uniform(10, 100, 2000)
    demand = forecast[:, None] * np.exp(0.3 * rng.standard_normal((2000, 6)))
    cover = np.zeros_like(demand)
    cover[:, 3:] = demand[:, 3:]  # the last three cells of every window: served by the guard
    bare = calibrate(forecast, demand, 0.5)
    covered = calibrate(forecast, demand, 0.5, cover=cover)
    assert covered.multiplier < bare.multiplier
    capacity = np.maximum((covered.multiplier * forecast)[:, None], cover)
    assert float(np.sum(np.maximum(demand - capacity, 0.0))) / float(np.sum(demand)) * 100 <= 0.5 + 1e-6


def test_errors_no_candidate_can_serve_do_not_force_the_largest_headroom() -> None:
    """A near-zero forecast followed by real demand (a restart after an outage) cannot be served by any
    multiplier or floor within the cap: it must not push the headroom to the maximum."""
    rng = np.random.default_rng(8)
    forecast = rng.uniform(10, 100, 1000)
    demand = forecast[:, None] * np.exp(0.05 * rng.standard_normal((1000, 4)))
    forecast[500] = 1e-6
    demand[500] = 500.0
    h = calibrate(forecast, demand, 0.5, floor_cap=np.full(1000, 120.0))
    assert h.multiplier < 1.2 and h.floor_rps < 120.0


def test_rare_events_buy_more_headroom_than_steady_noise_of_the_same_share() -> None:
    """With blocks (rows sharing an event), the budget holds with one standard error to spare: the same
    unserved share from a few bursts is less certain than from noise spread over every block."""
    rng = np.random.default_rng(9)
    n = 3000
    forecast = np.full(n, 10.0)
    spread = np.repeat(forecast[:, None], 4, axis=1) * (1 + 0.25 * rng.random((n, 4)))
    rare = np.repeat(forecast[:, None], 4, axis=1)
    rare[rng.choice(n, 12, replace=False)] = 40.0
    block = np.arange(n) // 4
    for demand in (spread, rare):
        plain = calibrate(forecast, demand, 0.5)
        robust = calibrate(forecast, demand, 0.5, block=block)
        assert robust.multiplier >= plain.multiplier - 1e-9
    gain_spread = calibrate(forecast, spread, 0.5, block=block).multiplier / calibrate(forecast, spread, 0.5).multiplier
    gain_rare = calibrate(forecast, rare, 0.5, block=block).multiplier / calibrate(forecast, rare, 0.5).multiplier
    assert gain_rare > gain_spread


def test_less_history_of_the_same_errors_buys_more_headroom() -> None:
    """The same error pattern seen over 5 blocks or over 50: the replayed share is identical, its standard
    error is not, so the short history gets the wider headroom (how cold start stays safe)."""
    rng = np.random.default_rng(10)
    calm = np.full((20, 4), 10.0) * np.exp(0.05 * rng.standard_normal((20, 4)))
    noisy = np.full((20, 4), 10.0) * np.exp(0.4 * rng.standard_normal((20, 4)))
    pattern = np.vstack([calm, noisy])  # two blocks: errors differ from block to block
    short = calibrate(np.full(40 * 3, 10.0), np.tile(pattern, (3, 1)), 0.5, block=np.arange(120) // 20)
    long = calibrate(np.full(40 * 30, 10.0), np.tile(pattern, (30, 1)), 0.5, block=np.arange(1200) // 20)
    plain = calibrate(np.full(40 * 30, 10.0), np.tile(pattern, (30, 1)), 0.5)
    assert short.multiplier > long.multiplier > plain.multiplier


def _guarded(n: int, persistent: bool, seed: int) -> tuple[np.ndarray, ...]:
    """Forecast 10 req/s, 6 cells per row; the guard's reaction serves a cell with what it saw 2 cells before
    (the running max), and the scale-in window keeps the highest sample seen before the decision (the ratchet)."""
    rng = np.random.default_rng(seed)
    forecast = np.full(n, 10.0)
    if persistent:  # rises that last and keep growing: 10 % of horizons ramp up by 30-60 % of the level a cell
        demand = np.full((n, 6), 10.0)
        up = rng.random(n) < 0.1
        slope = rng.uniform(0.3, 0.6, int(up.sum()))[:, None]
        demand[up] = 10.0 * (1.0 + slope * np.arange(6)[None, :])
    else:  # noise: every cell independent, a sample says nothing of the next
        demand = 10.0 * rng.lognormal(0.0, 0.35, (n, 6))
    reaction = np.zeros_like(demand)
    reaction[:, 2:] = np.maximum.accumulate(demand, axis=1)[:, :4]
    ratchet = np.array([demand[max(0, i - 3) : i, 0].max() if i else 0.0 for i in range(n)])  # seen before
    return forecast, demand, reaction, ratchet


def test_the_guard_takes_the_multiplier_on_persistent_rises_and_stays_bare_on_noise() -> None:
    """The guard's rate is scaled by the tick's multiplier only where the replay finds it cheaper: a rise that
    lasts is served a few cells after it shows instead of by standing headroom; on noise a guard with headroom
    would raise the fleet to the noise and the window would hold it, so it stays at the bare rate."""
    forecast, demand, reaction, ratchet = _guarded(3000, persistent=True, seed=12)
    rises = calibrate(forecast, demand, 0.5, reaction=reaction, ratchet=ratchet)
    assert rises.guard_multiplier == rises.multiplier > 1.0
    bare = calibrate(forecast, demand, 0.5, reaction=reaction, ratchet=ratchet, guard_headroom=False)
    assert bare.guard_multiplier == 1.0 and bare.multiplier > rises.multiplier
    forecast, demand, reaction, ratchet = _guarded(3000, persistent=False, seed=13)
    noise = calibrate(forecast, demand, 0.5, reaction=reaction, ratchet=ratchet)
    assert noise.guard_multiplier == 1.0 and noise.multiplier > 1.0


def test_a_bound_stops_the_headroom_of_tick_and_guard_but_never_the_rates_themselves() -> None:
    """A cold start's bound (the highest rate seen): the multiplier and the guard's headroom stop there."""
    forecast, demand, reaction, ratchet = _guarded(2000, persistent=True, seed=14)
    h = calibrate(
        forecast,
        demand,
        0.5,
        reaction=reaction,
        ratchet=ratchet,
        bound=np.full(2000, 12.0),
        guard_bound=np.full(2000, 12.0),
    )
    assert h.apply(10.0) <= 12.0 + 1e-9 and h.apply(40.0) == pytest.approx(40.0)
    assert h.guard(11.0) <= 12.0 + 1e-9 and h.guard(40.0) == pytest.approx(40.0)


def test_waiting_beyond_follows_the_fifo_backlog_cell_by_cell() -> None:
    """0.09 rps short for one 300 s cell: the backlog ends at 27 requests (2.7 s of work at 10 rps), so nobody
    waits past 3 s; 2.5 rps short: it passes 30 requests after 12 s and the rest of the cell waits longer. The
    backlog a short cell leaves is carried into the next one."""
    wait = WaitSLO(slo_s=3.0, step_s=300.0)
    capacity = np.full((3, 2), 10.0)
    demand = np.array([[10.09, 10.0], [12.5, 10.0], [12.5, 9.0]])
    beyond = waiting_beyond(demand, capacity, wait)
    assert beyond[0] == pytest.approx([0.0, 0.0])
    assert beyond[1, 0] == pytest.approx(12.5 * (1 - 12 / 300))
    # The next cell starts with 750 requests (75 s of work) and no spare capacity: every request waits past 3 s.
    assert beyond[1, 1] == pytest.approx(10.0)
    # With 1 rps spare, 750 requests take 750 s to drain, longer than the cell: still every request.
    assert beyond[2, 1] == pytest.approx(9.0)


def test_the_guard_drains_a_backlog_it_sees_after_its_lag() -> None:
    """With the guard's lag of one cell and a 60 s drain time, the second cell gets rate + backlog ÷ 60 s."""
    capacity = np.full((1, 2), 10.0)
    demand = np.array([[12.5, 10.0]])
    idle = waiting_beyond(demand, capacity, WaitSLO(3.0, 300.0))
    guarded = waiting_beyond(demand, capacity, WaitSLO(3.0, 300.0, lag=1, drain_s=60.0))
    assert idle[0, 1] == pytest.approx(10.0)
    # Capacity 12.5 + 750 / 60 = 25 rps: 750 requests drain in 50 s; waits fall below 3 s (75 requests) at
    # 45 s: 15 % of the cell's requests wait longer.
    assert guarded[0, 1] == pytest.approx(10.0 * 45 / 300)
    assert guarded[0, 0] == idle[0, 0]


def test_a_wait_slo_forgives_shortfalls_too_small_to_wait_and_charges_long_ones() -> None:
    """Demand 0.5 % above the forecast every other cell: the unserved share (0.25 %) buys headroom on a 0.1 % budget,
    but on a 3 s wait SLO with 300 s cells each such cell leaves 1.5 s of work, drained by the next: free. Demand
    2 % above it in every cell leaves 6 s of work per cell: that must be paid for, within the wait budget."""
    forecast = np.full(400, 100.0)
    slight = np.tile([100.5, 99.0], (400, 3))
    assert calibrate(forecast, slight, 0.1).multiplier > 1.0
    assert calibrate(forecast, slight, 2.5, wait=WaitSLO(3.0, 300.0)).multiplier == pytest.approx(1.0)
    steady = np.full((400, 6), 102.0)
    on_waits = calibrate(forecast, steady, 2.5, wait=WaitSLO(3.0, 300.0))
    assert on_waits.multiplier > 1.0
    capacity = np.full((400, 6), on_waits.multiplier * 100.0)
    assert waiting_beyond(steady, capacity, WaitSLO(3.0, 300.0)).sum() / steady.sum() * 100 <= 2.5 + 1e-6
