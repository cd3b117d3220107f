"""`forescale backtest`: exact --json schema, --decisions-out format, --plot, config and errors."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autoscaler.backtest.replay import BacktestError
from autoscaler.cli.main import app
from autoscaler.core.series import RateSeries

POLICY_KEYS = {
    "node_hours",
    "under_capacity_minutes",
    "under_capacity_pct",
    "unserved_pct",
    "scale_actions",
    "scale_actions_per_day",
    "reversals_1h",
    "reversals_1h_pct",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def trace_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of a 5-minute diurnal trace with a missing hour."""
    path = tmp_path_factory.mktemp("bt") / "diurnal.csv"
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "requests"])
        for i in range(3 * 288):
            if 400 <= i < 412:
                continue
            t = t0 + 300 * i
            rate = 100 + 80 * np.sin(2 * np.pi * (t % 86400) / 86400) + 5 * rng.standard_normal()
            w.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), int(max(rate, 0) * 300)])
    return path


def test_json_is_exactly_the_documented_shape(trace_csv: Path) -> None:
    res = runner.invoke(app, ["backtest", "--trace", str(trace_csv), "--capacity-per-node", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"trace", "step_s", "capacity_per_node", "lead_time_s", "interval_s", "policies"}
    assert (out["trace"], out["step_s"], out["capacity_per_node"]) == ("diurnal", 300.0, 4.0)
    assert (out["lead_time_s"], out["interval_s"]) == (600.0, 1200.0)
    assert set(out["policies"]) == {"forescale", "oracle", "static_peak", "reactive", "trend_lr"}
    for figures in out["policies"].values():
        assert set(figures) == POLICY_KEYS
        assert isinstance(figures["scale_actions"], int) and isinstance(figures["reversals_1h"], int)
        assert figures["reversals_1h"] <= figures["scale_actions"]
        assert all(isinstance(v, int | float) for v in figures.values())
    assert out["policies"]["oracle"]["unserved_pct"] == 0.0
    assert out["policies"]["forescale"]["node_hours"] < out["policies"]["static_peak"]["node_hours"]


def test_options_change_the_replay(trace_csv: Path) -> None:
    res = runner.invoke(
        app,
        [
            "backtest",
            "--trace",
            str(trace_csv),
            "--capacity-per-node",
            "4",
            "--lead-time",
            "5m",
            "--interval",
            "10m",
            "--slo-unserved-pct",
            "5",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["lead_time_s"], out["interval_s"]) == (300.0, 600.0)


def test_decisions_out_and_plot(trace_csv: Path, tmp_path: Path) -> None:
    decisions, png = tmp_path / "d.csv", tmp_path / "p.png"
    res = runner.invoke(
        app,
        [
            "backtest",
            "--trace",
            str(trace_csv),
            "--capacity-per-node",
            "4",
            "--decisions-out",
            str(decisions),
            "--plot",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "cost × oracle" in res.stdout and "forescale" in res.stdout
    rows = list(csv.reader(decisions.open()))
    assert rows[0] == ["timestamp", "desired", "trigger"]
    assert all(r[0].endswith("Z") and int(r[1]) >= 0 and r[2] in ("tick", "guard") for r in rows[1:])
    ticks = [datetime.fromisoformat(r[0].replace("Z", "+00:00")) for r in rows[1:] if r[2] == "tick"]
    assert ticks[0] == datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # one hour of history first
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)}
    assert all(s % 1200 == 0 or s > 3000 for s in steps)  # every interval; later after the gap
    assert len(ticks) == pytest.approx((3 * 86400 - 3600) / 1200, abs=5)
    guards = [datetime.fromisoformat(r[0].replace("Z", "+00:00")) for r in rows[1:] if r[2] == "guard"]
    assert all(g.timestamp() % 300 == 0 and g.timestamp() % 1200 != 0 for g in guards)  # between ticks
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_zooms_and_rejects_a_window_outside_the_replay(trace_csv: Path, tmp_path: Path) -> None:
    png = tmp_path / "zoom.png"
    base = ["backtest", "--trace", str(trace_csv), "--capacity-per-node", "4", "--plot", str(png)]
    res = runner.invoke(app, [*base, "--from", "2026-01-06T06:00:00Z", "--to", "2026-01-06T18:00"])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, [*base, "--from", "2027-01-01"])
    assert res.exit_code != 0 and "no replayed step in that window" in str(res.exception)
    res = runner.invoke(app, [*base, "--from", "2026-01-06", "--to", "2026-01-05"])
    assert res.exit_code != 0 and "must be before --to" in str(res.exception)
    res = runner.invoke(app, ["backtest", "--trace", str(trace_csv), "--capacity-per-node", "4", "--to", "2026-01-06"])
    assert res.exit_code != 0 and "add --plot" in str(res.exception)


def test_config_supplies_the_pool(trace_csv: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(
        "pools:\n  - name: web\n    query: sum(rate(x[5m]))\n    nomad: {job: web, group: workers}\n"
        "    capacity_per_node: 5\n    max: 80\n    lead_time: 15m\n"
    )
    res = runner.invoke(app, ["backtest", "--trace", str(trace_csv), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["capacity_per_node"], out["lead_time_s"]) == (5.0, 900.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--capacity-per-node", "4"], "give --trace FILE.csv, --prometheus URL --query PROMQL, or -c forescale.yaml"),
        (["--trace", "x.csv", "--prometheus", "http://127.0.0.1:1", "--capacity-per-node", "4"], "either --trace"),
        (["--trace", "TRACE"], "--capacity-per-node is required"),
        (["--trace", "TRACE", "--capacity-per-node", "4", "--pool", "web"], "--pool needs --config"),
        (["--trace", "TRACE", "--capacity-per-node", "4", "--lead-time", "soon"], "--lead-time"),
        (["--trace", "missing.csv", "--capacity-per-node", "4"], "cannot read trace"),
        (["--prometheus", "http://127.0.0.1:1", "--capacity-per-node", "4"], "--query"),
    ],
)
def test_user_errors_are_one_readable_line(trace_csv: Path, args: list[str], message: str) -> None:
    args = [str(trace_csv) if a == "TRACE" else a for a in args]
    res = runner.invoke(app, ["backtest", *args])
    assert isinstance(res.exception, BacktestError)
    assert message in str(res.exception)
    assert "\n" not in str(res.exception)


def test_metrics_history_becomes_a_trace() -> None:
    """A rate sample at T describes the interval ending at T: the trace row starts at T - step (the source's)."""
    from datetime import timedelta

    from autoscaler.backtest.session import history_trace

    calls: list[tuple[str, float, float]] = []

    class Fake:
        step_s = 60.0

        def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
            calls.append((query, (end - start).total_seconds(), step_s))
            return RateSeries.from_lists([600.0, 660.0, 720.0], [2.0, float("nan"), 3.0], step_s)

    tr = history_trace(Fake(), "rate(x[1m])", timedelta(days=14))
    assert calls == [("rate(x[1m])", 14 * 86400.0, 60.0)]
    assert tr.t.tolist() == [540.0, 660.0]  # the NaN sample is a gap, not zero demand
    assert tr.requests.tolist() == [120.0, 180.0]
    assert tr.step_s == 60.0


def test_history_comes_from_the_configured_source_at_the_asked_step() -> None:
    """`--prometheus URL` selects Prometheus at that URL; `--step` is the step of the history the source serves
    (built by the one constructor the wiring uses)."""
    from datetime import timedelta

    from autoscaler.backtest.session import history_config
    from autoscaler.sources.registry import build_metrics_source
    from tests.helpers import make_config, pool_dict

    cfg = make_config(pool_dict(), prometheus={"url": "http://prom.example:9090", "timeout": "3s"})
    history = history_config(cfg, "http://other.example:9090", timedelta(minutes=5))
    source = build_metrics_source(history)
    assert source.step_s == 300.0
    assert history.prometheus.url == "http://other.example:9090"
    assert history.prometheus.timeout == timedelta(seconds=3)  # the rest of the section from the file
    assert build_metrics_source(history_config(cfg, None, timedelta(minutes=1))).step_s == 60.0


@pytest.mark.prometheus
def test_prometheus_history_replays_like_the_trace_it_came_from(prometheus_nasa: object, tmp_path: Path) -> None:
    """A real Prometheus backfilled with the NASA trace: replaying 3 days of its history gives the same
    figures as replaying the same 3 days of the CSV."""
    from tests.fixtures.prometheus import PrometheusWithTrace

    assert isinstance(prometheus_nasa, PrometheusWithTrace)
    tr = prometheus_nasa.trace
    first = 288  # one day in: the [5m] rate window is full
    last = first + 3 * 288
    until = datetime.fromtimestamp(float(tr.t[last - 1] + tr.step_s), UTC)
    part = tmp_path / "part.csv"
    with part.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "requests"])
        for t, r in zip(tr.t[first:last], tr.requests[first:last], strict=True):
            w.writerow([datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), int(r)])
    since = f"{(last - first - 1) * 300}s"
    common = ["--capacity-per-node", "0.1", "--json"]
    from_prom = runner.invoke(
        app,
        [
            "backtest",
            "--prometheus",
            prometheus_nasa.url,
            "--query",
            prometheus_nasa.query,
            "--since",
            since,
            "--step",
            "5m",
            "--until",
            until.strftime("%Y-%m-%dT%H:%M:%SZ"),
            *common,
        ],
    )
    assert from_prom.exit_code == 0, from_prom.output
    from_csv = runner.invoke(app, ["backtest", "--trace", str(part), *common])
    a, b = json.loads(from_prom.stdout), json.loads(from_csv.stdout)
    assert a["step_s"] == b["step_s"] == 300.0
    for name in b["policies"]:
        for key, value in b["policies"][name].items():
            assert a["policies"][name][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (name, key)

    # The same replay from the config alone: the pool's query, prometheus.url, capacity and lead time.
    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(
        f"prometheus: {{url: '{prometheus_nasa.url}'}}\n"
        "daemon: {interval: 20m}\n"
        f"pools:\n  - name: web\n    query: '{prometheus_nasa.query}'\n    nomad: {{job: web, group: workers}}\n"
        "    capacity_per_node: 0.1\n    max: 1000000\n    lead_time: 10m\n"
    )
    window = ["--since", since, "--step", "5m", "--until", until.strftime("%Y-%m-%dT%H:%M:%SZ")]
    from_cfg = runner.invoke(app, ["backtest", "-c", str(cfg), "--pool", "web", *window, "--json"])
    assert from_cfg.exit_code == 0, from_cfg.output
    doc = json.loads(from_cfg.stdout)
    assert doc.pop("trace") == "pool web"  # titled after the pool, not "prometheus" (issue 22, item 14)
    assert doc == {k: v for k, v in a.items() if k != "trace"}
    said = " ".join(from_cfg.stderr.split())
    assert f"backtest of pool 'web': a tick every 20m (daemon.interval in {cfg})" in said
    assert f"lead time 10m (pools[web].lead_time in {cfg}), 0.1 req/s per node (pools[web].capacity_per_node in" in said
    assert f"data from {prometheus_nasa.url} (prometheus.url), query" in said and "(pools[web].query)" in said


def test_a_shadow_pool_is_replayed_as_it_would_act_live(trace_csv: Path, tmp_path: Path) -> None:
    """The README's backtest runs on the example config, whose pools start in shadow: the replay must scale."""
    pool = "    capacity_per_node: 5\n    max: 80\n"
    text = "pools:\n  - name: web\n    query: sum(rate(x[5m]))\n    nomad: {job: web, group: workers}\n" + pool
    live, shadow = tmp_path / "live.yaml", tmp_path / "shadow.yaml"
    live.write_text(text)
    shadow.write_text(text + "    mode: shadow\n")
    runs = [runner.invoke(app, ["backtest", "--trace", str(trace_csv), "-c", str(p), "--json"]) for p in (live, shadow)]
    assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
    live_out, shadow_out = (json.loads(r.stdout)["policies"]["forescale"] for r in runs)
    assert shadow_out["scale_actions"] > 0 and shadow_out == live_out
