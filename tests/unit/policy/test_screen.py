"""Screening request-rate samples before a decision (autoscaler.policy.screen): bad data and implausible jumps."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.predictor import PredictorSettings
from autoscaler.policy.screen import screen, window_peaks

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
