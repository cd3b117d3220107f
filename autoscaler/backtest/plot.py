"""`forescale backtest --plot`: nodes over time — demand in nodes, what forescale asked for and had ready,
the reactive reference, under-capacity spans shaded, and marks where a schedule floor, a manual pin or the
guard shaped a decision. ``--from/--to`` zoom into a window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autoscaler.backtest.replay import Mark

FloatArray = NDArray[np.float64]

# How each kind of ``Mark`` is drawn: (label, matplotlib marker, colour).
MARK_STYLE = {
    "guard": ("guard scale-up", "^", "tab:red"),
    "schedule_floor": ("schedule floor", "s", "tab:purple"),
    "manual_pin": ("manual pin", "D", "black"),
}


def _spans(t: FloatArray, mask: NDArray[np.bool_], step_s: float) -> list[tuple[float, float]]:
    """Contiguous runs of ``mask`` as (start, end) UNIX times."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for ti, m in zip(t, mask, strict=True):
        if m and start is None:
            start = float(ti)
        elif not m and start is not None:
            out.append((start, float(ti)))
            start = None
    if start is not None:
        out.append((start, float(t[-1]) + step_s))
    return out


def window_mask(t: FloatArray, start: float | None, end: float | None) -> NDArray[np.bool_]:
    """Steps inside [start, end) (either bound optional)."""
    keep = np.ones(t.shape[0], dtype=bool)
    if start is not None:
        keep &= t >= start
    if end is not None:
        keep &= t < end
    return keep


def plot_backtest(
    path: Path,
    title: str,
    t: FloatArray,
    demand: FloatArray,
    step_s: float,
    capacity_per_node: float,
    ready: dict[str, FloatArray],
    provisioned: FloatArray | None = None,
    marks: Sequence[Mark] = (),
    start: float | None = None,
    end: float | None = None,
) -> None:
    """Write a PNG in nodes (req/s on the right axis): demand ÷ capacity per node, each policy's ready
    nodes, forescale's provisioned nodes (ready + warming), forescale's under-capacity spans shaded,
    and ``marks``; only the steps in [start, end) when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    keep = window_mask(t, start, end)
    t, demand = t[keep], demand[keep]
    ready = {name: counts[keep] for name, counts in ready.items()}
    if provisioned is not None:
        provisioned = provisioned[keep]
    lo, hi = (float(t[0]), float(t[-1]) + step_s) if t.shape[0] else (0.0, 0.0)
    marks = [m for m in marks if lo <= m.t < hi]

    def num(x: float) -> float:
        return float(mdates.date2num(datetime.fromtimestamp(x, UTC)))

    when = np.array([num(float(x)) for x in t])
    fig, ax = plt.subplots(figsize=(14, 5.5), dpi=110)
    ax.plot(when, demand / capacity_per_node, color="0.35", lw=0.7, label="demand (nodes' worth)")
    if provisioned is not None:
        ax.fill_between(
            when,
            provisioned,
            step="post",
            color="tab:blue",
            alpha=0.12,
            lw=0,
            label="forescale asked (ready + warming)",
        )
    colors = {"forescale": "tab:blue", "reactive": "tab:orange", "oracle": "tab:green"}
    for name, counts in ready.items():
        width = 1.1 if name == "forescale" else 0.8
        ax.step(when, counts, where="post", lw=width, color=colors.get(name), label=f"{name} ready nodes")
    if "forescale" in ready:
        short = demand > ready["forescale"] * capacity_per_node + 1e-9
        for i, (a, b) in enumerate(_spans(t, short, step_s)):
            ax.axvspan(
                num(a), num(b), color="red", alpha=0.25, lw=0, label="forescale under capacity" if i == 0 else None
            )
    for kind, (label, marker, color) in MARK_STYLE.items():
        mine = [m for m in marks if m.kind == kind]
        if mine:
            ax.scatter(
                [num(m.t) for m in mine],
                [m.count for m in mine],
                marker=marker,
                s=28,
                color=color,
                zorder=5,
                label=f"{label} ({len(mine)})",
            )
    ax.set_title(title)
    ax.set_ylabel("nodes")
    ax.set_ylim(bottom=0)

    def to_rps(nodes: ArrayLike) -> FloatArray:
        return np.asarray(nodes, dtype=np.float64) * capacity_per_node

    def to_nodes(rate: ArrayLike) -> FloatArray:
        return np.asarray(rate, dtype=np.float64) / capacity_per_node

    rps = ax.secondary_yaxis("right", functions=(to_rps, to_nodes))
    rps.set_ylabel("req/s")
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.legend(loc="upper left", fontsize=8, ncols=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
