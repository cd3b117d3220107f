"""Headroom from the model's own errors, chosen so that a stated SLO (unserved %) is met on history.

A forecast ``P`` becomes a capacity ``max(m × P, floor)``. Both knobs are picked on the history available
at decision time: for each candidate floor, the smallest multiplier ``m`` whose *replayed* unserved share
(requests above capacity / all requests, the SLO's own definition) stays within the budget; then the pair
with the lowest total capacity wins. A diurnal trace ends up with a multiplier and no floor; a bursty one
learns a floor from its bursts, because only standing capacity serves a burst shorter than the lead time.

When the caller passes the traffic level at each decision, the floor is a multiple of it (``r × level``):
bursts scale with the traffic that carries them, so a floor learned last week neither lags growth nor
outstays a decline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Candidate floors: quantiles of the demand seen in the history (0 = no floor).
_FLOOR_QUANTILES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995)
_MAX_MULTIPLIER = 50.0
# Never plan below the forecast itself: it is the model's central estimate, headroom only adds.
_MIN_MULTIPLIER = 1.0


@dataclass(frozen=True)
class Headroom:
    """``capacity = max(multiplier × forecast, floor_rps)``; ``unserved_pct`` is its score on history.

    ``floor_ratio`` is the floor as a multiple of the traffic level (0 when the floor is absolute or
    none); ``at_level`` turns it into ``floor_rps`` for the level at decision time.
    """

    multiplier: float
    floor_rps: float
    unserved_pct: float
    samples: int
    floor_ratio: float = 0.0

    def apply(self, forecast_rps: float) -> float:
        return max(self.multiplier * forecast_rps, self.floor_rps)

    def at_level(self, level_rps: float) -> Headroom:
        """The same headroom with its floor scaled to ``level_rps`` (no-op for an absolute floor)."""
        if self.floor_ratio <= 0:
            return self
        return replace(self, floor_rps=self.floor_ratio * max(level_rps, 0.0))


def unserved_share(capacity: FloatArray, demand: FloatArray, weight: FloatArray | None = None) -> float:
    """Share of ``demand`` (rows × window) above the row's ``capacity``: the SLO metric, replayed."""
    w = np.ones(demand.shape[0]) if weight is None else weight
    total = float(np.sum(demand * w[:, None]))
    if total <= 0:
        return 0.0
    return float(np.sum(np.maximum(demand - capacity[:, None], 0.0) * w[:, None])) / total


def _smallest_multiplier(
    forecast: FloatArray, floor: FloatArray, demand: FloatArray, budget: float, weight: FloatArray
) -> float | None:
    """Bisection on m: the unserved share is non-increasing in m. None when even the largest m misses.

    Only cells above both the floor and the bare forecast can ever be unserved (m ≥ 1), so the search
    runs on those alone: usually a small fraction of the history.
    """
    allowed = budget * float(np.sum(demand * weight[:, None]))
    rows, cols = np.nonzero(demand > np.maximum(_MIN_MULTIPLIER * forecast, floor)[:, None])
    d = demand[rows, cols]
    p = forecast[rows]
    f = floor[rows]
    w = weight[rows]

    def unserved(m: float) -> float:
        return float(np.sum(w * np.maximum(d - np.maximum(m * p, f), 0.0)))

    if unserved(_MIN_MULTIPLIER) <= allowed:
        return _MIN_MULTIPLIER
    if unserved(_MAX_MULTIPLIER) > allowed:
        return None
    lo, hi = _MIN_MULTIPLIER, _MIN_MULTIPLIER * 2
    while unserved(hi) > allowed:  # bracket from below: typical multipliers are small
        lo, hi = hi, min(hi * 2, _MAX_MULTIPLIER)
    for _ in range(12):  # 1/4096 of the bracket: far finer than one node
        mid = 0.5 * (lo + hi)
        if unserved(mid) <= allowed:
            hi = mid
        else:
            lo = mid
    return hi


def calibrate(
    forecast: FloatArray,
    demand: FloatArray,
    budget_pct: float,
    weight: FloatArray | None = None,
    level: FloatArray | None = None,
) -> Headroom:
    """Cheapest ``(multiplier, floor)`` whose replay on history leaves at most ``budget_pct`` % unserved.

    ``forecast[i]`` is what the model predicted at a past decision time; ``demand[i]`` holds the rates
    actually seen over that decision's horizon (NaN = not observed, ignored); ``weight[i]`` (default 1)
    lets recent decisions count more, in the budget and in the cost. With ``level[i]`` (the traffic level
    at that decision, > 0) the candidate floors are ratios to it (``floor_i = r × level[i]``) and the result
    carries ``floor_ratio``; call ``at_level`` with the current level. Without it, floors are absolute.
    """
    if forecast.ndim != 1 or demand.ndim != 2 or demand.shape[0] != forecast.shape[0]:
        raise ValueError("forecast must be (n,) and demand (n, window)")
    demand = np.where(np.isfinite(demand), demand, 0.0)
    forecast = np.maximum(forecast, 0.0)
    weight = np.ones_like(forecast) if weight is None else np.maximum(weight, 0.0)
    budget = max(budget_pct, 0.0) / 100.0
    n = int(forecast.shape[0])
    if n == 0 or float(np.sum(demand)) <= 0:
        return Headroom(1.0, 0.0, 0.0, n)
    if level is None:
        scale = np.ones_like(forecast)
    else:
        if level.shape != forecast.shape:
            raise ValueError("level must be (n,) like forecast")
        scale = np.maximum(np.where(np.isfinite(level), level, 0.0), 0.0)
        scale = np.where(scale > 0, scale, max(float(np.mean(scale)), 1e-12))
    relative = demand / scale[:, None]
    positive = relative[demand > 0]
    ratios = sorted({0.0, *(float(v) for v in np.quantile(positive, _FLOOR_QUANTILES[1:]))})
    best: tuple[float, float, float] | None = None  # (cost, m, floor ratio)
    for ratio in ratios:
        m = _smallest_multiplier(forecast, ratio * scale, demand, budget, weight)
        if m is None:
            continue
        cost = float(np.sum(weight * np.maximum(m * forecast, ratio * scale)))
        if best is None or cost < best[0] - 1e-9:
            best = (cost, m, ratio)
    if best is None:  # nothing meets the budget: cover every (relative) demand ever seen
        best = (0.0, 1.0, float(np.max(relative)))
    _, m, ratio = best
    score = unserved_share(np.maximum(m * forecast, ratio * scale), demand, weight) * 100.0
    if level is None:
        return Headroom(m, ratio, score, n)
    return Headroom(m, ratio * float(scale[-1]), score, n, floor_ratio=ratio)
