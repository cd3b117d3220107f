"""Screening request-rate samples before a decision (autoscaler.policy.screen): bad data and implausible jumps."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.predictor import PredictorSettings
from autoscaler.policy.screen import gaps, rate_window_s, screen, window_peaks

POOL = PoolConfig.model_validate(
    {"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 10, "max": 100}
)
SETTINGS = PredictorSettings()


def series(values: list[float], step: float = 60.0) -> RateSeries:
    return RateSeries.from_lists([1_000_000 + i * step for i in range(len(values))], values, step)


def test_clean_samples_pass_untouched() -> None:
    got = screen(series([150.0] * 30), POOL, SETTINGS)
    assert got.hold is None and got.notes == () and len(got.series) == 30


@pytest.mark.parametrize("last", [-5.0, 1e12])
def test_a_bad_latest_sample_holds(last: float) -> None:
    got = screen(series([150.0] * 29 + [last]), POOL, SETTINGS)
    assert got.hold is not None and got.hold.startswith("bad data: the latest sample")


def test_many_bad_samples_hold() -> None:
    got = screen(series([-1.0] * 10 + [150.0] * 20), POOL, SETTINGS)
    assert got.hold is not None and "10 of 30" in got.hold


def test_a_few_bad_samples_are_ignored_and_noted() -> None:
    got = screen(series([150.0] * 10 + [-3.0] + [150.0] * 19), POOL, SETTINGS)
    assert got.hold is None and len(got.series) == 29
    assert got.notes and "ignored 1 bad sample" in got.notes[0]


def test_an_unconfirmed_latest_jump_holds() -> None:
    got = screen(series([150.0] * 29 + [4000.0]), POOL, SETTINGS)
    assert got.hold is not None and "26.7×" in got.hold and "confirm" in got.hold


def test_a_confirmed_jump_is_believed() -> None:
    got = screen(series([150.0] * 28 + [4000.0, 4100.0]), POOL, SETTINGS)
    assert got.hold is None and got.notes == () and got.series.last_rps == 4100.0


def test_an_unconfirmed_spike_in_the_history_is_ignored() -> None:
    got = screen(series([150.0] * 15 + [4000.0] + [150.0] * 14), POOL, SETTINGS)
    assert got.hold is None and len(got.series) == 29 and "unconfirmed spike" in got.notes[0]


def test_the_recent_peak_is_at_least_one_node() -> None:
    """An idle pool waking up (0 → 150 req/s) is not a jump: the reference is never below one node (10 req/s × 20)."""
    got = screen(series([0.0] * 29 + [150.0]), POOL, SETTINGS)
    assert got.hold is None


def test_the_peak_window_forgets_old_peaks() -> None:
    settings = PredictorSettings(plausible_window="10m")
    values = [5000.0] + [150.0] * 20 + [4000.0]  # the 5000 is older than 10 minutes
    got = screen(series(values), POOL, settings)
    assert got.hold is not None and "confirm" in got.hold


@pytest.mark.parametrize("seed", range(5))
def test_window_peaks_match_a_plain_scan(seed: int) -> None:
    """The vectorised range maxima behind the fast path equal the obvious loop, gaps and ties included."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([60.0, 60.0, 60.0, 600.0, 3600.0], size=400))
    v = rng.integers(0, 50, size=400).astype(float)
    window = float(rng.choice([300.0, 3600.0, 86400.0]))
    expected = [max((v[j] for j in range(i) if t[j] >= t[i] - window), default=0.0) for i in range(len(t))]
    assert window_peaks(t, v, window).tolist() == expected


def test_the_fast_path_and_the_exact_walk_agree_on_spiky_traffic() -> None:
    """Spikes force the exact walk; the same series without them takes the fast path: same kept samples."""
    rng = np.random.default_rng(7)
    base = 50 + 10 * rng.random(2000)
    clean = screen(series(base.tolist()), POOL, SETTINGS)
    assert clean.series.rps.tolist() == base.tolist() and not clean.notes
    spiky = base.copy()
    spiky[[300, 900]] = 5000.0  # single samples far above 20× the recent peak, each followed by normal traffic
    out = screen(series(spiky.tolist()), POOL, SETTINGS)
    assert out.series.rps.tolist() == np.delete(spiky, [300, 900]).tolist()
    assert "unconfirmed spike" in out.notes[0] and "1 more" in out.notes[0]


