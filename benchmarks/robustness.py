"""Robustness of the default policy on principled variants of the real traces (not tuned to any of them).

Run: .venv/bin/python benchmarks/robustness.py   (about 2–3 minutes on 2 cores)

Every row replays forescale with DEFAULT settings through the real tick (``autoscaler.backtest.replay.replay``)
and scores it against the oracle on the same steps. Unless the row says otherwise: capacity = the
variant's own peak / 50 nodes, lead 10 min, tick every 20 min, SLO = unserved ≤ 1 %.

Variants: (a) traffic growth ×2 / ×0.5 over the trace (multiplicative linear ramp); (b) capacity
granularity peak/20 and peak/200; (c) lead 5 and 15 min; (d) NASA at 1 min raw next to 5 min;
(e) time-reversed traces; (f) synthetic spike-driven and weekly-with-holiday traces (fixed seeds);
(g) the first week only (cold start, little history); (h) synthetic outage-then-jump, single spike and
step growth (what the headroom must shrug off: a near-zero start, a one-off, a level shift).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.backtest.replay import replay, score_requests, start_index  # noqa: E402
from autoscaler.backtest.session import _build_config  # noqa: E402
from predictor import reference  # noqa: E402
from predictor.trace import Trace, load_trace  # noqa: E402

# ../shared beside the checkout, as in CI (FORESCALE_TRACES points elsewhere, e.g. from a git worktree)
TRACES = Path(os.environ.get("FORESCALE_TRACES") or ROOT.parent / "shared" / "data" / "traces")
SLO = 1.0
DAY = 86400.0


@dataclass(frozen=True)
class Case:
    group: str
    label: str
    trace: Trace
    nodes_at_peak: float = 50.0
    lead: str = "10m"
    interval: str = "20m"


def _ramp(trace: Trace, factor: float) -> Trace:
    """Multiply demand by a factor rising (or falling) linearly from 1 at the start to ``factor`` at the end."""
    frac = (trace.t - trace.t[0]) / (trace.t[-1] - trace.t[0])
    return replace(trace, name=f"{trace.name}_growth{factor:g}", requests=trace.requests * (1 + (factor - 1) * frac))


def _reverse(trace: Trace) -> Trace:
    """Same timestamps, demand played backwards: still diurnal, but ramps become decays and vice versa."""
    return replace(trace, name=f"{trace.name}_reversed", requests=trace.requests[::-1].copy())


def _head(trace: Trace, days: float) -> Trace:
    keep = trace.t < trace.t[0] + days * DAY
    return replace(trace, name=f"{trace.name}_first{days:g}d", t=trace.t[keep], requests=trace.requests[keep])


def _diurnal(t: np.ndarray, rng: np.random.Generator, peak_hour: float = 15.0) -> np.ndarray:
    """A smooth daily cycle (trough ≈ 0.25 of peak) with multiplicative noise, in req/s."""
    hours = (t % DAY) / 3600.0
    shape = 0.25 + 0.75 * (0.5 + 0.5 * np.cos(2 * np.pi * (hours - peak_hour) / 24.0)) ** 2
    return 100.0 * shape * rng.lognormal(0.0, 0.08, t.shape[0])


def synthetic_spikes(per_day: int, step_s: float = 300.0, days: int = 14, seed: int = 7) -> Trace:
    """Diurnal base + random short spikes of 3–8× lasting 5–30 min, ``per_day`` a day on average."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + step_s * np.arange(int(days * DAY / step_s))
    rps = _diurnal(t, rng)
    for _ in range(per_day * days):
        start = int(rng.integers(0, t.shape[0]))
        length = max(1, round(rng.uniform(300.0, 1800.0) / step_s))
        rps[start : start + length] *= rng.uniform(3.0, 8.0)
    return Trace(f"synthetic_spikes_{per_day}_a_day", t, rps * step_s, step_s)


def synthetic_weekly_holiday(step_s: float = 300.0, weeks: int = 4, seed: int = 11) -> Trace:
    """Weekdays ≈ 1.8× weekends; one Wednesday in week 3 is a holiday at weekend level."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 - (1.7e9 % (7 * DAY)) + 4 * DAY + step_s * np.arange(int(weeks * 7 * DAY / step_s))  # a Monday
    rps = _diurnal(t, rng, peak_hour=14.0)
    day = ((t - t[0]) // DAY).astype(int)
    weekend = (day % 7) >= 5
    holiday = day == 16  # Wednesday of the third week
    rps *= np.where(weekend | holiday, 1.0, 1.8)
    return Trace("synthetic_weekly_holiday", t, rps * step_s, step_s)


def synthetic_outage_then_jump(step_s: float = 300.0, days: int = 14, seed: int = 13) -> Trace:
    """The pool's first 8 hours carry 5 % of its traffic (an outage, a migration), then it jumps ×20 to a
    diurnal pattern: a floor learned against the near-zero day mean must not hold days of headroom."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + step_s * np.arange(int(days * DAY / step_s))
    rps = _diurnal(t, rng) * np.where(t - t[0] < 8 * 3600.0, 0.05, 1.0)
    return Trace("synthetic_outage_then_jump", t, rps * step_s, step_s)


