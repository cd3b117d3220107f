"""`forescale backtest --latency-slo` and a config's queue: section: the queue figures in --json and the table,
an SLO from the config, bad values as one readable line; `forescale demo --queue`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.backtest.replay import BacktestError
from autoscaler.cli.main import app
from tests.integration.test_backtest_cli import POLICY_KEYS, trace_csv  # noqa: F401 - the module's fixture

QUEUE_KEYS = {"latency_slo_s", "p95_wait_s", "p99_wait_s", "beyond_slo_pct", "peak_backlog", "mean_wait_s"}
runner = CliRunner()


def test_latency_slo_adds_the_queue_figures_to_every_policy(trace_csv: Path) -> None:  # noqa: F811
    base = ["backtest", "--trace", str(trace_csv), "--capacity-per-node", "4"]
    res = runner.invoke(app, [*base, "--latency-slo", "3s", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for name, figures in out["policies"].items():
        assert set(figures) == POLICY_KEYS | {"queue"}, name
        assert set(figures["queue"]) == QUEUE_KEYS and figures["queue"]["latency_slo_s"] == 3.0
    assert out["policies"]["oracle"]["queue"]["peak_backlog"] == 0.0
    assert out["policies"]["static_peak"]["queue"]["p99_wait_s"] == 0.0
    table = runner.invoke(app, [*base, "--latency-slo", "3s"])
    assert table.exit_code == 0, table.output
    assert "SLO p95 wait ≤ 3 s" in table.stdout and "peak backlog" in table.stdout
    assert "queue-fed: demand beyond ready capacity waits" in table.stderr


def test_a_config_queue_section_is_replayed_as_queue_fed(trace_csv: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(
        "pools:\n  - name: ocr\n    query: sum(rate(x[5m]))\n    nomad: {job: ocr, group: workers}\n"
        "    capacity_per_node: 4\n    max: 80\n"
        "    queue: {backlog_query: 'sum(rabbitmq_queue_messages_ready)', latency_slo: 2s}\n"
    )
    res = runner.invoke(app, ["backtest", "--trace", str(trace_csv), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["policies"]["forescale"]["queue"]["latency_slo_s"] == 2.0
    res = runner.invoke(app, ["backtest", "--trace", str(trace_csv), "-c", str(cfg), "--latency-slo", "5s", "--json"])
    assert json.loads(res.stdout)["policies"]["forescale"]["queue"]["latency_slo_s"] == 5.0


@pytest.mark.parametrize("value", ["soon", "0s"])
def test_a_bad_latency_slo_is_one_readable_line(trace_csv: Path, value: str) -> None:  # noqa: F811
    res = runner.invoke(
        app, ["backtest", "--trace", str(trace_csv), "--capacity-per-node", "4", "--latency-slo", value]
    )
    assert isinstance(res.exception, BacktestError) and "--latency-slo" in str(res.exception)
    assert "\n" not in str(res.exception)


def test_the_demo_shows_a_queue_pool() -> None:
    res = runner.invoke(app, ["demo", "--days", "0.5", "--pace", "0", "--queue", "3s"])
    assert res.exit_code == 0, res.output
    assert "Queue-fed: requests beyond ready capacity wait in a FIFO queue (SLO 3s)" in res.stdout
    assert "queue empty: within the SLO 3s" in res.stdout
    assert "queue: p95 / p99 wait" in res.stdout and "queue: peak backlog" in res.stdout
