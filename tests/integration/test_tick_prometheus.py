"""run_tick end to end against the real Prometheus (NASA trace backfilled), a simulated cluster and a
ManualClock set inside the trace: scaling from real data, a broken query holding, stale data holding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision
from autoscaler.core.ports import NoOverrides
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import Config
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.targets.simulated import SimulatedCluster
from predictor.factory import make_predictor
from tests.fixtures.prometheus import PrometheusWithTrace

pytestmark = pytest.mark.prometheus

TREND_LR = {"model": "trend_lr", "trend_window": "30m"}  # a fixed 30-minute history window
BROKEN_QUERY = 'sum(rate(http_requests_total{pool="nasa"}[5m])'  # missing ")"


def pool(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "query": query,
        "nomad": {"job": f"ml-{name}", "group": "workers"},
        "capacity_per_node": 0.1,  # NASA peaks near 5 req/s: up to ~60 nodes at 80 %
        "min": 1,
        "max": 80,
    }


def run(
    prom: PrometheusWithTrace,
    now: datetime,
    initial: dict[str, int],
    *pools: dict[str, Any],
    predictor: dict[str, Any] | None = None,
) -> TickReport:
    """One real tick; the predictor is the configured default unless ``predictor`` settings are given."""
    config = Config.model_validate(
        {"prometheus": {"url": prom.url, "step": "1m"}, "predictor": predictor or {}, "pools": list(pools)}
    )
    clock = ManualClock(now)
    deps = TickDeps(
        config=config,
        metrics=PrometheusSource(config.prometheus),
        predictor_for=lambda p: make_predictor(config.predictor, p),
        target=SimulatedCluster(clock, initial),
        overrides=NoOverrides(),
        clock=clock,
    )
    return run_tick(deps)


def decision_of(report: TickReport, name: str) -> Decision:
    outcome = next(o for o in report.outcomes if o.pool == name)
    assert outcome.decision is not None, outcome.error
    return outcome.decision


def test_pool_scales_from_prometheus_while_a_broken_pool_holds(prometheus_nasa: PrometheusWithTrace) -> None:
    prom = prometheus_nasa
    row = 1200  # 1995-07-05 12:00 UTC, mid-day traffic
    now = prom.at(row)
    report = run(prom, now, {"nasa": 1, "broken": 7}, pool("nasa", prom.query), pool("broken", BROKEN_QUERY))

    nasa = decision_of(report, "nasa")
    assert nasa.observed_rps == pytest.approx(float(prom.trace.rps[row]), abs=1e-9)  # the trace's own rate
    assert nasa.desired > 1 and nasa.action == "up" and not nasa.held
    assert {"forecast", "observed"} <= set(nasa.reason_codes())
    assert nasa.desired == max(nasa.forecast_nodes or 0, nasa.reactive_nodes or 0)
    assert next(o for o in report.outcomes if o.pool == "nasa").status == "applied"

    broken = decision_of(report, "broken")
    assert broken.held and broken.desired == broken.current == 7
    assert broken.reason_codes()[0] == "metrics_unavailable"
    assert "parse error" in broken.reasons[0].message and "HTTP 400" in broken.reasons[0].message
    assert next(o for o in report.outcomes if o.pool == "broken").status == "unchanged"


def test_stale_data_holds(prometheus_nasa: PrometheusWithTrace) -> None:
    prom = prometheus_nasa
    trace_end = datetime.fromtimestamp(prom.trace.end, UTC)
    # rate(...[5m]) answers while its window holds two samples: until 4 minutes after the last (1-minute)
    # sample. 20 minutes after the trace ends, the newest point of trend_lr's 30-minute window is 16 minutes
    # old: more than 2 steps, so the tick's staleness check must hold the pool.
    now = trace_end + timedelta(minutes=20)
    report = run(prom, now, {"nasa": 12}, pool("nasa", prom.query), predictor=TREND_LR)
    nasa = decision_of(report, "nasa")
    assert nasa.held and nasa.desired == nasa.current == 12
    assert nasa.reason_codes()[0] == "metrics_unavailable"
    assert nasa.hold_cause is not None and nasa.hold_cause.startswith("stale: last sample is 960s old")


def test_data_long_gone_holds(prometheus_nasa: PrometheusWithTrace) -> None:
    prom = prometheus_nasa
    later = datetime.fromtimestamp(prom.trace.end, UTC) + timedelta(days=2)
    report = run(prom, later, {"nasa": 12}, pool("nasa", prom.query), predictor=TREND_LR)
    nasa = decision_of(report, "nasa")
    assert nasa.held and nasa.desired == 12
    assert nasa.hold_cause is not None and "no data between" in nasa.hold_cause


def test_a_forecast_over_a_gap_is_degraded_and_never_scales_in(prometheus_nasa: PrometheusWithTrace) -> None:
    """The real Prometheus, an exporter down for 3 hours and back 5 minutes ago (rate() warming up over its
    5-minute range): the pool's forecast is degraded — said in the Decision — and the pool is not scaled in on
    it, while the whole series beside it decides normally. An hour later the window is whole again."""
    from tests.fixtures.prometheus import GAP_ROWS, GAPPY_QUERY

    prom = prometheus_nasa
    back = prom.at(GAP_ROWS[1])  # the first row after the hole has just finished
    report = run(prom, back, {"gappy": 30, "nasa": 30}, pool("gappy", GAPPY_QUERY), pool("nasa", prom.query))
    gappy, whole = decision_of(report, "gappy"), decision_of(report, "nasa")
    assert gappy.degraded is not None and "gap in the metrics" in gappy.degraded
    assert "rate() warming up" in gappy.degraded
    assert "degraded" in gappy.reason_codes() and not gappy.held
    assert gappy.desired == 30 and gappy.need is not None and gappy.need < 30  # it would have scaled in
    assert whole.degraded is None and whole.desired < 30  # the same traffic without the hole scales in
    later = run(prom, prom.at(GAP_ROWS[1] + 12), {"gappy": 30}, pool("gappy", GAPPY_QUERY))
    assert decision_of(later, "gappy").degraded is None
