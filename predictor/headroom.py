"""Headroom from the model's own errors, chosen so that a stated SLO (unserved %) is met on history.

A forecast ``P`` becomes a capacity ``max(m × P, floor)``. Both knobs are picked on the history available
at decision time: for each candidate floor, the smallest multiplier ``m`` whose *replayed* unserved share
(requests above capacity / all requests, the SLO's own definition) stays within the budget; then the pair
with the lowest total capacity wins. A diurnal trace ends up with a multiplier and no floor; a bursty one
learns a floor from its bursts, because only standing capacity serves a burst shorter than the lead time.

When the caller passes the traffic level at each decision, the floor is a multiple of it (``r × level``):
bursts scale with traffic, so a floor learned last week neither lags growth nor outstays a decline.

The replay credits what the rest of the policy provides without any headroom (``cover``: the capacity the
observed rate and the fast guard add once their nodes are ready), so headroom is only bought for what
nothing else serves. Errors that no candidate can serve (even the largest multiplier and the largest floor
miss them) do not use up the budget: they would otherwise force the most expensive headroom for nothing.
The floor never exceeds ``floor_cap`` (the recent peak): standing capacity above the highest rate of the
last week serves nothing that history shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Candidate floors: quantiles of the demand seen in the history (0 = no floor).
_FLOOR_QUANTILES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995)
_MAX_MULTIPLIER = 50.0
# Never plan below the forecast itself: it is the model's central estimate, headroom only adds.
_MIN_MULTIPLIER = 1.0
_CAP = float("inf")  # the candidate "floor at the cap" (the recent peak)
# The budget must hold for the replayed unserved plus one standard error of it (a conventional one-sigma
# bound): the estimate from a few rare events is uncertain, and the headroom pays for that uncertainty.
_Z = 1.0


@dataclass(frozen=True)
class Headroom:
    """``capacity = max(multiplier × forecast, floor_rps)``; ``unserved_pct`` is its score on history.

    ``floor_ratio`` is the floor as a multiple of the traffic level (0 when the floor is absolute or
    none; ``inf`` when the floor is the cap); ``at_level`` turns it into ``floor_rps`` for the level and
    cap at decision time.
    """

    multiplier: float
    floor_rps: float
    unserved_pct: float
    samples: int
    floor_ratio: float = 0.0

    def apply(self, forecast_rps: float) -> float:
        return max(self.multiplier * forecast_rps, self.floor_rps)

    def at_level(self, level_rps: float, cap_rps: float = _CAP) -> Headroom:
        """The same headroom with its floor scaled to ``level_rps`` and at most ``cap_rps``."""
        if self.floor_ratio == _CAP:  # "the floor is the cap": the cap now (or the one it was learned with)
            floor = cap_rps if math.isfinite(cap_rps) else self.floor_rps
        elif self.floor_ratio > 0:
            floor = self.floor_ratio * max(level_rps, 0.0)
        else:
            floor = self.floor_rps
        return replace(self, floor_rps=min(floor, cap_rps))


def unserved_share(capacity: FloatArray, demand: FloatArray, weight: FloatArray | None = None) -> float:
    """Share of ``demand`` (rows × window) above the row's ``capacity``: the SLO metric, replayed."""
    w = np.ones(demand.shape[0]) if weight is None else weight
    total = float(np.sum(demand * w[:, None]))
    if total <= 0:
        return 0.0
    return float(np.sum(np.maximum(demand - capacity[:, None], 0.0) * w[:, None])) / total


