"""CLI start-up: wall time of `forescale <command> --help` for every command, and of shell completion; then
`forescale plan` and `forescale tick` for 2 pools, start-up included.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 7] [--code DIR] [--no-help]

`plan`/`tick` run against a real Prometheus (Debian package, 127.0.0.1) backfilled with 15 days of 5-minute
traffic for 2 pools (benchmarks/scale.py's synthetic world) and the fake Nomad; each run is a fresh process, and
its own CPU seconds (``os.wait4``) are the figure (issue 23's bar: < 1.5 s). Whether scikit-learn was imported is
read from ``-X importtime``. ``--code DIR`` measures another checkout (its ``.venv``), e.g. main before a change.

Each command is started as a fresh process through the installed console script (what a user and shell
completion pay), several times; the table shows the median and the slowest run, against the 0.6 s target.
It also lists which heavy libraries each `--help` imported: none of forescale's own (numpy, scikit-learn,
slack-sdk, python-nomad, APScheduler …: commands import them when they run); pydantic is imported by Typer
itself (typer._adapters) for every subcommand's parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
FORESCALE = ROOT / ".venv" / "bin" / "forescale"
TARGET_S = 0.6
RUN_TARGET_S = 1.5  # `plan`/`tick` for 2 pools, start-up included (issue 23)
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


def own_usage(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, str, str]:
    """(wall s, CPU s of that process alone, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped above
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, out.read().decode(), err.read().decode()


def run_commands(code: Path, runs: int) -> None:
    """`plan` and `tick` for 2 pools against a real Prometheus and the fake Nomad (see the module docstring)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    import scale

    from tests.fakes.nomad import FakeNomad
    from tests.fixtures.prometheus_server import binaries_missing, counter_from_counts, running_prometheus

    console = Console(width=170)
    if binaries_missing():
        console.print("[red]prometheus/promtool not found: install the Debian 'prometheus' package[/red]")
        return
    start = (time.time() // 60) * 60
    rng = np.random.default_rng(23)
    series = []
    for i in range(2):
        starts, per = scale.synthetic_counts(i, start + scale.AHEAD_S - 15 * scale.DAY, start + scale.AHEAD_S, rng)
        series.append(counter_from_counts({"pool": f"p{i}"}, starts, per, scale.STEP_S, scale.STEP_S))
    python, forescale = code / ".venv" / "bin" / "python", code / ".venv" / "bin" / "forescale"
    table = Table(title=f"`plan` and `tick` for 2 pools, {runs} runs each, start-up included ({code})")
    for col in ("command", "wall median s", "CPU median s", "CPU max s", "scikit-learn imported", "target (CPU)"):
        table.add_column(col, justify="left" if col in ("command", "scikit-learn imported") else "right")
    with tempfile.TemporaryDirectory(prefix="forescale-cli-") as tmp, running_prometheus(series, Path(tmp)) as prom:
        fake = FakeNomad().start()
        try:
            for i in range(2):
                fake.add_job(f"ml-p{i}", groups={"workers": 3}, alloc_status="running")
            config = Path(tmp) / "forescale.yaml"
            scale.write_config(config, 2, prom.url, fake.address, Path(tmp) / "audit.jsonl", None)
            for command in ("plan", "tick"):
                argv = [str(forescale), command, "-c", str(config), "--json"]
                times = [own_usage(argv, code)[:2] for _ in range(runs)]
                probe = [str(python), "-X", "importtime", "-m", "autoscaler", command, "-c", str(config), "--json"]
                _, _, out, err = own_usage(probe, code)
                decided = sum(1 for p in json.loads(out)["pools"] if p["decision"] is not None)
                cpu = statistics.median(c for _, c in times)
                ok = "[green]met[/]" if cpu < RUN_TARGET_S else "[red]missed[/]"
                table.add_row(
                    f"forescale {command} (2 pools, {decided} decided)",
                    f"{statistics.median(w for w, _ in times):.3f}",
                    f"{cpu:.3f}",
                    f"{max(c for _, c in times):.3f}",
                    "yes" if re.search(r"\|\s+sklearn$", err, re.MULTILINE) else "no",
                    ok,
                )
        finally:
            fake.stop()
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose plan/tick are measured")
    parser.add_argument("--no-help", action="store_true", help="only plan/tick, not every --help")
    parser.add_argument("--no-run", action="store_true", help="only every --help, not plan/tick")
    args = parser.parse_args()
    if not args.no_help:
        help_startup(args.runs)
    if not args.no_run:
        run_commands(args.code.resolve(), args.runs)


def help_startup(runs_each: int) -> None:
    """Every command's --help and shell completion (the first table)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_FORESCALE_COMPLETE")}
    load_before = os.getloadavg()[0]
    rows = []
    for path in commands():
        runs = [timed([str(FORESCALE), *path, "--help"], env) for _ in range(runs_each)]
        rows.append((" ".join(["forescale", *path, "--help"]), runs, heavy_imports(path)))
    completion = env | {"_FORESCALE_COMPLETE": "complete_bash", "COMP_WORDS": "forescale override s", "COMP_CWORD": "2"}
    runs = [timed([str(FORESCALE)], completion) for _ in range(runs_each)]
    rows.append(("<TAB> completion of `forescale override s`", runs, []))

    table = Table(title=f"forescale start-up, {runs_each} runs each (target < {TARGET_S} s)")
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
