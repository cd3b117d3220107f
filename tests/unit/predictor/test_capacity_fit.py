"""`forescale capacity`'s maths (issue 22, item 12): the highest load per node at which the SLO held."""

from __future__ import annotations

import numpy as np

from predictor.capacity_fit import LoadStep, from_history, from_load_test


def knee(x: np.ndarray, capacity: float) -> np.ndarray:
    """A p95 latency that rises gently up to ``capacity`` req/s per node and jumps past it."""
    return np.where(x <= capacity, 1.0 + 0.5 * x / capacity, 5.0)


def test_history_finds_the_knee_within_one_bin() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0.5, 20.0, 4000)
    est = from_history(x, knee(x, 12.0), 3.0, slo="p95 <= 3")
    assert est.bound == "limit" and est.capacity is not None and est.broke_at is not None
    width = 19.5 / 20
    assert 12.0 - width <= est.capacity <= 12.0 < est.broke_at + width
    assert "capacity_per_node ≈" in est.sentence() and "broke from" in est.sentence()


def test_history_that_never_broke_the_slo_is_only_a_lower_bound() -> None:
    x = np.linspace(1, 8, 500)
    est = from_history(x, knee(x, 12.0), 3.0, slo="p95 <= 3")
    assert est.bound == "at_least" and est.capacity == 8.0
    assert "at least 8" in est.sentence() and "load test" in est.sentence()


def test_an_slo_broken_at_every_load_gives_no_estimate() -> None:
    x = np.linspace(1, 8, 500)
    est = from_history(x, np.full(500, 9.0), 3.0, slo="p95 <= 3")
    assert est.capacity is None and est.bound == "none" and "no estimate" in est.sentence()


def test_idle_and_non_finite_samples_are_ignored() -> None:
    x = np.array([np.nan, 0.0, np.inf, *np.linspace(1, 4, 50)])
    y = np.array([1.0, 1.0, 1.0, *np.ones(50)])
    assert from_history(x, y, 3.0, slo="s").samples == 50


def test_a_load_test_picks_the_best_packing() -> None:
    """The case study's question: how many workers per GPU? 4 serve the most req/s per node."""
    rows = []
    for workers, limit in ((1, 12.0), (2, 22.0), (4, 38.0), (6, 30.0)):
        for rps in range(5, 60, 5):
            rows.append(LoadStep(float(rps), 1.0 if rps <= limit else 4.0, 0.0, workers))
    est = from_load_test(rows, 3.0, slo="p95 <= 3 s")
    assert est.best_workers == 4 and est.capacity == 35.0 and est.broke_at == 40.0
    assert est.by_workers == {1: 10.0, 2: 20.0, 4: 35.0, 6: 30.0}


def test_a_load_test_counts_errors_as_a_broken_slo() -> None:
    rows = [LoadStep(10, 1.0, 0.0), LoadStep(20, 1.0, 0.05), LoadStep(30, 1.0, 0.0)]
    est = from_load_test(rows, 3.0, slo="s", max_error_rate=0.01)
    assert est.capacity == 10 and est.broke_at == 20 and est.best_workers is None