class _Search:
    """The replay of one candidate floor: unserved(m) over the cells the multiplier can still matter for.

    With ``block`` (a block id per row: rows within one horizon of each other share errors), the score is
    the weighted unserved plus ``_Z`` standard errors of it (the ratio estimator's linearisation over
    blocks): the same share costs more headroom when it comes from a few rare events than from steady noise.
    """

    def __init__(
        self,
        forecast: FloatArray,
        floor: FloatArray,
        demand: FloatArray,
        cover: FloatArray,
        weight: FloatArray,
        block: NDArray[np.int64] | None = None,
    ) -> None:
        base = np.maximum(np.maximum(_MIN_MULTIPLIER * forecast, floor)[:, None], cover)
        # Only cells above the floor, the cover and the bare forecast can ever be unserved (m ≥ 1):
        # usually a small fraction of the history.
        rows, cols = np.nonzero(demand > base)
        self.d = demand[rows, cols]
        self.p = forecast[rows]
        self.base = np.maximum(floor[rows], cover[rows, cols])
        self.w = weight[rows]
        self.block = block
        if block is not None:
            self.cell_block = block[rows]
            self.n_blocks = int(block.max()) + 1
            self.wd = np.bincount(block, weights=weight * demand.sum(axis=1), minlength=self.n_blocks)
            self.total = float(self.wd.sum())

    def unserved(self, m: float) -> float:
        short = self.w * np.maximum(self.d - np.maximum(m * self.p, self.base), 0.0)
        s = float(np.sum(short))
        if self.block is None or self.total <= 0:
            return s
        per_block = np.bincount(self.cell_block, weights=short, minlength=self.n_blocks)
        spread = float(np.sqrt(np.sum((per_block - s / self.total * self.wd) ** 2)))
        return s + _Z * spread

    def smallest_multiplier(self, allowed: float) -> float | None:
        """Bisection on m (the unserved share is non-increasing in m); None when even the largest misses."""
        if self.unserved(_MIN_MULTIPLIER) <= allowed:
            return _MIN_MULTIPLIER
        if self.unserved(_MAX_MULTIPLIER) > allowed:
            return None
        lo, hi = _MIN_MULTIPLIER, _MIN_MULTIPLIER * 2
        while self.unserved(hi) > allowed:  # bracket from below: typical multipliers are small
            lo, hi = hi, min(hi * 2, _MAX_MULTIPLIER)
        for _ in range(12):  # 1/4096 of the bracket: far finer than one node
            mid = 0.5 * (lo + hi)
            if self.unserved(mid) <= allowed:
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
    cover: FloatArray | None = None,
    floor_cap: FloatArray | None = None,
    block: NDArray[np.int64] | None = None,
) -> Headroom:
    """Cheapest ``(multiplier, floor)`` whose replay on history leaves at most ``budget_pct`` % unserved.

    ``forecast[i]`` is what the model predicted at a past decision time; ``demand[i]`` holds the rates
    actually seen over that decision's horizon (NaN = not observed, ignored); ``weight[i]`` (default 1)
    lets recent decisions count more, in the budget and in the cost. With ``level[i]`` (the traffic level
    at that decision, > 0) the candidate floors are ratios to it (``floor_i = r × level[i]``) and the result
    carries ``floor_ratio``; call ``at_level`` with the current level. Without it, floors are absolute.
    ``cover[i, j]`` (same shape as ``demand``) is capacity the policy has in that cell without headroom;
    ``floor_cap[i]`` bounds the floor of row ``i`` (and adds the candidate "floor = cap"). With ``block[i]``
    (rows sharing errors share a block id, 0 … k-1), the budget must hold with one standard error to spare.
    """
    if forecast.ndim != 1 or demand.ndim != 2 or demand.shape[0] != forecast.shape[0]:
        raise ValueError("forecast must be (n,) and demand (n, window)")
    demand = np.where(np.isfinite(demand), demand, 0.0)
    forecast = np.maximum(forecast, 0.0)
    weight = np.ones_like(forecast) if weight is None else np.maximum(weight, 0.0)
    if cover is None:
        cover = np.zeros_like(demand)
    elif cover.shape != demand.shape:
        raise ValueError("cover must have demand's shape")
    else:
        cover = np.where(np.isfinite(cover), cover, 0.0)
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
    cap = np.full(n, _CAP) if floor_cap is None else np.where(np.isfinite(floor_cap), floor_cap, _CAP)
    relative = demand / scale[:, None]
    positive = relative[demand > 0]
    ratios = sorted({0.0, *(float(v) for v in np.quantile(positive, _FLOOR_QUANTILES[1:]))})
    if floor_cap is not None:
        ratios.append(_CAP)

    def floor_of(ratio: float) -> FloatArray:
        return cap if ratio == _CAP else np.minimum(ratio * scale, cap)

    total = float(np.sum(demand * weight[:, None]))
    # What no candidate serves (the largest multiplier over the largest floor) is not charged to the budget.
    top_floor = floor_of(_CAP if floor_cap is not None else max(ratios))
    unavoidable = _Search(forecast, top_floor, demand, cover, weight, block).unserved(_MAX_MULTIPLIER)
    allowed = budget * total + unavoidable
    best: tuple[float, float, float] | None = None  # (cost, m, floor ratio)
    for ratio in ratios:
        floor = floor_of(ratio)
        m = _Search(forecast, floor, demand, cover, weight, block).smallest_multiplier(allowed * (1 + 1e-9))
        if m is None:
            continue
        cost = float(np.sum(weight * np.maximum(m * forecast, floor)))
        if best is None or cost < best[0] - 1e-9:
            best = (cost, m, ratio)
    if best is None:  # only float noise can get here: the top candidate meets `allowed` by construction
        best = (0.0, _MAX_MULTIPLIER, ratios[-1])
    _, m, ratio = best
    capacity = np.maximum(np.maximum(m * forecast, floor_of(ratio))[:, None], cover)
    score = float(np.sum(np.maximum(demand - capacity, 0.0) * weight[:, None])) / total * 100.0 if total else 0.0
    if level is None:
        floor_rps = float(floor_of(ratio)[-1])
        return Headroom(m, floor_rps, score, n, floor_ratio=_CAP if ratio == _CAP else 0.0)
    return Headroom(m, float(floor_of(ratio)[-1]), score, n, floor_ratio=ratio)
