"""What issue 12's cost bars ask for, next to what simple policies reach with the future in hand.

Run: .venv/bin/python benchmarks/bounds.py   (a few seconds)

For each trace of a cost bar (``benchmarks/policy.py``'s settings: capacity = trace peak / 50 nodes, NASA
and ELB with lead 10 min, the Azure hours at 1 minute with lead 2 min), every reference plans capacity
sample by sample (finer than any 20- or 5-minute tick) and is scored against the same oracle, at the
unserved share the bar allows (0.8 % for NASA and ELB, the 1 % SLO for Azure):

- constant: the cheapest fixed fleet that meets it (chosen with hindsight);
- hour-of-day profile: k × the trace's own mean for each hour of the day (profile and k from the
  whole trace, future included);
- linear model: k × a regression on the lagged samples, trailing means and peaks, time of day and the same
  time a day earlier, fitted on the whole trace (future included);
- trailing rule: k × the mean, peak or 75th percentile of the last W samples, the best over W (k with
  hindsight; the data a decision uses is causal);
- guard + window: what forescale's fast guard and scale-in window hold with no forecast at all (the
  highest observed sample in the window, ready a lead time later), with the unserved share it leaves.

Hindsight makes every reference optimistic: a causal policy that chooses its multiplier on past data
alone does worse. A bar below all of them asks for more than the traffic's own predictability allows;
the guard + window column is a cost the policy pays before any headroom (it leaves the unserved shown).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from policy import TRACES, _aggregate  # noqa: E402

from autoscaler.backtest.replay import start_index  # noqa: E402
from predictor import reference  # noqa: E402
from predictor.trace import Trace, load_trace  # noqa: E402

FloatArray = NDArray[np.float64]
WINDOWS = (1, 2, 3, 5, 8, 12, 24, 48, 96, 288, 2016)  # trailing samples
STATS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "mean": lambda w: np.mean(w, axis=1),
    "peak": lambda w: np.max(w, axis=1),
    "p75": lambda w: np.quantile(w, 0.75, axis=1),
}


@dataclass(frozen=True)
class Case:
    label: str
    path: Path
    lead_s: float
    window_s: float  # the default scale-in window at the benchmark's tick (three ticks)
    allowed_pct: float  # unserved share the bar allows
    bar: float  # cost × oracle


class Scorer:
    """Per-sample capacity against the oracle on the replayed steps (after the backtest's warm-up)."""

    def __init__(self, case: Case, trace: Trace, first: int = 0) -> None:
        self.case, self.trace = case, trace
        self.y, self.t, self.step = trace.rps, trace.t, trace.step_s
        self.cap = float(np.max(self.y)) / 50.0
        self.lead = math.ceil(case.lead_s / self.step - 1e-9)  # samples before a decision's nodes are ready
        self.first = max(first, start_index(trace))
        self.allowed = case.allowed_pct
        orders = reference.oracle(self.t, self.y, self.cap, case.lead_s)
        at = np.searchsorted([t for t, _ in orders], self.t, side="right") - 1
        self.oracle_nodes = float(np.sum(np.array([c for _, c in orders])[at][self.first :]))

    def _nodes(self, capacity: FloatArray) -> FloatArray:
        return np.ceil(np.maximum(capacity[self.first :], 0.0) / self.cap - 1e-9)

    def unserved_pct(self, capacity: FloatArray) -> float:
        y = self.y[self.first :]
        return float(np.sum(np.maximum(y - self._nodes(capacity) * self.cap, 0.0)) / np.sum(y) * 100.0)

    def cost(self, capacity: FloatArray) -> float:
        return float(np.sum(self._nodes(capacity))) / self.oracle_nodes

    def scaled(self, base: FloatArray) -> float:
        """Cost of ``k × base`` with the smallest k that meets the allowed unserved share (bisection)."""
        lo, hi = 0.0, 1.0
        while self.unserved_pct(hi * base) > self.allowed:
            lo, hi = hi, hi * 2
            if hi > 1e6:
                return math.inf
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.unserved_pct(mid * base) > self.allowed else (lo, mid)
        return self.cost(hi * base)

    def seen(self, values: FloatArray) -> FloatArray:
        """``values`` as known when the nodes for each sample had to be asked for (a lead time earlier)."""
        out = np.full(values.shape[0], np.nan)
        out[self.lead :] = values[: values.shape[0] - self.lead]
        return np.nan_to_num(out)


def trailing(y: FloatArray, k: int, stat: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """``stat`` of the last ``k`` samples at each index (fewer at the start)."""
    padded = np.concatenate((np.full(k - 1, np.nan), y))
    win = sliding_window_view(padded, k)
    with np.errstate(all="ignore"):
        filled = np.where(np.isnan(win), np.nanmean(win, axis=1, keepdims=True), win)
    return np.nan_to_num(stat(filled))


def hour_profile(s: Scorer) -> float:
    if s.t[-1] - s.t[0] < 2 * 86400:
        return math.nan  # one hour of traffic has no daily profile
    hour = ((s.t % 86400) // 3600).astype(np.int64)
    means = np.array([np.mean(s.y[hour == h]) if np.any(hour == h) else 0.0 for h in range(24)])
    return s.scaled(means[hour])


def linear_model(s: Scorer) -> float:
    from sklearn.linear_model import LinearRegression

    if s.t[-1] - s.t[0] < 2 * 86400:
        return math.nan
    eps = 1e-3 * float(np.mean(s.y))
    logy = np.log(s.y + eps)
    day = round(86400 / s.step)
    cols = [s.seen(np.roll(logy, k)) for k in range(12)]
    cols += [s.seen(np.log(trailing(s.y, k, f) + eps)) for k in (12, 36, 288) for f in (STATS["mean"], STATS["peak"])]
    tod = 2 * np.pi * (s.t % 86400) / 86400
    cols += [f(j * tod) for j in (1, 2, 3) for f in (np.sin, np.cos)]
    cols += [np.roll(logy, day + d) for d in (-s.lead, 0, s.lead)]
    x = np.column_stack(cols)
    start = day + s.lead + 12  # every lag filled: the model is scored (and the oracle counted) from here
    fit = LinearRegression().fit(x[start:], logy[start:])
    return Scorer(s.case, s.trace, first=start).scaled(np.exp(fit.predict(x)))


def trailing_rule(s: Scorer) -> tuple[float, str]:
    best = (math.inf, "")
    for k in WINDOWS:
        if k > s.y.shape[0] // 2:
            continue
        for name, stat in STATS.items():
            cost = s.scaled(s.seen(trailing(s.y, k, stat)))
            if cost < best[0]:
                best = (cost, f"{name} of {k}")
    return best


def guard_and_window(s: Scorer, window_s: float) -> tuple[float, float]:
    held = s.seen(trailing(s.y, max(1, round(window_s / s.step)), STATS["peak"]))
    return s.cost(held), s.unserved_pct(held)


def constant(s: Scorer) -> float:
    return s.scaled(np.ones_like(s.y))


def main() -> None:
    import tempfile

    console = Console(width=150)
    with tempfile.TemporaryDirectory() as d:
        conv, code = Path(d) / "azure_conv_1min.csv", Path(d) / "azure_code_1min.csv"
        _aggregate(TRACES / "azure_llm_inference_2023_conv_1s.csv", conv, 60)
        _aggregate(TRACES / "azure_llm_inference_2023_code_1s.csv", code, 60)
        cases = [
            Case("NASA July 1995, 5 min", TRACES / "nasa_http_1995_jul_5min.csv", 600, 3600, 0.8, 1.20),
            Case("AWS ELB 2014, 5 min", TRACES / "aws_elb_request_count_8c0756_5min.csv", 600, 3600, 0.8, 2.1),
            Case("Azure LLM conv, 1 h at 1 min", conv, 120, 900, 1.0, 1.6),
            Case("Azure LLM code, 1 h at 1 min", code, 120, 900, 1.0, 1.6),
        ]
        table = Table(title="cost × oracle at the unserved share each bar allows (references plan every sample)")
        for col in (
            "trace",
            "bar",
            "unserved ≤",
            "constant (hindsight)",
            "hour-of-day profile (hindsight)",
            "linear model (hindsight)",
            "best trailing rule (k in hindsight)",
            "guard + window, no forecast (unserved)",
        ):
            table.add_column(col, justify="left" if col == "trace" else "right")
        for case in cases:
            s = Scorer(case, load_trace(case.path))
            rule, which = trailing_rule(s)
            held, left = guard_and_window(s, case.window_s)

            def fmt(v: float) -> str:
                return "—" if math.isnan(v) else f"{v:.2f}"

            table.add_row(
                case.label,
                f"{case.bar:.2f}",
                f"{case.allowed_pct:.1f} %",
                fmt(constant(s)),
                fmt(hour_profile(s)),
                fmt(linear_model(s)),
                f"{rule:.2f} ({which})",
                f"{held:.2f} ({left:.2f} %)",
            )
        console.print(table)


if __name__ == "__main__":
    main()
