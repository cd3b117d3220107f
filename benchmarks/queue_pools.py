"""Queue-fed pools on real traces (issue 25's bar): the same pool with and without its ``queue:`` section.

Run: .venv/bin/python benchmarks/queue_pools.py   (about four minutes on 2 cores)

Settings of the policy benchmark (benchmarks/policy.py): capacity = trace peak / 50 nodes, lead 10 min, tick
every 20 min, forescale's DEFAULT settings; the bundled NASA July 1995 and AWS ELB 5-minute traces. Both pools
are replayed through `forescale backtest` (the real tick) and scored by the same FIFO queue model
(autoscaler/backtest/queue.py: demand beyond ready capacity waits, served first come first served): the pool
without a queue section never reads a backlog (its figures are the policy benchmark's), the queue-fed pool
(``--latency-slo 3s``) reads the replay's own simulated backlog every tick and guard check.

Bar (issue 25): with the queue section, cost no more than without it, at equal or better p95 wait (SLO: p95
wait ≤ 3 s). The queue-fed pool's headroom is calibrated for its wait SLO (predictor/headroom.py, ``WaitSLO``),
the plain pool's for the unserved share. To compare the two at *equal* waits as well, the pool without a queue
section is also run with a stricter unserved SLO (its only knob: more headroom), until its p95 wait and its share
of requests waiting beyond the SLO are no worse than the queue-fed pool's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from cases import peak_over_50  # noqa: E402

# ../shared beside the checkout, as in CI (FORESCALE_TRACES: elsewhere, e.g. from a git worktree)
TRACES = Path(os.environ.get("FORESCALE_TRACES") or ROOT.parent / "shared" / "data" / "traces")
FORESCALE = str(ROOT / ".venv" / "bin" / "forescale")
SLO = "3s"
SLO_S = 3.0
STRICTER = (0.5, 0.25, 0.1)  # unserved SLOs (%) tried for the plain pool, to reach the queue-fed pool's waits


def backtest(path: Path, *extra: str) -> dict:
    """`forescale backtest --json` at the bar's settings, always scored on waits (``--latency-slo``)."""
    cmd = [FORESCALE, "backtest", "--trace", str(path), "--capacity-per-node", repr(peak_over_50(path))]
    cmd += ["--lead-time", "10m", "--interval", "20m", "--json", *extra]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def plain_scored_on_waits(path: Path, slo_pct: float | None = None) -> dict:
    """The pool without a queue section, scored by the queue model (backtest.queue on its ready counts)."""
    from autoscaler.backtest.queue import queue_figures
    from autoscaler.backtest.replay import replay, start_index
    from autoscaler.backtest.session import _build_config
    from predictor.trace import load_trace

    trace = load_trace(path)
    capacity = peak_over_50(path)
    cfg, pool, _ = _build_config(None, None, capacity, "10m", "20m", slo_pct)
    result = replay(trace, cfg, pool)
    first = start_index(trace)
    q = queue_figures(result.t, trace.rps[first:], result.ready, capacity, trace.step_s, SLO_S)
    return {**result.summary(), "queue": q.summary()}


def waits_as_good(q: dict, target: dict) -> bool:
    """Waits no worse than ``target``'s: p95 wait and share of requests waiting beyond the SLO (p95 alone is 0 s
    for most pools that meet the SLO, whatever their margin)."""
    return q["p95_wait_s"] <= target["p95_wait_s"] + 1e-9 and q["beyond_slo_pct"] <= target["beyond_slo_pct"] + 1e-9


def main() -> None:
    console = Console(width=140)
    table = Table(title=f"queue-fed pools: SLO p95 wait ≤ {SLO}; capacity = peak / 50, lead 10m, tick 20m")
    cols = ("trace", "pool", "node-hours × oracle", "p95 wait s", "p99 wait s", f"wait > {SLO} %", "peak backlog")
    for col in (*cols, "unserved %", "SLO"):
        table.add_column(col, justify="left" if col in ("trace", "pool") else "right")
    verdicts = []
    for stem in ("nasa_http_1995_jul_5min", "aws_elb_request_count_8c0756_5min"):
        path = TRACES / f"{stem}.csv"
        queued = backtest(path, "--latency-slo", SLO)
        oracle = queued["policies"]["oracle"]["node_hours"]
        rows = [("without queue", plain_scored_on_waits(path)), ("with queue", queued["policies"]["forescale"])]
        target = rows[1][1]["queue"]
        reached = waits_as_good(rows[0][1]["queue"], target)
        for pct in STRICTER:  # the plain pool's cost at the queue-fed pool's waits (its only knob: headroom)
            if reached:
                break
            rows.append((f"without queue, unserved SLO {pct:g} %", plain_scored_on_waits(path, pct)))
            reached = waits_as_good(rows[-1][1]["queue"], target)
        for i, (name, fig) in enumerate(rows):
            q = fig["queue"]
            table.add_row(
                stem if i == 0 else "",
                name,
                f"{fig['node_hours'] / oracle:.3f}",
                f"{q['p95_wait_s']:.2f}",
                f"{q['p99_wait_s']:.1f}",
                f"{q['beyond_slo_pct']:.2f}",
                f"{q['peak_backlog']:,.0f}",
                f"{fig['unserved_pct']:.3f}",
                "[green]met[/]" if q["p95_wait_s"] <= SLO_S else "[red]missed[/]",
                end_section=i == len(rows) - 1,
            )
        plain, mine = rows[0][1], rows[1][1]
        cost_ok = mine["node_hours"] <= plain["node_hours"] + 1e-9
        wait_ok = mine["queue"]["p95_wait_s"] <= plain["queue"]["p95_wait_s"] + 1e-9
        ratio = mine["node_hours"] / plain["node_hours"]
        verdicts.append(
            f"bar {stem}: with queue {ratio:.4f} × the cost without it "
            + ("[green]met[/]" if cost_ok else "[red]missed[/]")
            + f"; p95 wait {mine['queue']['p95_wait_s']:.2f} s vs {plain['queue']['p95_wait_s']:.2f} s "
            + ("[green]met[/]" if wait_ok else "[red]missed[/]")
        )
        equal = [(n, f) for n, f in rows if n != "with queue" and waits_as_good(f["queue"], target)]
        if equal:
            name, fig = equal[0]
            verdicts.append(
                f"  at waits as good (p95 and share beyond the SLO): {name} costs {fig['node_hours'] / oracle:.3f} "
                f"× oracle, with queue {mine['node_hours'] / oracle:.3f} × "
                + ("[green]cheaper[/]" if mine["node_hours"] <= fig["node_hours"] + 1e-9 else "[red]dearer[/]")
            )
    console.print(table)
    for line in verdicts:
        console.print(line)


if __name__ == "__main__":
    main()