def synthetic_single_spike(step_s: float = 300.0, days: int = 14, seed: int = 17) -> Trace:
    """A diurnal pool with one 6× spike of 15 minutes on day 4: shorter than lead time plus guard, it
    cannot be served reactively; it must not poison the headroom for the following days."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + step_s * np.arange(int(days * DAY / step_s))
    rps = _diurnal(t, rng)
    at = int((4 * DAY + 11 * 3600.0) / step_s)
    rps[at : at + round(900.0 / step_s)] *= 6.0
    return Trace("synthetic_single_spike", t, rps * step_s, step_s)


def synthetic_step_growth(step_s: float = 300.0, days: int = 14, seed: int = 19) -> Trace:
    """A diurnal pool whose traffic doubles at once on day 7 (a new customer) and stays there."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + step_s * np.arange(int(days * DAY / step_s))
    rps = _diurnal(t, rng) * np.where(t - t[0] < 7 * DAY + 9 * 3600.0, 1.0, 2.0)
    return Trace("synthetic_step_growth", t, rps * step_s, step_s)


def cases() -> list[Case]:
    nasa = load_trace(TRACES / "nasa_http_1995_jul_5min.csv")
    elb = load_trace(TRACES / "aws_elb_request_count_8c0756_5min.csv")
    nasa1 = load_trace(TRACES / "nasa_http_1995_jul_1min.csv")
    out: list[Case] = []
    for tr in (nasa, elb):
        out.append(Case("base", "as is", tr))
    for tr in (nasa, elb):
        out += [Case("(a) growth", "×2 ramp", _ramp(tr, 2.0)), Case("(a) growth", "×0.5 ramp", _ramp(tr, 0.5))]
    for tr in (nasa, elb):
        out += [Case("(b) granularity", "peak/20", tr, 20.0), Case("(b) granularity", "peak/200", tr, 200.0)]
    for tr in (nasa, elb):
        out += [Case("(c) lead", "lead 5m", tr, lead="5m"), Case("(c) lead", "lead 15m", tr, lead="15m")]
    out.append(Case("(d) resolution", "1 min raw", nasa1))
    for tr in (nasa, elb):
        out.append(Case("(e) reversed", "time-reversed", _reverse(tr)))
    out.append(Case("(f) synthetic", "3–8× spikes 1/day", synthetic_spikes(1)))
    out.append(Case("(f) synthetic", "3–8× spikes 4/day", synthetic_spikes(4)))
    out.append(Case("(f) synthetic", "weekly + holiday", synthetic_weekly_holiday()))
    out.append(Case("(h) robustness", "outage, then ×20", synthetic_outage_then_jump()))
    out.append(Case("(h) robustness", "one 6× spike", synthetic_single_spike()))
    out.append(Case("(h) robustness", "step ×2 on day 7", synthetic_step_growth()))
    for tr in (nasa, elb):
        out.append(Case("(g) cold start", "first 7 days", _head(tr, 7.0)))
    return out


def run_case(case: Case) -> tuple[Case, dict[str, float]]:
    tr = case.trace
    cap = float(np.max(tr.rps)) / case.nodes_at_peak
    cfg, pool, _origins = _build_config(None, None, cap, case.lead, case.interval, None)
    lead_s = cfg.pool(pool).lead_time.total_seconds()
    res = replay(tr, cfg, pool)
    first = start_index(tr)
    oracle = score_requests(tr, first, cap, lead_s, reference.oracle(tr.t[first:], tr.rps[first:], cap, lead_s))
    static = score_requests(tr, first, cap, lead_s, reference.static_peak(tr.t[first:], tr.rps[first:], cap))
    return case, {
        "cost": res.node_hours / oracle.node_hours,
        "static": static.node_hours / oracle.node_hours,
        "unserved": res.unserved_pct,
        "under": res.under_capacity_pct,
        "actions": float(res.scale_actions),
        "per_day": res.actions_per_day,
        "reversals": res.reversal_pct,
    }


def _short(name: str) -> str:
    for long, short in (("nasa_http_1995_jul_5min", "NASA 5 min"), ("nasa_http_1995_jul_1min", "NASA 1 min")):
        if name.startswith(long):
            return short
    if name.startswith("aws_elb"):
        return "ELB 5 min"
    return name.split("_")[0] + " " + name.split("_")[1]


def main() -> None:
    all_cases = cases()
    # The 1-minute trace is the slowest: start it first so both workers stay busy.
    all_cases.sort(key=lambda c: -len(c.trace.t))
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run_case, all_cases))
    order = [c.trace.name + c.label for c in cases()]
    results.sort(key=lambda r: order.index(r[0].trace.name + r[0].label))
    table = Table(title="forescale robustness (default settings): cost × oracle and SLO (unserved ≤ 1 %)")
    cols = ("variant", "trace", "case", "lead", "nodes at peak", "cost × oracle", "static peak × oracle")
    for col in (*cols, "unserved %", "under-cap %", "actions/day", "reversals < 1 h", "SLO"):
        table.add_column(col, justify="left" if col in ("variant", "trace", "case") else "right")
    misses = 0
    for case, r in results:
        met = r["unserved"] <= SLO
        misses += not met
        table.add_row(
            case.group,
            _short(case.trace.name),
            case.label,
            case.lead,
            f"{case.nodes_at_peak:g}",
            f"{r['cost']:.2f}",
            f"{r['static']:.2f}",
            f"{r['unserved']:.3f}",
            f"{r['under']:.2f}",
            f"{r['per_day']:.1f}",
            f"{r['reversals']:.0f} %",
            "[green]met[/]" if met else "[red]missed[/]",
        )
    console = Console(width=200)
    console.print(table)
    console.print(f"{len(results) - misses}/{len(results)} variants meet the SLO")


if __name__ == "__main__":
    main()
