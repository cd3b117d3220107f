"""CLI start-up: wall time of `forescale <command> --help` for every command, and of shell completion.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 7]

Each command is started as a fresh process through the installed console script (what a user and shell
completion pay), several times; the table shows the median and the slowest run, against the 0.6 s target.
It also lists which heavy libraries each `--help` imported: none of forescale's own (numpy, scikit-learn,
slack-sdk, python-nomad, APScheduler …: commands import them when they run); pydantic is imported by Typer
itself (typer._adapters) for every subcommand's parameters.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
FORESCALE = ROOT / ".venv" / "bin" / "forescale"
TARGET_S = 0.6
HEAVY = ("numpy", "sklearn", "scipy", "pydantic", "yaml", "slack_sdk", "nomad", "apscheduler", "matplotlib", "requests")


def commands() -> list[list[str]]:
    """Every command path of the Typer app, from the app itself (so a new command is measured too)."""
    import typer.main

    from autoscaler.cli.main import app

    group = typer.main.get_command(app)
    out: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if not subs:
            out.append(path)
            return
        for name, sub in sorted(subs.items()):
            walk(sub, [*path, name])

    walk(group, [])
    return out


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s): CPU time is what the start-up costs on an idle core; wall time adds the machine's load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy_imports(path: list[str]) -> list[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['forescale', *{path!r}, '--help']\n"
        "try:\n    runpy.run_module('autoscaler', run_name='__main__')\nexcept BaseException:\n    pass\n"
        f"print('HEAVY:' + ','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    marked = [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")] or ["HEAVY:?"]
    return [m for m in marked[-1].removeprefix("HEAVY:").split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("_FORESCALE_COMPLETE")}
    load_before = os.getloadavg()[0]
    rows = []
    for path in commands():
        runs = [timed([str(FORESCALE), *path, "--help"], env) for _ in range(args.runs)]
        rows.append((" ".join(["forescale", *path, "--help"]), runs, heavy_imports(path)))
    completion = env | {"_FORESCALE_COMPLETE": "complete_bash", "COMP_WORDS": "forescale override s", "COMP_CWORD": "2"}
    runs = [timed([str(FORESCALE)], completion) for _ in range(args.runs)]
    rows.append(("<TAB> completion of `forescale override s`", runs, []))

    table = Table(title=f"forescale start-up, {args.runs} runs each (target < {TARGET_S} s)")
    for col in ("command", "wall median s", "wall max s", "CPU median s", "heavy imports", "target (CPU)"):
        table.add_column(col, justify="left" if col in ("command", "heavy imports") else "right")
    worst_wall = worst_cpu = 0.0
    for name, runs, heavy in rows:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        worst_wall, worst_cpu = max(worst_wall, wall), max(worst_cpu, cpu)
        ok = "[green]met[/]" if cpu < TARGET_S else "[red]missed[/]"
        table.add_row(name, f"{wall:.3f}", f"{max(w for w, _ in runs):.3f}", f"{cpu:.3f}", ", ".join(heavy) or "—", ok)
    console = Console(width=170)
    console.print(table)
    console.print(
        f"slowest median: {worst_wall:.3f} s wall, {worst_cpu:.3f} s CPU; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (wall time = CPU time on an idle machine; other processes add to it)"
    )


if __name__ == "__main__":
    main()
