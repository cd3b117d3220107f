"""`forescale backtest --plot`: demand, ready capacity of forescale vs reactive, under-capacity spans."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


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


def plot_backtest(
    path: Path,
    title: str,
    t: FloatArray,
    demand: FloatArray,
    step_s: float,
    capacity_per_node: float,
    ready: dict[str, FloatArray],
) -> None:
    """Write a PNG: demand (req/s), each policy's ready capacity, and forescale's under-capacity spans shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def num(x: float) -> float:
        return float(mdates.date2num(datetime.fromtimestamp(x, UTC)))

    when = np.array([num(float(x)) for x in t])
    fig, ax = plt.subplots(figsize=(14, 5), dpi=110)
    ax.plot(when, demand, color="0.35", lw=0.7, label="demand (req/s)")
    colors = {"forescale": "tab:blue", "reactive": "tab:orange", "oracle": "tab:green"}
    for name, counts in ready.items():
        ax.step(
            when,
            counts * capacity_per_node,
            where="post",
            lw=1.0,
            color=colors.get(name),
            label=f"{name} ready capacity",
        )
    if "forescale" in ready:
        short = demand > ready["forescale"] * capacity_per_node + 1e-9
        for i, (a, b) in enumerate(_spans(t, short, step_s)):
            ax.axvspan(
                num(a),
                num(b),
                color="red",
                alpha=0.25,
                lw=0,
                label="forescale under capacity" if i == 0 else None,
            )
    ax.set_title(title)
    ax.set_ylabel("req/s")
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
