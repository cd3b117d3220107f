"""Backtest semantics (DESIGN.md "Backtest") on tiny traces whose figures are computed by hand."""

from __future__ import annotations

from autoscaler.backtest.replay import run_backtest
from autoscaler.core.settings.forescale import Config, NomadGroupRef, PoolConfig
from predictor.trace import Trace
from tests import REPO


def test_default_forescale_keeps_the_slo_on_a_week_of_real_traffic() -> None:
    """Regression guard (the full bar is benchmarks/policy.py): NASA's first 8 days, default settings."""
    from predictor.trace import load_trace

    full = load_trace(REPO / "data" / "nasa_http_1995_jul_5min.csv")
    keep = full.t < full.start + 8 * 86400
    trace = Trace("nasa8d", full.t[keep], full.requests[keep], full.step_s)
    cap = float(full.rps.max()) / 50
    pool = PoolConfig(name="p", query="q", nomad=NomadGroupRef(job="j", group="g"), capacity_per_node=cap, max=1000)
    bt = run_backtest(trace, Config(pools=[pool]), "p")
    mine, oracle = bt.policies["forescale"], bt.policies["oracle"]
    assert mine.unserved_pct <= 1.0
    assert mine.node_hours < 1.5 * oracle.node_hours
    assert mine.node_hours < 0.5 * bt.policies["static_peak"].node_hours
