"""The traces the policy benchmarks replay, how each is set up, and the two ways a case is scored.

Shared by ``benchmarks/policy.py`` (issue 21's bars) and ``benchmarks/frontier.py`` (the cost–SLO curve on the
bundled and synthetic traces). Settings are the issue's: capacity = the trace's peak / 50 nodes, lead 10 min,
tick every 20 min; the Azure hours aggregated to 1 minute with lead 2 min and tick 5 min (the project's own
setting), and at their native 1 second with lead 10 min and tick 20 min, capacity = the 1-minute peak / 50.
Every case is scored from forescale's first decision, as the backtest scores it.

- ``run_forescale``: the real CLI (``forescale backtest --json --decisions-out``), its decisions re-scored by
  ``benchmarks/independent_sim.py`` (a separate simulator: the figures must agree);
- ``best_causal``: the simple causal families of ``benchmarks/families.py`` with their knob tuned in
  hindsight, the cheapest one re-scored by the independent simulator too.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from families import Scorer, Tuned, best_families, desired_of  # noqa: E402
from independent_sim import close, simulate  # noqa: E402
from shapes import SHAPES, write_csv  # noqa: E402

from autoscaler.backtest.replay import score_requests, start_index  # noqa: E402
from predictor import reference  # noqa: E402
from predictor.trace import load_trace  # noqa: E402

# ../shared beside the checkout, as in CI (FORESCALE_TRACES points elsewhere, e.g. from a git worktree)
TRACES = Path(os.environ.get("FORESCALE_TRACES") or ROOT.parent / "shared" / "data" / "traces")
FORESCALE = str(ROOT / ".venv" / "bin" / "forescale")
DURATION_S = {"2m": 120.0, "5m": 300.0, "10m": 600.0, "20m": 1200.0}


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    path: Path
    capacity: float
    lead: str = "10m"
    interval: str = "20m"
    kind: str = "bar"  # bar, sanity or synthetic


def aggregate(src: Path, dst: Path, seconds: int) -> Path:
    """Sum a fine trace into ``seconds`` buckets (bucket start = floor of the timestamp; partial ends dropped)."""
    buckets: dict[int, float] = {}
    with src.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            t = int(datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp())
            buckets[t - t % seconds] = buckets.get(t - t % seconds, 0.0) + float(row["requests"])
    with dst.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "requests"])
        for t in sorted(buckets)[1:-1]:
            w.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), int(buckets[t])])
    return dst


def peak_over_50(path: Path) -> float:
    tr = load_trace(path)
    return float(np.max(tr.rps)) / 50.0


def cases(tmp: Path, synthetic: bool = True) -> list[Case]:
    """Every case (the synthetic shapes written to ``tmp`` as CSV files)."""
    nasa5 = TRACES / "nasa_http_1995_jul_5min.csv"
    elb = TRACES / "aws_elb_request_count_8c0756_5min.csv"
    nasa1 = TRACES / "nasa_http_1995_jul_1min.csv"
    out = [
        Case("nasa", "NASA Jul 5 min", nasa5, peak_over_50(nasa5)),
        Case("elb", "ELB 5 min", elb, peak_over_50(elb)),
        Case("nasa1", "NASA Jul 1 min", nasa1, peak_over_50(nasa1), kind="sanity"),
    ]
    for name in ("conv", "code"):
        fine = TRACES / f"azure_llm_inference_2023_{name}_1s.csv"
        minute = aggregate(fine, tmp / f"azure_{name}_1min.csv", 60)
        cap = peak_over_50(minute)
        out.append(Case(f"{name}1m", f"Azure {name}, 1 min, 2m/5m", minute, cap, "2m", "5m"))
        out.append(Case(f"{name}1s", f"Azure {name}, 1 s, 10m/20m", fine, cap))
    if synthetic:
        for name, make in SHAPES.items():
            path = tmp / f"{name}.csv"
            write_csv(make(), str(path))
            out.append(Case(name, f"synthetic: {name}", path, peak_over_50(path), kind="synthetic"))
    return out


@dataclass(frozen=True)
class Figures:
    cost: float  # × oracle
    unserved_pct: float
    reversals_pct: float
    actions: int
    agree: bool  # the independent simulator gives the same figures
    policies: dict[str, dict[str, float]]  # the CLI's --json figures of every policy (forescale and references)


def run_forescale(case: Case, slo_pct: float, tmp: Path) -> Figures:
    decisions = tmp / f"{case.key}.{slo_pct:g}.decisions.csv"
    cmd = [FORESCALE, "backtest", "--trace", str(case.path), "--capacity-per-node", repr(case.capacity)]
    cmd += ["--lead-time", case.lead, "--interval", case.interval, "--slo-unserved-pct", f"{slo_pct:g}"]
    cmd += ["--json", "--decisions-out", str(decisions)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    mine = result["policies"]["forescale"]
    oracle = result["policies"]["oracle"]["node_hours"]
    independent = simulate(case.path, decisions, case.capacity, float(result["lead_time_s"]))
    agree = all(
        close(float(mine[k]), independent[k], 0.01 if k == "scale_actions_per_day" else 1e-3) for k in independent
    )
    return Figures(
        mine["node_hours"] / oracle,
        mine["unserved_pct"],
        mine["reversals_1h_pct"],
        mine["scale_actions"],
        agree,
        result["policies"],
    )


@dataclass(frozen=True)
class Reference:
    best: Tuned | None
    agree: bool  # its decisions re-scored by the independent simulator give the same figures


def scorer_for(case: Case) -> Scorer:
    tr = load_trace(case.path)
    first = start_index(tr)
    lead = DURATION_S[case.lead]
    s = Scorer(tr.t, tr.rps, tr.step_s, first, case.capacity, lead)
    orders = reference.oracle(tr.t[first:], tr.rps[first:], case.capacity, lead)
    s.oracle_node_hours = score_requests(tr, first, case.capacity, lead, orders).node_hours
    return s


def best_causal(case: Case, slo_pct: float, scorer: Scorer | None = None) -> Reference:
    s = scorer or scorer_for(case)
    ranked = best_families(s, slo_pct)
    if not ranked:
        return Reference(None, True)
    best = ranked[0]
    desired = desired_of(s, best.family, best.k)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "decisions.csv"
        with path.open("w", encoding="utf-8") as fh:
            fh.write("timestamp,desired,trigger\n")
            previous = None
            for t, c in zip(s.tr, desired, strict=True):
                if c != previous:
                    fh.write(f"{datetime.fromtimestamp(float(t), UTC):%Y-%m-%dT%H:%M:%SZ},{int(c)},tick\n")
                    previous = c
        other = simulate(case.path, path, case.capacity, s.lead)
    agree = close(other["node_hours"], best.score.node_hours) and close(other["unserved_pct"], best.score.unserved_pct)
    return Reference(best, agree)
