"""Scale: one daemon tick, the guard and a cron `forescale tick` over 10, 100, 500 and 1000 pools.

Run: .venv/bin/python benchmarks/scale.py [--pools 10,100,500,1000] [--code DIR] [--no-cli] [--days 15]

Setup, once: synthetic request counts of the largest pool count × 15 days at 5-minute resolution (a daily cycle,
quieter weekends, Poisson noise, each pool its own size), written as the counter ``http_requests_total{pool=…}``
and backfilled with ``promtool tsdb create-blocks-from openmetrics`` into a real Prometheus (Debian package) on
127.0.0.1; the data runs 3 hours past the start, so a real-time `forescale tick` finds fresh samples. The fake
Nomad (tests/fakes/nomad.py, in this process, over HTTP) holds one job per pool. Each pool's query is
``sum(rate(http_requests_total{pool="…"}[10m]))`` at the default 1-minute step: 14 days of history are 20,161
points, two range queries when read whole.

For each pool count a child process — the measured one — builds the real parts as `forescale run` does
(``wiring.Runtime``: the Prometheus source with its history, the Nomad target, the override store, the audit
log) and, on a manual clock starting now: tick 1 (cold: every pool's history read whole), ticks 2 and 3 (steady
state, 20 and 40 minutes later: what a running daemon pays), then a guard check over every pool. Then
`forescale tick` (the CLI: a fresh process, start-up included), twice: cold, and again (the second run reads
``metrics.history_cache`` when the code has it). Per step: wall time, CPU seconds (the child's, all threads:
the stable figure on a shared, loaded machine — wall time there includes other people's work), peak RSS,
Prometheus range queries (the server's own ``prometheus_http_requests_total{handler="/api/v1/query_range"}``),
Nomad calls (requests forescale sent) and the outcome (pools decided / held / failed / skipped). The servers share
the 2 cores, so their CPU during each step is shown too: Prometheus's (its own ``process_cpu_seconds_total``) and
the fake Nomad's (this process serves it and otherwise waits for the child; its scheduler places every scaled
allocation a scale asks for: work a real Nomad server does on its own machine).
``--override-records N`` fills the file override store with N ended overrides per pool (issue 23 measured 50).

``--code DIR``: measure another checkout (its ``.venv``), e.g. the main branch before a change.
Bars (issue 23): 1000 pools — a daemon tick ≤ 60 s wall and ≤ 600 MB RSS with every pool decided, ≤ 1
Prometheus query per pool per tick in steady state, a guard over 1000 pools ≤ 10 s.
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
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

DAY = 86400.0
STEP_S = 300.0  # the traffic's resolution: one counter sample every 5 minutes
AHEAD_S = 3 * 3600.0  # data past the start: ticks on the manual clock and the real-time CLI find fresh samples
POOLS = (10, 100, 500, 1000)
TICK = timedelta(minutes=20)


# ------------------------------------------------------------------------------------------- the child


def child(spec: dict[str, Any]) -> None:
    """The measured process: the daemon's parts, three ticks and a guard check on a manual clock."""
    import threading

    from autoscaler.cli import main as cli_main

    getattr(cli_main, "one_blas_thread", lambda: None)()  # what `forescale run` does first (if this code does)

    from autoscaler.config import load_config
    from autoscaler.core.clock import ManualClock
    from autoscaler.policy.tick import run_tick
    from autoscaler.wiring import build_runtime

    config = load_config(Path(spec["config"]))
    clock = ManualClock(datetime.fromtimestamp(spec["start"], UTC))
    runtime = build_runtime(config, clock)
    calls = [0]
    lock = threading.Lock()

    def count(response: Any, *args: Any, **kwargs: Any) -> None:
        with lock:
            calls[0] += 1

    runtime.nomad.session.hooks["response"].append(count)
    deps = runtime.tick_deps([])  # as the daemon: one set of parts for every tick (no console, no Slack)
    out = []
    for step in ("tick 1 (cold)", "tick 2", "tick 3", "guard"):
        if step != "tick 1 (cold)":
            clock.advance(TICK if step != "guard" else timedelta(minutes=2))
        (queries, prom_cpu), nomad, fake_cpu = prom_counters(spec["prometheus"]), calls[0], parent_cpu()
        cpu, wall = time.process_time(), time.perf_counter()
        report = run_tick(deps, guard=step == "guard")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        queries_after, prom_cpu_after = prom_counters(spec["prometheus"])
        fake_cpu = parent_cpu() - fake_cpu
        out.append(
            {
                "step": step,
                "wall_s": wall,
                "cpu_s": cpu,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                "queries": queries_after - queries,
                "prom_cpu_s": prom_cpu_after - prom_cpu,
                "nomad": calls[0] - nomad,
                "nomad_cpu_s": fake_cpu,
                **outcome(report),
            }
        )
    import autoscaler

    print(f"CODE {Path(autoscaler.__file__).resolve().parent.parent}", flush=True)
    print("RESULT " + json.dumps(out), flush=True)


