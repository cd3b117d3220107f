"""benchmarks/bounds.py: the references it sets beside issue 12's bars are computed as documented."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from predictor.trace import load_trace
from tests import load_benchmark


def _trace(path: Path, rps: np.ndarray, step: int = 300) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "requests"])
        for i, r in enumerate(rps):
            at = datetime.fromtimestamp(1_700_000_000 - 1_700_000_000 % 86400 + i * step, UTC)
            w.writerow([at.strftime("%Y-%m-%dT%H:%M:%SZ"), round(float(r) * step)])
    return path


def test_the_scaled_reference_meets_the_allowed_share_with_the_smallest_multiplier(tmp_path: Path) -> None:
    b = load_benchmark("bounds")
    rng = np.random.default_rng(7)
    noise = rng.gamma(2.0, 5.0, 3 * 288)  # white noise: nothing to predict
    case = b.Case("noise", _trace(tmp_path / "n.csv", noise), 600, 3600, 0.8, 2.0)
    s = b.Scorer(case, load_trace(case.path))
    flat = np.ones_like(s.y)
    cost = s.scaled(flat)
    # The constant that just meets 0.8 % unserved: one node fewer misses it.
    nodes = round(cost * s.oracle_nodes / (len(s.y) - s.first))
    assert s.unserved_pct(flat * nodes * s.cap) <= 0.8 < s.unserved_pct(flat * (nodes - 1) * s.cap)
    # On white noise no trailing statistic predicts anything: the best rule is no cheaper than a constant
    # by more than the sampling noise of the hindsight multiplier.
    rule, _ = b.trailing_rule(s)
    assert rule > 0.9 * b.constant(s)
    # The guard and the window hold the highest sample of the window, known a lead time (2 samples) late:
    # a new peak gets through until then.
    held = s.seen(b.trailing(s.y, 12, b.STATS["peak"]))
    for i in (20, 300, len(s.y) - 1):
        assert held[i] == max(s.y[i - 13 : i - 1])
    cost, left = b.guard_and_window(s, 3600)
    assert cost == s.cost(held) and left == s.unserved_pct(held) > 0


def test_a_daily_profile_is_cheaper_than_a_constant_and_a_short_trace_has_none(tmp_path: Path) -> None:
    b = load_benchmark("bounds")
    t = np.arange(6 * 288) * 300.0
    daily = 10 + 8 * np.sin(2 * np.pi * t / 86400)
    case = b.Case("daily", _trace(tmp_path / "d.csv", daily), 600, 3600, 0.8, 2.0)
    s = b.Scorer(case, load_trace(case.path))
    assert b.hour_profile(s) < 0.8 * b.constant(s)
    assert b.linear_model(s) < 0.8 * b.constant(s)
    hour = b.Case("hour", _trace(tmp_path / "h.csv", daily[:60], step=60), 120, 900, 1.0, 1.6)
    short = b.Scorer(hour, load_trace(hour.path))
    assert np.isnan(b.hour_profile(short)) and np.isnan(b.linear_model(short))
