"""What forescale's structure costs by itself: the best causal family squeezed into its tick, guard and window.

Run: .venv/bin/python benchmarks/structure.py [case keys…]   (a few minutes on 2 cores)

The families of benchmarks/families.py decide every sample and scale in at once. forescale scales in only at
its ticks (every 20 minutes; 5 at the Azure 1-minute setting), never below the highest need of its scale-in
window (three ticks), at most 25 % of the count per tick and not within a tick of a change; between ticks its
guard only raises the count, to what the latest sample needs. This script gives that structure a perfect
knob: at each tick the need is k × the peak of the last horizon (or k × the last sample), the guard asks for
g × the latest sample, and k is tuned in hindsight to just meet the SLO (g = 1, the bare rate, or g = k). The
gap between its cost and the best family's is what the structure costs, before any forecast error or SLO
margin: a ratio to the best family that forescale cannot beat without changing the structure.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import DURATION_S, Case, best_causal, cases, scorer_for
from families import Family, IntArray, Scorer, tune

SLO = 1.0


def structured(s: Scorer, k: float, guard_k: float | None, tick_s: float, window_s: float, look_s: float) -> IntArray:
    """forescale's structure with a perfect knob (module docstring); ``guard_k`` None: the guard scales by k."""
    peak, last = s.trailing(look_s, "peak"), s.trailing(0.0, "peak")
    g = k if guard_k is None else guard_k
    out = np.empty(s.tr.shape[0], dtype=np.int64)
    current, next_tick, last_change = -1, float(s.tr[0]), -math.inf
    needs: list[tuple[float, int]] = []
    for i, t in enumerate(s.tr):
        if t >= next_tick:
            while next_tick <= t:
                next_tick += tick_s
            need = max(math.ceil(k * peak[i] / s.cap - 1e-9), math.ceil(last[i] / s.cap - 1e-9))
            if current < 0 or need > current:
                current, last_change = max(need, 0), float(t)
            elif need < current and t - last_change >= tick_s - 1e-9:
                held = max([n for at, n in needs if t - at < window_s - 1e-9] + [need])
                wanted = max(min(held, current), current - math.ceil(0.25 * current))
                if wanted < current:
                    current, last_change = wanted, float(t)
            needs.append((float(t), need))
        else:
            want = math.ceil(g * last[i] / s.cap - 1e-9)
            if want > current:
                current, last_change = want, float(t)
                needs.append((float(t), want))
        out[i] = current
    return out


def main() -> None:
    only = sys.argv[1:] or ["nasa", "elb", "code1m", "sports_events", "social_volume"]
    console = Console(width=150)
    table = Table(title="the best family inside forescale's structure (k tuned in hindsight to SLO ≤ 1 %)")
    for col in ("trace", "best family", "structure: g = 1", "structure: g = k", "tick need = k × last sample, g = k"):
        table.add_column(col, justify="left" if col == "trace" else "right")
    with tempfile.TemporaryDirectory() as d:
        for case in [c for c in cases(Path(d)) if c.key in only]:
            table.add_row(case.label, *measure(case))
    console.print(table)


def measure(case: Case) -> list[str]:
    s = scorer_for(case)
    best = best_causal(case, SLO, s).best
    tick_s = DURATION_S[case.interval]
    window_s, look_s = 3 * tick_s, DURATION_S[case.lead] + tick_s
    out = ["—" if best is None else f"{best.score.cost:.2f} ({best.family})"]
    for guard_k, look in ((1.0, look_s), (None, look_s), (None, 0.0)):
        fam = Family("s", lambda k, g=guard_k, w=look: structured(s, k, g, tick_s, window_s, w))
        got = tune(s, fam, SLO)
        ratio = "" if got is None or best is None else f" = {got[1].cost / best.score.cost:.2f} ×"
        out.append("—" if got is None else f"{got[1].cost:.2f}{ratio}")
    return out


if __name__ == "__main__":
    main()
