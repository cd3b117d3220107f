"""The MetricsSource contract (``autoscaler.core.ports.MetricsSource``), over every implementation: the real
Prometheus (backfilled with the NASA trace) and the trace source, serving the same recorded traffic.

What the Protocol promises and the tick relies on:
- ``step_s``, the source's own resolution, is a positive number of seconds, and samples come on that step;
- ``fetch`` answers samples of the query in req/s within [start, end], oldest first, finite, none after ``end``
  (causal: the replay and the daemon see the same history);
- the rates are the recorded ones;
- a window without data and every failure of the source raise ``MetricsUnavailable`` with a one-line cause
  (the tick then holds the pool: never shrinks blind) — never another exception;
- a read changes nothing (the same answer twice);
- the tick and the guard, given the source, decide on its data at its step.

A new source's author adds one case to ``source_case`` (its adapter, a way to make it fail) and runs this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import MetricsUnavailable
from autoscaler.core.ports import MetricsSource
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import PrometheusSettings
from autoscaler.policy.tick import current_rate, run_tick
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.trace import TraceMetricsSource
from predictor.trace import load_trace
from tests.contract.conftest import case
from tests.fixtures.prometheus import NASA_QUERY, NASA_TRACE
from tests.helpers import free_port, make_config, make_deps, pool_dict

TRUTH = load_trace(NASA_TRACE)  # the traffic every case serves
END_INDEX = 300  # a window ending about a day into the trace: Prometheus's [5m] rate is full there
WINDOW = timedelta(hours=6)


@dataclass
class SourceCase:
    """One implementation under contract: the source, the query it answers, and failures it must report."""

    source: MetricsSource
    query: str
    failures: dict[str, Callable[[], RateSeries]] = field(default_factory=dict)


def window_end() -> datetime:
    return datetime.fromtimestamp(float(TRUTH.t[END_INDEX] + TRUTH.step_s), UTC)


@pytest.fixture(params=[case("prometheus", pytest.mark.prometheus), case("trace")])
def source_case(request: pytest.FixtureRequest) -> Iterator[SourceCase]:
    end = window_end()
    if request.param == "prometheus":
        prom = request.getfixturevalue("prometheus_nasa")
        source = PrometheusSource(PrometheusSettings(url=prom.url, timeout="5s"))
        dead = PrometheusSource(PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", timeout="2s"))
        yield SourceCase(
            source,
            NASA_QUERY,
            {
                "unreachable server": lambda: dead.fetch(NASA_QUERY, end - WINDOW, end, 60),
                "query that does not parse": lambda: source.fetch("sum(rate(x[5m]", end - WINDOW, end, 60),
                "several series": lambda: source.fetch(
                    'rate(http_requests_total{pool="nasa"}[5m])', end - WINDOW, end, 60
                ),
            },
        )
    else:
        source = TraceMetricsSource(TRUTH)
        after = datetime.fromtimestamp(TRUTH.end, UTC) + timedelta(days=2)
        yield SourceCase(source, "trace", {"window after the trace": lambda: source.fetch("q", after, after, 60)})


def fetch_window(c: SourceCase) -> tuple[datetime, datetime, RateSeries]:
    end = window_end()
    start = end - WINDOW
    return start, end, c.source.fetch(c.query, start, end, c.source.step_s)


def test_the_source_reports_its_own_step(source_case: SourceCase) -> None:
    step = source_case.source.step_s
    assert isinstance(step, float) and np.isfinite(step) and step > 0
    _, _, series = fetch_window(source_case)
    assert series.step_s == pytest.approx(step)
    assert np.allclose(np.diff(series.t), step), "samples come on the source's step"


def test_samples_lie_in_the_window_oldest_first_finite_and_none_after_the_end(source_case: SourceCase) -> None:
    start, end, series = fetch_window(source_case)
    assert len(series) >= WINDOW.total_seconds() / source_case.source.step_s - 1
    assert np.all(np.diff(series.t) > 0)
    assert series.t[0] >= start.timestamp() and series.t[-1] <= end.timestamp()
    assert series.t[-1] == pytest.approx(end.timestamp())  # the latest finished interval is there
    assert np.all(np.isfinite(series.rps)) and np.all(series.rps >= 0)


def test_the_rates_are_the_recorded_ones_in_requests_per_second(source_case: SourceCase) -> None:
    start, end, series = fetch_window(source_case)
    truth = TRUTH.as_rate_series().window(start.timestamp(), end.timestamp() + 1e-6)
    common, mine, theirs = np.intersect1d(series.t, truth.t, return_indices=True)
    assert len(common) >= len(truth) - 1 > 0
    assert np.allclose(series.rps[mine], truth.rps[theirs], rtol=1e-6)


def test_a_window_without_data_is_metrics_unavailable(source_case: SourceCase) -> None:
    before = datetime.fromtimestamp(TRUTH.start, UTC) - timedelta(days=3)
    with pytest.raises(MetricsUnavailable) as info:
        source_case.source.fetch(source_case.query, before - WINDOW, before, source_case.source.step_s)
    assert str(info.value) and "\n" not in str(info.value)


def test_every_failure_is_metrics_unavailable_with_a_one_line_cause(source_case: SourceCase) -> None:
    assert source_case.failures, "a case names at least one way its source fails"
    for what, fail in source_case.failures.items():
        with pytest.raises(MetricsUnavailable) as info:
            fail()
        assert str(info.value) and "\n" not in str(info.value), what


def test_a_read_changes_nothing(source_case: SourceCase) -> None:
    _, _, first = fetch_window(source_case)
    _, _, again = fetch_window(source_case)
    assert np.array_equal(first.t, again.t) and np.array_equal(first.rps, again.rps)


def test_the_tick_and_the_guard_decide_on_the_sources_data(source_case: SourceCase) -> None:
    end = window_end()
    config = make_config(pool_dict("nasa", query=source_case.query, capacity_per_node=0.05, max=1000))
    deps = make_deps(config, source_case.source, clock=ManualClock(end))
    (outcome,) = run_tick(deps).outcomes
    assert outcome.decision is not None and not outcome.decision.held, outcome.decision
    latest = float(TRUTH.rps[END_INDEX])
    assert current_rate(deps, config.pool("nasa"), end) == pytest.approx(latest, rel=1e-6)