def outcome(report: Any) -> dict[str, int]:
    decided = [o for o in report.outcomes if o.decision is not None and o.status != "failed"]
    return {
        "pools": len(report.outcomes),
        "decided": len(decided),
        "held": sum(1 for o in decided if o.decision.held),
        "failed": sum(1 for o in report.outcomes if o.status == "failed"),
        "skipped": len(getattr(report, "skipped", ()) or ()),
    }


def parent_cpu() -> float:
    """CPU seconds of this child's parent: the benchmark process, which serves the fake Nomad (and otherwise
    waits for the child), so its CPU during a step is the stand-in Nomad's share of the 2 cores."""
    fields = Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def prom_counters(url: str) -> tuple[int, float]:
    """Range queries the server has answered and its CPU seconds so far (its own counters)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    total, cpu = 0, 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query_range"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("process_cpu_seconds_total "):
            cpu = float(line.rsplit(" ", 1)[1])
    return total, cpu


# ------------------------------------------------------------------------------------------- the world


def synthetic_counts(pool: int, start: float, end: float, rng: Any) -> tuple[Any, Any]:
    import numpy as np

    starts = np.arange(start, end, STEP_S)
    hour = (starts % DAY) / 3600.0
    daily = 0.25 + 0.75 * np.clip(np.sin(np.pi * (hour - 6.0 - (pool % 7) * 0.3) / 14.0), 0.0, None) ** 2
    weekday = np.where(((starts // DAY + 3) % 7) >= 5, 0.6, 1.0)
    rate = (20.0 + 3.0 * (pool % 50)) * daily * weekday  # req/s
    return starts, rng.poisson(rate * STEP_S).astype(np.float64)


def write_overrides(path: Path, pools: int, records: int, start: float) -> None:
    """A file override store with ``records`` ended overrides per pool (the history `override list --all` shows)."""
    ended = datetime.fromtimestamp(start, UTC) - timedelta(days=1)
    doc = {
        "format": "forescale-overrides/1",
        "pools": {
            f"p{i}": {
                "active": [],
                "history": [
                    {
                        "id": f"ov-{i:04d}{k:04d}",
                        "pool": f"p{i}",
                        "kind": "min",
                        "value": 3,
                        "reason": "campaign",
                        "author": "sre",
                        "created_at": (ended - timedelta(hours=k + 2)).isoformat(),
                        "expires_at": (ended - timedelta(hours=k + 1)).isoformat(),
                        "ended_at": (ended - timedelta(hours=k + 1)).isoformat(),
                        "ended": "expired",
                        "ended_by": "forescale",
                    }
                    for k in range(records)
                ],
            }
            for i in range(pools)
        },
    }
    path.write_text(json.dumps(doc), encoding="utf-8")


def write_config(
    path: Path, pools: int, prometheus: str, nomad: str, audit: Path, cache: Path | None, overrides: Path | None = None
) -> None:
    import yaml

    doc: dict[str, Any] = {
        "prometheus": {"url": prometheus, "timeout": "60s"},
        "nomad": {"address": nomad, "timeout": "30s"},
        "leader": {"enabled": False},
        "audit_log": str(audit),
        "pools": [
            {
                "name": f"p{i}",
                "query": f'sum(rate(http_requests_total{{pool="p{i}"}}[10m]))',
                "nomad": {"job": f"ml-p{i}", "group": "workers"},
                "capacity_per_node": 5.0,
                "min": 1,
                "max": 200,
            }
            for i in range(pools)
        ],
    }
    if cache is not None:
        doc["metrics"] = {"history_cache": str(cache)}
    if overrides is not None:
        doc["overrides"] = {"path": str(overrides)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def has_history_cache(code: Path) -> bool:
    return "history_cache" in (code / "autoscaler" / "core" / "settings" / "metrics.py").read_text(encoding="utf-8")


def run_child(code: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    python = code / ".venv" / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True, text=True, cwd=code, env=env, timeout=4 * 3600, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert str(code) in done.stdout, "the child did not run the code under measurement"
    if done.returncode != 0 or not lines:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return list(json.loads(lines[-1][len("RESULT ") :]))


def run_cli(code: Path, config: Path, prometheus: str, fake: Any, step: str) -> dict[str, Any]:
    forescale = code / ".venv" / "bin" / "forescale"
    (queries, prom_cpu), nomad, fake_cpu = prom_counters(prometheus), len(fake.requests), time.process_time()
    out, err = config.with_suffix(".out"), config.with_suffix(".err")
    t0 = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(forescale), "tick", "-c", str(config), "--json"], stdout=stdout, stderr=stderr, cwd=code
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own CPU and peak RSS
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        doc = json.loads(out.read_text())
    except json.JSONDecodeError:
        raise SystemExit(f"forescale tick failed ({proc.returncode}): {err.read_text()[-3000:]}") from None
    pools = doc["pools"]
    decided = [p for p in pools if p["decision"] is not None and p["status"] != "failed"]
    queries_after, prom_cpu_after = prom_counters(prometheus)
    return {
        "step": step,
        "wall_s": wall,
        "in_tick_s": float(doc.get("duration_s") or 0.0),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024.0,
        "queries": queries_after - queries,
        "prom_cpu_s": prom_cpu_after - prom_cpu,
        "nomad": len(fake.requests) - nomad,
        "nomad_cpu_s": time.process_time() - fake_cpu,
        "pools": len(pools),
        "decided": len(decided),
        "held": sum(1 for p in decided if p["decision"]["held"]),
        "failed": sum(1 for p in pools if p["status"] == "failed"),
        "skipped": len(doc.get("skipped") or []),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pools", default=",".join(map(str, POOLS)))
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to measure (its .venv)")
    parser.add_argument("--days", type=float, default=15.0)
    parser.add_argument("--no-cli", action="store_true", help="skip the `forescale tick` runs")
    parser.add_argument(
        "--override-records", type=int, default=0, help="ended overrides per pool in the file override store"
    )
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # runs the code under measurement (PYTHONPATH), never this checkout's
        child(json.loads(args.child))
        return 0
    sys.path.insert(0, str(ROOT))  # tests.fixtures / tests.fakes from this checkout

    from rich.console import Console
    from rich.table import Table

    from tests.fakes.nomad import FakeNomad
    from tests.fixtures.prometheus_server import binaries_missing, counter_from_counts, running_prometheus

    console = Console(width=200)
    if binaries_missing():
        console.print("[red]prometheus/promtool not found: install the Debian 'prometheus' package[/red]")
        return 2
    import numpy as np

    counts = [int(x) for x in args.pools.split(",")]
    code = args.code.resolve()
    start = (time.time() // 60) * 60  # the manual clock's first tick; data until start + AHEAD_S
    rng = np.random.default_rng(23)
    series = []
    for i in range(max(counts)):
        starts, per = synthetic_counts(i, start + AHEAD_S - args.days * DAY, start + AHEAD_S, rng)
        series.append(counter_from_counts({"pool": f"p{i}"}, starts, per, STEP_S, STEP_S))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="forescale-scale-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        with running_prometheus(series, work / "prometheus") as prom:
            samples = sum(len(s.t) for s in series)
            console.print(f"setup: {samples:,} samples backfilled in {time.perf_counter() - t0:.0f} s")
            for n in counts:
                fake = FakeNomad(max_delay_s=10.0)
                fake.auto_nodes = True
                fake.start()
                try:
                    for i in range(n):
                        fake.add_job(f"ml-p{i}", groups={"workers": 3}, alloc_status="running")
                    config = work / f"forescale-{n}.yaml"
                    store = work / f"overrides-{n}.json" if args.override_records else None
                    if store is not None:
                        write_overrides(store, n, args.override_records, start)
                    write_config(config, n, prom.url, fake.address, work / f"audit-{n}.jsonl", None, store)
                    spec = {"config": str(config), "start": start, "prometheus": prom.url}
                    for row in run_child(code, spec):
                        rows.append({"pools_n": n, "mode": "daemon", **row})
                        console.print(f"{n} pools: {row}")
                    if not args.no_cli:
                        cache = work / f"history-{n}" if has_history_cache(code) else None
                        write_config(config, n, prom.url, fake.address, work / f"audit-cli-{n}.jsonl", cache, store)
                        for step in ("tick (cold)", "tick (again)"):
                            row = run_cli(code, config, prom.url, fake, step)
                            rows.append({"pools_n": n, "mode": "cli", **row})
                            console.print(f"{n} pools: {row}")
                finally:
                    fake.stop()
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    table = Table(title=f"forescale at scale ({code}): 14 days of 1-minute history a pool, real Prometheus, fake Nomad")
    columns = (
        "pools", "run", "wall s", "CPU s", "peak RSS MB", "Prom. queries", "/pool", "Prom. CPU s", "Nomad calls",
        "fake Nomad CPU s", "outcome",
    )  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("run", "outcome") else "right")
    for r in rows:
        per = r["queries"] / max(r["pools_n"], 1)
        wall = f"{r['wall_s']:.1f}" + (f" ({r['in_tick_s']:.1f})" if "in_tick_s" in r else "")
        what = f"{r['decided']}/{r['pools']} decided"
        for key in ("held", "failed", "skipped"):
            if r[key]:
                what += f", {r[key]} {key}"
        name = f"{r['mode']}: {r['step']}" if r["mode"] == "daemon" else f"forescale {r['step']}"
        table.add_row(
            str(r["pools_n"]), name, wall, f"{r['cpu_s']:.1f}", f"{r['rss_mb']:.0f}", str(r["queries"]), f"{per:.2f}",
            f"{r['prom_cpu_s']:.1f}", str(r["nomad"]), f"{r['nomad_cpu_s']:.1f}", what,
        )  # fmt: skip
    console.print(table)
    load = os.getloadavg()
    console.print(
        f"load average now {load[0]:.1f} on {os.cpu_count()} cores: wall times include other processes' work; CPU "
        "seconds are the stable figure. A guard check lists only the pools it scaled (decided = scaled)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
