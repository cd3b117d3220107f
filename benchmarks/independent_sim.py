"""A tiny backtest simulator written apart from autoscaler/backtest/replay.py, to check its figures.

It reads a trace CSV and a ``--decisions-out`` CSV and applies DESIGN.md's semantics with its own
bookkeeping (ready count + a queue of warming batches), so a bug in replay.py cannot hide in both.
"""

from __future__ import annotations

import csv
import itertools
import math
from datetime import datetime
from pathlib import Path


def _read(path: Path, column: str) -> list[tuple[float, float]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            (datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")).timestamp(), float(row[column]))
            for row in csv.DictReader(fh)
        ]


def simulate(trace_csv: Path, decisions_csv: Path, capacity: float, lead_s: float) -> dict[str, float]:
    rows = _read(trace_csv, "requests")
    decisions = _read(decisions_csv, "desired")
    step = min(b[0] - a[0] for a, b in itertools.pairwise(rows))
    rows = [r for r in rows if r[0] >= decisions[0][0]]
    ready = 0
    warming: list[list[float]] = []  # [ready_at, count], oldest first
    node_seconds = short_seconds = unserved = total = 0.0
    actions = -1  # the first decision sets the initial fleet; it is not an action
    flips = 0
    last_change: tuple[float, bool] | None = None  # (time, went up) of the previous scale action
    k = 0
    for i, (t, requests) in enumerate(rows):
        while k < len(decisions) and decisions[k][0] <= t:
            want = int(decisions[k][1])
            have = ready + sum(c for _, c in warming)
            if k == 0:
                ready, warming = want, []
            elif want > have:
                warming.append([decisions[k][0] + lead_s, want - have])
            elif want < have:
                drop = have - want
                while drop and warming:  # newest warming batch first
                    take = min(drop, int(warming[-1][1]))
                    warming[-1][1] -= take
                    drop -= take
                    if warming[-1][1] == 0:
                        warming.pop()
                ready -= drop
            if k == 0 or want != have:
                actions += 1
            if k > 0 and want != have:
                up = want > have
                # A reversal: a change opposite to the previous change, strictly within 60 minutes of it.
                if last_change is not None and last_change[1] != up and decisions[k][0] - last_change[0] < 3600.0:
                    flips += 1
                last_change = (decisions[k][0], up)
            k += 1
        while warming and warming[0][0] <= t:
            ready += int(warming.pop(0)[1])
        provisioned = ready + sum(c for _, c in warming)
        span = (rows[i + 1][0] - t) if i + 1 < len(rows) else step
        node_seconds += provisioned * span
        rate = requests / step
        if rate > ready * capacity + 1e-9:
            short_seconds += step
            unserved += (rate - ready * capacity) * step
        total += requests
    observed = len(rows) * step
    days = (rows[-1][0] + step - rows[0][0]) / 86400.0
    return {
        "node_hours": node_seconds / 3600.0,
        "under_capacity_minutes": short_seconds / 60.0,
        "under_capacity_pct": 100.0 * short_seconds / observed,
        "unserved_pct": 100.0 * unserved / total if total else 0.0,
        "scale_actions": float(actions),
        "scale_actions_per_day": actions / days,
        "reversals_1h": float(flips),
    }


def close(a: float, b: float, abs_tol: float = 1e-3) -> bool:
    """Equal up to the replay's rounding of the --json figures (4 decimals; per-day rates: 2, abs_tol 0.01)."""
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=abs_tol)
