"""benchmarks/families.py: the causal yardstick is scored exactly as the backtest scores any policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.backtest.replay import score_requests, start_index
from predictor.trace import Trace
from tests import load_benchmark


def trace(seed: int, n: int = 600, step: float = 300.0) -> Trace:
    rng = np.random.default_rng(seed)
    t = 1_700_006_400.0 + step * np.arange(n)
    rps = 50 + 40 * np.sin(2 * np.pi * t / 86400) + 20 * rng.random(n)
    rps[rng.random(n) < 0.03] *= 3.0  # bursts
    return Trace("t", t, rps * step, step)


@pytest.mark.parametrize(("seed", "lead_s"), [(1, 600.0), (2, 420.0), (3, 300.0)])
def test_the_range_minimum_cluster_equals_the_simulated_cluster(seed: int, lead_s: float) -> None:
    """Any counts, scored by the yardstick's range minimum and by score_requests (the backtest's simulated
    cluster, the first decision ready at once, new nodes a lead time later, newest removed first): the same
    node-hours, the same unserved share — also when the lead is not a whole number of steps."""
    fam = load_benchmark("families")
    tr = trace(seed)
    first = start_index(tr)
    s = fam.Scorer(tr.t, tr.rps, tr.step_s, first, 2.0, lead_s)
    rng = np.random.default_rng(seed)
    desired = s.nodes(s.trailing(3600.0, "peak")) + rng.integers(-3, 4, s.tr.shape[0])
    desired = np.maximum(desired, 0)
    requests = [(float(t), int(c)) for t, c in zip(s.tr, desired, strict=True)]
    replayed = score_requests(tr, first, 2.0, lead_s, requests)
    assert s.node_hours(desired) == pytest.approx(replayed.node_hours, rel=1e-12)
    assert s.unserved_pct(desired) == pytest.approx(replayed.unserved_pct, rel=1e-9, abs=1e-12)
    assert replayed.unserved_pct > 0  # the comparison is not trivially 0 = 0


def test_the_knob_is_the_smallest_that_meets_the_slo() -> None:
    fam = load_benchmark("families")
    tr = trace(4)
    s = fam.Scorer(tr.t, tr.rps, tr.step_s, start_index(tr), 2.0, 600.0)
    s.oracle_node_hours = 1.0
    last = next(f for f in fam.families(s) if f.name == "k × peak of last sample")
    k, score = fam.tune(s, last, 1.0)
    assert score.unserved_pct <= 1.0 < s.unserved_pct(last.desired(k * 0.999))


def test_the_best_family_is_rescored_by_the_independent_simulator(tmp_path: Path) -> None:
    cases = load_benchmark("cases")
    tr = trace(5)
    path = tmp_path / "t.csv"
    load_benchmark("shapes").write_csv(tr, str(path))
    case = cases.Case("t", "t", path, float(np.max(tr.rps)) / 50)
    ref = cases.best_causal(case, 1.0)
    assert ref.best is not None and ref.agree
    assert ref.best.score.unserved_pct <= 1.0 and ref.best.score.cost >= 1.0
