"""forescale against the best simple causal policy on every trace, and its cost–SLO curve.

Run: .venv/bin/python benchmarks/frontier.py                 (every case, SLO 0.5 / 0.8 / 1 / 2 %: about an hour
                                                              on 2 cores)
     .venv/bin/python benchmarks/frontier.py --levels 1 --only nasa,elb

For every case of ``benchmarks/cases.py`` (the bundled traces and the synthetic shapes of
``benchmarks/shapes.py``) and every SLO level: forescale with default settings through the real CLI
(``forescale backtest --slo-unserved-pct L``), its decisions re-scored by ``benchmarks/independent_sim.py``,
and the cheapest of the causal families of ``benchmarks/families.py`` with its knob tuned in hindsight to just
meet the same SLO (its decisions re-scored by the independent simulator too). The ratio is forescale's cost
over the best family's; forescale counts only where it meets the SLO it was given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import Case, Figures, Reference, best_causal, cases, run_forescale, scorer_for

LEVELS = (0.5, 0.8, 1.0, 2.0)


def measure(job: tuple[Case, tuple[float, ...], str]) -> tuple[Case, dict[float, tuple[Figures, Reference]]]:
    case, levels, tmp = job
    scorer = scorer_for(case)
    out = {}
    for level in levels:
        out[level] = (run_forescale(case, level, Path(tmp)), best_causal(case, level, scorer))
    return case, out


def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]missed[/]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(f"{v:g}" for v in LEVELS), help="SLO levels, % unserved")
    parser.add_argument("--only", default="", help="comma-separated case keys (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    levels = tuple(float(v) for v in args.levels.split(","))
    console = Console(width=180)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        order = [c for c in cases(tmp) if not args.only or c.key in args.only.split(",")]
        todo = sorted(order, key=lambda c: -c.path.stat().st_size)  # the longest first: both workers stay busy
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = dict(pool.map(measure, [(c, levels, d) for c in todo]))
    for level in levels:
        table = Table(title=f"SLO ≤ {level:g} % unserved: forescale (default settings) and the best causal reference")
        for col in ("trace", "forescale × oracle", "unserved %", "best causal × oracle", "family (k)", "ratio", "SLO"):
            table.add_column(col, justify="left" if col in ("trace", "family (k)") else "right")
        agree = True
        for case in order:
            fs, ref = results[case][level]
            agree &= fs.agree and ref.agree
            best = ref.best
            table.add_row(
                case.label,
                f"{fs.cost:.2f}",
                f"{fs.unserved_pct:.3f}",
                "—" if best is None else f"{best.score.cost:.2f}",
                "—" if best is None else f"{best.family} ({best.k:.3g})",
                "—" if best is None else f"{fs.cost / best.score.cost:.2f}",
                verdict(fs.unserved_pct <= level),
            )
        console.print(table)
        console.print(f"independent simulator agrees with every figure at {level:g} %: {verdict(agree)}")


if __name__ == "__main__":
    main()
