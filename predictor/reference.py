"""Reference policies of the backtest: the counts other autoscalers would ask for.

Each policy turns a trace into the ``(time, count)`` requests it makes (causally, except the oracle and
static peak, which are hindsight floors by definition). The backtest applies them to the same simulated
cluster forescale is replayed against (``autoscaler.targets.simulated``), so every policy warms up and
scales in by identical rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from autoscaler.core.series import RateSeries
from predictor.capacity import nodes_for
from predictor.linear import LinearTrendPredictor

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

REACTIVE_TARGET = 0.8  # nomad-autoscaler target-value / HPA style utilisation target
REACTIVE_COOLDOWN_S = 300.0
TREND_WINDOW_S = 1800.0


def _changes_only(times: FloatArray, counts: Sequence[int]) -> list[tuple[float, int]]:
    """Requests as (time, count) keeping the first one and every change (holds are not requests)."""
    out: list[tuple[float, int]] = []
    for ti, c in zip(times, counts, strict=True):
        if not out or out[-1][1] != c:
            out.append((float(ti), int(c)))
    return out


def oracle(t: FloatArray, rps: FloatArray, capacity: float, lead_s: float) -> list[tuple[float, int]]:
    """Perfect foresight: at each step ask for the most nodes (at 100 %) any step needs from now up to
    and including the first step that starts once a node asked now is ready (t + lead).

    That is the cheapest schedule with nothing unserved: a node needed at s must be asked for by the
    last step at or before s - lead and kept until s (re-adding it after a dip would cost a warm-up).
    """
    need = np.array([nodes_for(r, capacity) for r in rps], dtype=np.int64)
    last = np.minimum(np.searchsorted(t, t + lead_s - 1e-9, side="left"), t.shape[0] - 1)
    counts = [int(need[i : last[i] + 1].max()) for i in range(t.shape[0])]
    return _changes_only(t, counts)


def static_peak(t: FloatArray, rps: FloatArray, capacity: float) -> list[tuple[float, int]]:
    """Enough nodes for the trace's highest rate, all the time (hindsight)."""
    return [(float(t[0]), nodes_for(float(np.max(rps)), capacity))]


def reactive(
    t: FloatArray,
    rps: FloatArray,
    start: int,
    capacity: float,
    target: float = REACTIVE_TARGET,
    cooldown_s: float = REACTIVE_COOLDOWN_S,
) -> list[tuple[float, int]]:
    """Target tracking at every trace step from ``start``: ceil(rate / (capacity × target)), where rate
    is the latest interval finished by then; no change within ``cooldown_s`` of the previous one."""
    out: list[tuple[float, int]] = []
    last_change = -math.inf
    for i in range(max(start, 1), t.shape[0]):
        ti = float(t[i])
        want = nodes_for(float(rps[i - 1]), capacity, target)
        if not out:
            out.append((ti, want))
        elif want != out[-1][1] and ti - last_change >= cooldown_s - 1e-9:
            out.append((ti, want))
            last_change = ti
    return out


def trend_lr(
    series: RateSeries,
    t: FloatArray,
    capacity: float,
    lead_s: float,
    interval_s: float,
    target: float = REACTIVE_TARGET,
    window_s: float = TREND_WINDOW_S,
) -> list[tuple[float, int]]:
    """The case study's model alone: every interval, a line over the last 30 min, peak over lead + interval."""
    model = LinearTrendPredictor(window_s=window_s)
    out: list[tuple[float, int]] = []
    next_tick = float(t[0])
    for ti in t:
        now = float(ti)
        if now < next_tick:
            continue
        while next_tick <= now:
            next_tick += interval_s
        try:
            fc = model.forecast(series, now, lead_s + interval_s)
        except ValueError:
            continue
        want = nodes_for(fc.peak_rps, capacity, target)
        if not out or out[-1][1] != want:
            out.append((now, want))
    return out
