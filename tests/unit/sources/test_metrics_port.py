"""The metrics source is a port end to end: ``metrics.source`` selects it (default prometheus, no existing config
changes), one constructor builds it for the wiring and the backtest, and the tick asks the source — never
``prometheus:`` — for its step."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.config import load_config
from autoscaler.core.errors import ConfigError
from autoscaler.core.series import RateSeries
from autoscaler.policy.tick import run_tick, screen_window
from autoscaler.sources.prometheus import PrometheusSource
from autoscaler.sources.registry import build_metrics_source
from tests import REPO
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict

POOL = """
pools:
  - name: ocr
    query: sum(rate(http_requests_total{job="ocr"}[5m]))
    nomad: {job: ml-ocr, group: workers}
    capacity_per_node: 32
    max: 40
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forescale.yaml"
    path.write_text(text)
    return path


def test_prometheus_is_the_default_and_existing_configs_load_unchanged(tmp_path: Path) -> None:
    example = load_config(REPO / "forescale.example.yaml")
    assert example.metrics.source == "prometheus"
    explicit = load_config(write(tmp_path, "metrics: {source: prometheus}\n" + POOL))
    assert explicit.metrics.source == "prometheus"
    assert explicit.prometheus == load_config(write(tmp_path, POOL)).prometheus


def test_an_unknown_source_is_refused_with_the_sources_there_are(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "metrics: {source: datadog}\n" + POOL))
    (problem,) = info.value.problems
    assert problem.startswith("metrics.source")
    assert "unknown metrics source 'datadog': use one of prometheus" in problem


def test_one_constructor_builds_the_selected_source_from_its_section() -> None:
    cfg = make_config(pool_dict(), prometheus={"url": "http://prom.example:9090", "step": "30s"})
    source = build_metrics_source(cfg)
    assert isinstance(source, PrometheusSource)
    assert source.step_s == 30.0 and source.url == "http://prom.example:9090"


class Recording(FlatMetrics):
    """A source whose own step is 2 minutes; records the step and window of every fetch."""

    step_s = 120.0

    def __init__(self, rates: dict[str, float]) -> None:
        super().__init__(rates)
        self.asked: list[tuple[float, float]] = []

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        self.asked.append((step_s, (end - start).total_seconds()))
        return super().fetch(query, start, end, step_s)


def test_the_tick_and_the_guard_query_at_the_sources_own_step_not_prometheus_step() -> None:
    cfg = make_config(pool_dict("ocr"), prometheus={"step": "5m"})  # prometheus.step is not the tick's business
    metrics = Recording({cfg.pool("ocr").query: 100.0})
    run_tick(make_deps(cfg, metrics))
    assert metrics.asked and all(step == 120.0 for step, _ in metrics.asked)
    metrics.asked.clear()
    run_tick(make_deps(cfg, metrics), guard=True)
    # the current rate, screened as the tick screens it: the plausibility window, at the source's step
    assert metrics.asked == [(120.0, screen_window(cfg).total_seconds())]


def test_staleness_is_judged_on_the_sources_step() -> None:
    """A last sample 5 minutes old is stale for a 1-minute source (more than two steps) and fresh for a
    3-minute one: the source's step, not a config section, says how old is too old."""

    class Late(FlatMetrics):
        def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
            return super().fetch(query, start, end, step_s).before(end.timestamp() - 300)

    class LateSlow(Late):
        step_s = 180.0

    cfg = make_config(pool_dict("ocr"))
    rates = {cfg.pool("ocr").query: 100.0}
    (held,) = run_tick(make_deps(cfg, Late(rates))).outcomes
    assert held.decision is not None and "stale" in (held.decision.hold_cause or "")
    (fresh,) = run_tick(make_deps(cfg, LateSlow(rates))).outcomes
    assert fresh.decision is not None and not fresh.decision.held


def test_the_policy_layer_reads_no_source_settings() -> None:
    for path in (REPO / "autoscaler" / "policy").glob("*.py"):
        assert "config.prometheus" not in path.read_text(), path


def test_history_window_for_a_backtest_is_the_sources() -> None:
    from autoscaler.backtest.session import history_config

    cfg = make_config(pool_dict())
    assert build_metrics_source(history_config(cfg, None, timedelta(minutes=5))).step_s == 300.0
