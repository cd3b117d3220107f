"""`forescale capacity` against a real Prometheus (issue 22, item 12).

The TSDB holds four days of the NASA trace as ``http_requests_total{pool="nasa"}`` (as in
tests/fixtures/prometheus.py), the pool's ready nodes stepping between 6 and 14 every two hours, and a p95
latency that rises gently up to a known load per node and jumps past it. The command must find that load from
history alone, show its evidence and draw the plot; and from a load-test CSV pick the best packing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from predictor.trace import load_trace
from tests import REPO
from tests.fixtures.prometheus import NASA_QUERY, NASA_TRACE, SAMPLE_S
from tests.fixtures.prometheus_server import (
    PrometheusStartError,
    _promtool_create_blocks,
    binaries_missing,
    counter_from_counts,
    start_prometheus,
    write_openmetrics,
)

DAYS = 4
SLO_QUERY = 'max(pool_latency_p95_seconds{pool="nasa"})'
NODES_QUERY = 'max(pool_ready_nodes{pool="nasa"})'


@dataclass(frozen=True)
class History:
    url: str
    capacity: float  # the load per node where latency jumps past the SLO
    until: str  # end of the history, aligned to the trace's intervals


def _gauges(path: Path, name: str, starts: np.ndarray, values: np.ndarray, step_s: float) -> str:
    lines = [f"# HELP {name} Test gauge.", f"# TYPE {name} gauge"]
    for start, value in zip(starts.tolist(), values.tolist(), strict=True):
        for k in range(1, round(step_s / SAMPLE_S) + 1):
            lines.append(f'{name}{{pool="nasa"}} {value!r} {int(start + k * SAMPLE_S)}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    missing = binaries_missing()
    if missing:
        from tests.conftest import require_service

        require_service("prometheus", f"{' and '.join(missing)} not on PATH (Debian package 'prometheus')")
    trace = load_trace(NASA_TRACE)
    n = int(np.searchsorted(trace.t, trace.t[0] + DAYS * 86400))
    starts, counts = trace.t[:n], trace.requests[:n]
    nodes = 6.0 + 2.0 * ((np.arange(n) // 24) % 5)
    per_node = counts / trace.step_s / nodes
    capacity = float(np.quantile(per_node[per_node > 0], 0.75))
    latency = np.where(per_node <= capacity, 1.0 + 0.5 * per_node / capacity, 5.0)
    work = tmp_path_factory.mktemp("capacity-prometheus")
    counter = work / "requests.om"
    write_openmetrics(counter, [counter_from_counts({"pool": "nasa"}, starts, counts, trace.step_s, SAMPLE_S)])
    text = counter.read_text().removesuffix("# EOF\n")
    text += _gauges(work, "pool_ready_nodes", starts, nodes, trace.step_s)
    text += _gauges(work, "pool_latency_p95_seconds", starts, latency, trace.step_s)
    counter.write_text(text + "# EOF\n")
    try:
        (work / "data").mkdir()
        _promtool_create_blocks(counter, work / "data")
        server = start_prometheus(work / "data", work)
    except PrometheusStartError as exc:
        pytest.fail(f"could not start the test Prometheus: {exc}", pytrace=False)
    end = datetime.fromtimestamp(float(starts[-1] + trace.step_s), UTC)
    try:
        yield History(server.url, capacity, end.isoformat())
    finally:
        server.stop()


def forescale(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args], cwd=cwd, capture_output=True, text=True, timeout=180
    )


def config(tmp_path: Path, url: str) -> Path:
    cfg = {
        "prometheus": {"url": url},
        "pools": [
            {
                "name": "nasa",
                "query": NASA_QUERY,
                "nomad": {"job": "web", "group": "g"},
                "capacity_per_node": 1,
                "max": 50,
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def history_args(history: History, path: Path) -> list[str]:
    return [
        "capacity",
        "-c",
        str(path),
        "--slo-query",
        SLO_QUERY,
        "--slo",
        "3",
        "--nodes-query",
        NODES_QUERY,
        "--since",
        f"{DAYS}d",
        "--until",
        history.until,
    ]


def test_capacity_from_prometheus_history_finds_the_knee(history: History, tmp_path: Path) -> None:
    plot = tmp_path / "capacity.png"
    done = forescale([*history_args(history, config(tmp_path, history.url)), "--json", "--plot", str(plot)], tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["bound"] == "limit", doc["summary"]
    assert 0.8 * history.capacity <= doc["capacity_per_node"] <= history.capacity * 1.001, (doc, history.capacity)
    assert doc["broke_at"] > 0.95 * history.capacity
    assert doc["samples"] > 1000 and len(doc["bins"]) == 20
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_capacity_prints_its_evidence(history: History, tmp_path: Path) -> None:
    done = forescale(history_args(history, config(tmp_path, history.url)), tmp_path)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "evidence: load per node" in out and "met the SLO" in out
    assert "capacity_per_node ≈" in out and "pools[].capacity_per_node:" in out


def test_capacity_from_a_load_test_picks_the_packing(tmp_path: Path) -> None:
    csv = tmp_path / "load.csv"
    rows = ["workers,rps,latency_s,error_rate"]
    for workers, limit in ((1, 12), (2, 22), (4, 38), (6, 30)):
        rows += [f"{workers},{rps},{1.2 if rps <= limit else 4.5},0" for rps in range(5, 60, 5)]
    csv.write_text("\n".join(rows) + "\n")
    done = forescale(["capacity", "--load-test", str(csv), "--slo", "3", "--plot", str(tmp_path / "p.png")], tmp_path)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "capacity_per_node ≈ 35 req/s with 4 worker(s) per GPU" in out
    assert "(jobspec.workers_per_gpu: 4)" in out
    assert (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["capacity", "--slo", "3"], "either -c forescale.yaml"),
        (["capacity", "--load-test", "missing.csv", "--slo", "inf"], "--slo"),
    ],
)
def test_capacity_usage_errors_are_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    done = forescale(args, tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and words in done.stderr, done.stderr


def test_the_readme_documents_the_command() -> None:
    assert "forescale capacity" in (REPO / "README.md").read_text(encoding="utf-8")
