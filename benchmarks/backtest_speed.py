"""Backtest speed: a 14-day, 1-minute replay through the real CLI, from a real Prometheus and from a CSV.

Run: .venv/bin/python benchmarks/backtest_speed.py

The history is the first 14 days of the NASA July 1995 1-minute trace (../shared/data/traces), backfilled into
a real Prometheus (Debian package, started on 127.0.0.1 by this script, stopped at the end). It is replayed
with `forescale backtest -c forescale.yaml --pool web --since 14d --step 1m --until …` (the pool's query on
prometheus.url: what an SRE runs) and with `--trace`. The target is under 60 s of wall time on a 2-core
machine, for the whole command (start-up, fetch, replay of forescale and the four reference policies).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fixtures.prometheus_server from a checkout

from predictor.trace import Trace, load_trace  # noqa: E402
from tests.fixtures.prometheus_server import binaries_missing, counter_from_counts, running_prometheus  # noqa: E402

TRACE = ROOT.parent / "shared" / "data" / "traces" / "nasa_http_1995_jul_1min.csv"  # ../shared, as in CI
DAYS = 14
TARGET_S = 60.0
FORESCALE = str(ROOT / ".venv" / "bin" / "forescale")
QUERY = 'sum(rate(http_requests_total{pool="web"}[5m]))'


def first_days(trace: Trace, days: int) -> Trace:
    keep = trace.t < trace.t[0] + days * 86400
    return Trace(trace.name, trace.t[keep], trace.requests[keep], trace.step_s)


def timed(args: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([FORESCALE, *args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"forescale {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, cpu, done


def main() -> None:
    missing = binaries_missing()
    if missing:
        raise SystemExit(f"needs {' and '.join(missing)} (Debian package 'prometheus'; `make test` installs it)")
    trace = first_days(load_trace(TRACE), DAYS + 1)  # a day more: the [5m] rate needs samples before the window
    rows = []
    with tempfile.TemporaryDirectory(prefix="forescale-bt-speed-") as tmp:
        work = Path(tmp)
        series = [counter_from_counts({"pool": "web"}, trace.t, trace.requests, trace.step_s, 60.0)]
        with running_prometheus(series, work / "prom") as server:
            capacity = round(float(trace.rps.max()) / 50, 4)
            cfg = {
                "prometheus": {"url": server.url, "timeout": "60s"},
                "pools": [
                    {
                        "name": "web",
                        "query": QUERY,
                        "nomad": {"job": "web", "group": "workers"},
                        "capacity_per_node": capacity,
                        "max": 1000000,
                    }
                ],
            }
            (work / "forescale.yaml").write_text(yaml.safe_dump(cfg))
            until = datetime.fromtimestamp(float(trace.t[-1] + trace.step_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            args = ["backtest", "-c", "forescale.yaml", "--pool", "web", "--since", f"{DAYS}d", "--step", "1m"]
            wall, cpu, _done = timed([*args, "--until", until, "--json"], work)
            rows.append((f"Prometheus, {DAYS} d at 1 min (-c forescale.yaml --pool web)", wall, cpu))
        csv = work / "nasa14.csv"
        part = first_days(load_trace(TRACE), DAYS)
        with csv.open("w") as fh:
            fh.write("timestamp,requests\n")
            for t, r in zip(part.t, part.requests, strict=True):
                fh.write(f"{datetime.fromtimestamp(float(t), UTC):%Y-%m-%dT%H:%M:%SZ},{int(r)}\n")
        wall, cpu, _ = timed(["backtest", "--trace", str(csv), "--capacity-per-node", str(capacity), "--json"], work)
        rows.append((f"CSV, {DAYS} d at 1 min (--trace)", wall, cpu))
    title = f"forescale backtest, {DAYS} days of 1-minute data ({DAYS * 1440:,} steps, a tick every 20 min)"
    table = Table(title=title)
    for col in ("history", "wall s", "CPU s", f"target < {TARGET_S:g} s"):
        table.add_column(col, justify="left" if col == "history" else "right")
    for name, wall, cpu in rows:
        table.add_row(name, f"{wall:.1f}", f"{cpu:.1f}", "[green]met[/]" if wall < TARGET_S else "[red]missed[/]")
    console = Console(width=140)
    console.print(table)
    console.print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
