"""The backtest's FIFO queue model (backtest/queue.py) against hand-worked queues, and the replay of a queue pool."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.backtest.queue import FifoBacklog, backlog_at_starts, queue_figures
from autoscaler.backtest.replay import run_backtest
from autoscaler.core.settings.forescale import Config
from predictor.trace import Trace


def arr(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def test_enough_capacity_means_no_wait() -> None:
    fig = queue_figures(arr(0, 60, 120), arr(5, 9, 10), arr(1, 1, 1), 10.0, 60.0, 3.0)
    assert fig.p95_wait_s == fig.p99_wait_s == fig.mean_wait_s == fig.beyond_slo_pct == fig.peak_backlog == 0.0


def test_a_shortfall_waits_and_drains_fifo() -> None:
    # 20 rps against 10 rps for 60 s: 600 requests queue up; then 0 rps: drained in another 60 s.
    # A request arriving at s in the first minute waits (20 s - 10 s)/10 rps = s (it finds 10·s ahead of it).
    fig = queue_figures(arr(0, 60), arr(20, 0), arr(1, 1), 10.0, 60.0, 3.0, resolution_s=0.5)
    assert fig.peak_backlog == pytest.approx(600.0)
    assert fig.p95_wait_s == pytest.approx(57.0, abs=0.5) and fig.p99_wait_s == pytest.approx(59.4, abs=0.5)
    assert fig.beyond_slo_pct == pytest.approx(100 * 57 / 60, abs=1.0)  # all who arrived after 3 s
    assert fig.mean_wait_s == pytest.approx(30.0, abs=0.5)


def test_new_capacity_shortens_the_waits_of_those_queued() -> None:
    slow = queue_figures(arr(0, 60, 120), arr(20, 0, 0), arr(1, 1, 1), 10.0, 60.0, 3.0, resolution_s=0.5)
    fast = queue_figures(arr(0, 60, 120), arr(20, 0, 0), arr(1, 4, 4), 10.0, 60.0, 3.0, resolution_s=0.5)
    assert fast.peak_backlog == slow.peak_backlog == pytest.approx(600.0)
    # From 60 s on, 40 rps. A request arriving at s ≤ 30 is served before 60 s (wait s); one arriving later
    # (20·s arrived by then) is served at 60 + (20·s − 600)/40: the longest wait is 30 s, at s = 30.
    assert slow.p99_wait_s == pytest.approx(59.5, abs=0.6)
    assert fast.p99_wait_s == pytest.approx(30.0, abs=0.6) and fast.mean_wait_s < slow.mean_wait_s


def test_a_gap_has_no_arrivals_and_the_nodes_keep_draining() -> None:
    backlog = backlog_at_starts(arr(0, 300), arr(20, 0), arr(10, 10), 60.0)
    assert list(backlog) == [0.0, 0.0, 0.0]  # the 600 queued by 60 s are gone by 120 s, inside the gap
    fifo = FifoBacklog()
    assert fifo.advance(20.0, 10.0, 60.0, 300.0) == 0.0
    assert FifoBacklog().advance(20.0, 10.0, 60.0, 60.0) == 600.0


def test_no_capacity_at_the_end_is_an_infinite_wait() -> None:
    fig = queue_figures(arr(0, 60), arr(0, 10), arr(1, 0), 10.0, 60.0, 3.0)
    assert fig.p99_wait_s == float("inf") and fig.beyond_slo_pct > 99.0 and fig.mean_wait_s == float("inf")


def test_incremental_and_vectorised_backlogs_agree() -> None:
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.choice([60.0, 60.0, 60.0, 180.0], size=300))
    demand, ready = rng.uniform(0, 30, 300), rng.integers(0, 4, 300).astype(float)
    vector = backlog_at_starts(t, demand, ready * 10.0, 60.0)
    fifo = FifoBacklog()
    steps = [0.0]
    for i in range(len(t)):
        span = (t[i + 1] - t[i]) if i + 1 < len(t) else 60.0
        steps.append(fifo.advance(demand[i], ready[i] * 10.0, 60.0, span))
    assert np.allclose(vector, steps, rtol=1e-9, atol=1e-6)


def _config(queue: bool) -> Config:
    pool = {
        "name": "q",
        "query": "rate",
        "nomad": {"job": "j", "group": "g"},
        "capacity_per_node": 1.0,
        "max": 1000,
        "predictor": None,
    }
    pool.pop("predictor")
    if queue:
        pool["queue"] = {"backlog_query": "backlog", "latency_slo": "3s"}
    return Config.model_validate({"pools": [pool], "predictor": {"model": "trend_lr"}})


def test_a_queue_pool_replays_on_its_own_backlog_and_every_policy_is_scored_on_waits() -> None:
    # two days of 5-minute steps, a daily wave with a sharp burst each afternoon
    t = np.arange(0, 2 * 86400, 300, dtype=np.float64)
    rps = 20 + 10 * np.sin(2 * np.pi * t / 86400)
    rps[(t % 86400 > 50_000) & (t % 86400 < 52_000)] *= 3
    trace = Trace("wave", t, rps * 300, 300.0)
    plain = run_backtest(trace, _config(False), "q")
    queued = run_backtest(trace, _config(True), "q")
    assert all(r.queue is None for r in plain.policies.values())
    assert "queue" not in plain.to_json()["policies"]["forescale"]  # type: ignore[index]
    for name, result in queued.policies.items():
        assert result.queue is not None, name
        summary = queued.to_json()["policies"][name]["queue"]  # type: ignore[index]
        assert set(summary) == {
            "latency_slo_s",
            "p95_wait_s",
            "p99_wait_s",
            "beyond_slo_pct",
            "peak_backlog",
            "mean_wait_s",
        }
    assert queued.policies["oracle"].queue.peak_backlog == 0.0  # type: ignore[union-attr]
    mine = queued.policies["forescale"]
    assert mine.queue is not None and mine.queue.peak_backlog > 0  # the bursts do queue
    # the tick read the simulated backlog: some decisions were shaped by it
    assert mine.node_hours >= plain.policies["forescale"].node_hours * 0.9
