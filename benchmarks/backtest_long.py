"""Backtest speed on a long history: 90 days of 5-minute data through the real CLI (issue 23's bar: < 60 s of CPU).

Run: .venv/bin/python benchmarks/backtest_long.py [--days 90]

The bundled 5-minute traces (NASA July 1995, AWS ELB; ../shared/data/traces) are tiled end to end until they
cover ``--days`` (each copy shifted by the original's span, so the weekly and daily cycles continue), written as
CSV and replayed with `forescale backtest --trace … --json` at the policy benchmark's settings (capacity = peak / 50,
lead 10 min, tick 20 min): forescale and the four reference policies, start-up included. CPU seconds are the
stable figure on a shared machine; the table also prints forescale's cost and unserved share, so a faster replay
that changed the decisions would show.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predictor.trace import Trace, load_trace  # noqa: E402

TRACES = Path(os.environ.get("FORESCALE_TRACES") or ROOT.parent / "shared" / "data" / "traces")
FILES = {"NASA Jul 5 min": "nasa_http_1995_jul_5min.csv", "ELB 5 min": "aws_elb_request_count_8c0756_5min.csv"}
FORESCALE = str(ROOT / ".venv" / "bin" / "forescale")
TARGET_CPU_S = 60.0


def tiled(trace: Trace, days: float) -> Trace:
    """Copies of ``trace`` end to end, cut at ``days``; each copy starts one step after the previous one ends."""
    span = float(trace.t[-1] - trace.t[0]) + trace.step_s
    copies = int(np.ceil(days * 86400 / span))
    t = np.concatenate([trace.t + k * span for k in range(copies)])
    requests = np.concatenate([trace.requests] * copies)
    keep = t < trace.t[0] + days * 86400
    return Trace(f"{trace.name}-{days:g}d", t[keep], requests[keep], trace.step_s)


def write_csv(trace: Trace, path: Path) -> None:
    stamps = np.datetime_as_string(trace.t.astype("datetime64[s]"), unit="s")
    with path.open("w", encoding="utf-8") as fh:
        fh.write("timestamp,requests\n")
        fh.writelines(f"{s}Z,{int(r)}\n" for s, r in zip(stamps, trace.requests, strict=True))


def timed(args: list[str]) -> tuple[float, float, dict]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([FORESCALE, *args], capture_output=True, text=True, timeout=1800, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"forescale {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=90.0)
    args = parser.parse_args()
    table = Table(title=f"forescale backtest --trace, {args.days:g} days of 5-minute data (tiled), through the CLI")
    for col in ("trace", "steps", "wall s", "CPU s", f"CPU < {TARGET_CPU_S:g} s", "forescale × oracle", "unserved %"):
        table.add_column(col, justify="left" if col == "trace" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for name, file in FILES.items():
            source = load_trace(TRACES / file)
            long = tiled(source, args.days)
            path = Path(tmp) / f"{long.name}.csv"
            write_csv(long, path)
            capacity = float(np.max(source.rps)) / 50.0
            cli = ["backtest", "--trace", str(path), "--capacity-per-node", repr(capacity)]
            wall, cpu, out = timed([*cli, "--lead-time", "10m", "--interval", "20m", "--json"])
            fs = out["policies"]["forescale"]
            oracle = out["policies"]["oracle"]["node_hours"]
            table.add_row(
                name,
                f"{len(long.t):,}",
                f"{wall:.1f}",
                f"{cpu:.1f}",
                "met" if cpu < TARGET_CPU_S else "missed",
                f"{fs['node_hours'] / oracle:.3f}",
                f"{fs['unserved_pct']:.3f}",
            )
    Console().print(table)
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