# -- the latest sample's precedent (issue 22 item 1) and degraded windows (issue 21 deliverable 4) ----------


def test_a_latest_rise_past_its_precedent_is_believed_only_up_to_it() -> None:
    """Ten times a steady level in one step, never seen before: believed up to the largest rise of the week
    (none: 1×), and the decision is degraded (may scale up, never in)."""
    got = screen(series([150.0] * 29 + [1500.0]), POOL, SETTINGS)
    assert got.hold is None and got.series.last_rps == 150.0
    assert got.degraded is not None and "10.0×" in got.degraded and "confirms" in got.degraded


def test_a_rise_with_a_precedent_is_believed() -> None:
    history = [100.0] * 10 + [10.0, 130.0] + [100.0] * 10  # the pool rose 13× in one step this week
    got = screen(series([*history, 1000.0]), POOL, SETTINGS)
    assert got.degraded is None and got.series.last_rps == 1000.0


def test_the_next_sample_confirms_a_rise() -> None:
    got = screen(series([150.0] * 28 + [1500.0, 1480.0]), POOL, SETTINGS)
    assert got.degraded is None and got.series.last_rps == 1480.0


def test_a_rise_past_precedent_is_capped_at_the_precedent() -> None:
    history = [100.0, 150.0] * 10  # rises of 1.5× are normal here
    got = screen(series([*history, 900.0]), POOL, SETTINGS)  # 6× the sample before
    assert got.series.last_rps == pytest.approx(1.5 * 150.0)
    assert got.degraded is not None and "1.50×" in got.degraded


def test_rate_window_is_the_longest_range_selector() -> None:
    assert rate_window_s('sum(rate(http_requests_total{job="ocr"}[5m]))') == 300.0
    assert rate_window_s("sum(rate(a[1h30m])) / sum(rate(b[30s]))") == 5400.0
    assert rate_window_s("max_over_time(rate(x[2m])[10m:1m])") == 600.0
    assert rate_window_s("job:requests:rate5m") == 0.0


def minutes(values: list[float | None], end: float = 1_000_000.0) -> RateSeries:
    """One-minute samples ending at ``end``; None is a missing sample."""
    t = [end - 60.0 * (len(values) - 1 - i) for i, v in enumerate(values) if v is not None]
    return RateSeries.from_lists(t, [v for v in values if v is not None], 60.0)


def test_a_gap_in_the_recent_window_degrades_and_says_where() -> None:
    end = 1_000_000.0
    s = minutes([100.0] * 60 + [None] * 180 + [0.0, 40.0, 100.0, 100.0], end)  # 3 hours missing, back 4 min ago
    why = gaps(s, end, end - 14 * 86400, window_s=2100.0, warmup_s=300.0)
    assert why is not None and "gap in the metrics" in why and "(3.02h)" in why
    assert "rate() warming up" in why
    # Once the window no longer holds the gap, the samples are whole again.
    later = minutes([100.0] * 60 + [None] * 180 + [100.0] * 40, end)
    assert gaps(later, end, end - 14 * 86400, window_s=2100.0, warmup_s=300.0) is None


def test_a_new_series_warms_up_but_a_series_read_from_its_start_does_not() -> None:
    end = 1_000_000.0
    fresh = minutes([50.0, 80.0, 100.0], end)  # the metric appeared three minutes ago
    why = gaps(fresh, end, end - 14 * 86400, window_s=2100.0, warmup_s=300.0)
    assert why is not None and "series started" in why
    assert gaps(fresh, end, end - 14 * 86400, window_s=2100.0, warmup_s=0.0) is None  # no rate() to warm up
    whole = minutes([100.0] * 30, end)  # the query asked for exactly these 30 minutes
    assert gaps(whole, end, end - 29 * 60.0, window_s=2100.0, warmup_s=300.0) is None
