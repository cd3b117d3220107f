"""Headroom from the model's own errors, chosen so that a stated SLO (unserved %) is met on history.

A forecast ``P`` becomes a capacity ``max(m × P, floor)``. Both knobs are picked on the history available
at decision time: for each candidate floor, the smallest multiplier ``m`` whose *replayed* unserved share
(requests above capacity / all requests, the SLO's own definition) stays within the budget; then the pair
with the lowest replayed capacity wins. A diurnal trace ends up with a multiplier and no floor; a bursty one
learns a floor from its bursts, because only standing capacity serves a burst shorter than the lead time.

When the caller passes the traffic level at each decision, the floor is a multiple of it (``r × level``):
bursts scale with traffic, so a floor learned last week neither lags growth nor outstays a decline.

The replay credits what the rest of the policy provides: ``cover`` is capacity it has without any headroom
(the tick's own observed rate once its nodes are ready), ``reaction`` is the fast guard's reaction to the
samples after the decision and ``ratchet`` the highest sample the scale-in window keeps (what the guard
raised stays for the window). The guard scales the rates it sees by a multiplier chosen here too: 1 (the
bare rate) or the tick's own ``m`` (the pool's headroom, whoever acts), whichever replays cheaper within the
budget — the cost of a candidate is the capacity of every replayed cell, so a guard that raises the fleet on
noise and holds it for the window pays for that, and one that serves fast persistent rises a sample after
they show saves standing headroom around the clock.

``floor_cap`` bounds the floor (the caller's recent need: the last day's peak), ``bound`` the tick's headroom
and ``guard_bound`` the guard's (a cold start's: the highest rate seen): headroom never lifts capacity above
them, unless the forecast or the observed rate itself is higher.

A queue-fed pool (``wait``) is scored on its own SLO instead: the share of requests that wait longer than
``wait.slo_s`` in a fluid FIFO queue served at the replayed capacity, cell after cell of each decision's horizon
(the backlog a short cell leaves is carried into the next; it starts empty at the decision). A shortfall too
small to make anyone wait past the SLO costs nothing; a long one costs every request behind it.

Errors that no candidate can serve (the largest multiplier over the largest floor) do not use up the budget:
they would otherwise force the most expensive headroom for nothing. With ``block`` (rows within one horizon
share an event) the budget must hold with one standard error to spare (``_Search.unserved``).
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
    """``capacity = min(max(multiplier × forecast, floor_rps), max(forecast, bound_rps))``; ``unserved_pct``
    is its score on history (with a ``WaitSLO``: the share of requests that waited past it).

    ``floor_ratio`` is the floor as a multiple of the traffic level (0 when the floor is absolute or
    none; ``inf`` when the floor is the cap); ``at_level`` turns it into ``floor_rps`` for the level and
    cap at decision time. ``bound_rps`` (inf: none) is the recent need headroom never plans past.
    """

    multiplier: float
    floor_rps: float
    unserved_pct: float
    samples: int
    floor_ratio: float = 0.0
    bound_rps: float = _CAP
    guard_multiplier: float = 1.0
    guard_bound_rps: float = _CAP

    def apply(self, forecast_rps: float) -> float:
        return min(max(self.multiplier * forecast_rps, self.floor_rps), max(forecast_rps, self.bound_rps))

    def guard(self, rate_rps: float) -> float:
        """What the guard asks for when it sees ``rate_rps``: the rate with the guard's headroom, bounded."""
        return min(self.guard_multiplier * rate_rps, max(rate_rps, self.guard_bound_rps))

    def at_level(self, level_rps: float, cap_rps: float = _CAP) -> Headroom:
        """The same headroom with its floor scaled to ``level_rps`` and at most ``cap_rps``; its bounds (a cold
        start's highest rate seen) stay the calibration's."""
        if self.floor_ratio == _CAP:  # "the floor is the cap": the cap now (or the one it was learned with)
            floor = cap_rps if math.isfinite(cap_rps) else self.floor_rps
        elif self.floor_ratio > 0:
            floor = self.floor_ratio * max(level_rps, 0.0)
        else:
            floor = self.floor_rps
        return replace(self, floor_rps=min(floor, cap_rps))


@dataclass(frozen=True)
class WaitSLO:
    """A queue-fed pool's SLO for the calibration: requests may wait ``slo_s`` seconds; cells are ``step_s`` long.

    ``lag`` (cells, 0: none) and ``drain_s``: the guard sees a backlog beyond the SLO and asks for its rate plus
    ``backlog ÷ drain_s``, ready ``lag`` cells later (``policy/queue.py``)."""

    slo_s: float
    step_s: float
    lag: int = 0
    drain_s: float = 600.0


def waiting_beyond(demand: FloatArray, capacity: FloatArray, wait: WaitSLO) -> FloatArray:
    """Requests (as rates, like ``demand``: rows × horizon) that wait longer than ``wait.slo_s``, per cell.

    Within a cell arrivals ``d`` and capacity ``c`` are constant, so the backlog is ``B(t) = max(0, L(t))`` with
    ``L`` linear from the backlog carried in to ``L₀ + (d − c)·step``, and a request arriving at ``t`` waits
    ``B(t) / c`` (FIFO at the cell's capacity); it waits too long while ``L(t) > c·slo``, for the part of the cell
    found by linear interpolation. The backlog starts empty at each row's decision; with ``wait.lag`` the
    guard's drain capacity for a backlog seen ``lag`` cells earlier serves the cell."""
    beyond = np.zeros_like(demand)
    carried = np.zeros(demand.shape[0])
    ends: list[FloatArray] = []
    for j in range(demand.shape[1]):
        d, c = demand[:, j], capacity[:, j]
        if wait.lag and j >= wait.lag:
            seen = ends[j - wait.lag]
            seen_c = capacity[:, j - wait.lag]
            c = np.where(seen > seen_c * wait.slo_s, np.maximum(c, demand[:, j - wait.lag] + seen / wait.drain_s), c)
        end = carried + (d - c) * wait.step_s
        hi, lo = np.maximum(carried, end), np.minimum(carried, end)
        threshold = c * wait.slo_s
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(hi > lo, (hi - threshold) / (hi - lo), (hi > threshold).astype(np.float64))
        beyond[:, j] = d * np.clip(part, 0.0, 1.0)
        carried = np.maximum(end, 0.0)
        ends.append(carried)
    return beyond


def unserved_share(capacity: FloatArray, demand: FloatArray, weight: FloatArray | None = None) -> float:
    """Share of ``demand`` (rows × window) above the row's ``capacity``: the SLO metric, replayed."""
    w = np.ones(demand.shape[0]) if weight is None else weight
    total = float(np.sum(demand * w[:, None]))
    if total <= 0:
        return 0.0
    return float(np.sum(np.maximum(demand - capacity[:, None], 0.0) * w[:, None])) / total


@dataclass(frozen=True)
class _Cells:
    """The replay's inputs, cell by cell (rows × horizon), with NaN already replaced."""

    forecast: FloatArray  # (n,)
    demand: FloatArray  # (n, h)
    cover: FloatArray  # (n, h): unscaled
    reaction: FloatArray  # (n, h): the guard's reaction (× its multiplier)
    ratchet: FloatArray  # (n,): the highest sample of the scale-in window (× the guard's multiplier)
    upper: FloatArray  # (n,): max(forecast, bound): the most the tick's headroom may give a row
    guard_bound: FloatArray  # (n,): the rate above which the guard adds no headroom (inf: none)
    weight: FloatArray  # (n,)
    standing: FloatArray  # (n, h): max(reaction, cover), what every candidate has at m = 1 besides its rows' plan
    # The cells standing capacity leaves short (row-major, as np.nonzero gives them): only they can be short at m = 1.
    open_rows: NDArray[np.int64]
    open_cols: NDArray[np.int64]
    open_demand: FloatArray
    block_demand: FloatArray | None  # weighted demand per block (with ``block``)
    reaction_top: FloatArray  # (n, h): max(reaction, guard_bound): the most a scaled guard gives a cell


def _capacity(c: _Cells, m: float, floor: FloatArray, guard_m: float | None) -> FloatArray:
    """Capacity of every cell with multiplier ``m`` and ``floor``; the guard scales its rates by ``guard_m``
    (None: by ``m``, the tick's own multiplier)."""
    g = m if guard_m is None else guard_m
    planned = np.minimum(np.maximum(m * c.forecast, floor), c.upper)
    if g == 1.0:  # the guard's bare rates: its reaction and the held samples as they are
        return np.maximum(np.maximum(planned, c.ratchet)[:, None], c.standing)
    guard = np.minimum(g * c.reaction, c.reaction_top)
    held = np.minimum(g * c.ratchet, np.maximum(c.ratchet, c.guard_bound))
    return np.maximum(np.maximum(np.maximum(planned, held)[:, None], guard), c.cover)


class _Search:
    """The replay of one candidate floor: unserved(m) over the cells the multiplier can still matter for.

    With ``block`` (a block id per row: rows within one horizon of each other share errors), the score is
    the weighted unserved plus ``_Z`` standard errors of it (the ratio estimator's linearisation over
    blocks): the same share costs more headroom when it comes from a few rare events than from steady noise.
    """

    def __init__(
        self,
        c: _Cells,
        floor: FloatArray,
        guard_m: float | None,
        block: NDArray[np.int64] | None = None,
        wait: WaitSLO | None = None,
    ) -> None:
        floor = np.minimum(floor, c.upper)
        self.wait = wait
        if guard_m in (None, 1.0):
            # At m = 1 the guard adds its bare rates, whichever multiplier it scales them by later: capacity is the
            # rows' plan and held needs over the cells' standing capacity. No larger m costs less than the rows'
            # part over the whole horizon.
            rows_m1 = np.maximum(np.minimum(np.maximum(_MIN_MULTIPLIER * c.forecast, floor), c.upper), c.ratchet)
            self.least_cost = float((c.weight * rows_m1).sum()) * c.demand.shape[1]
            if wait is None:  # the cells above what m = 1 gives, among those standing capacity leaves short
                above = c.open_demand > rows_m1[c.open_rows]
                rows, cols = c.open_rows[above], c.open_cols[above]
            else:
                short = c.demand > np.maximum(rows_m1[:, None], c.standing)
        else:
            base = _capacity(c, _MIN_MULTIPLIER, floor, guard_m)
            self.least_cost = float((c.weight[:, None] * base).sum())
            short = c.demand > base
            if wait is None:
                rows, cols = np.nonzero(short)
        if wait is None:
            # Only cells above what m = 1 gives can ever be unserved (m ≥ 1): usually a small fraction of the history.

            def cell(a: FloatArray) -> FloatArray:
                return a[rows, cols]

            def row(a: FloatArray) -> FloatArray:
                return a[rows]

        else:  # a wait carries over: whole horizons, of the rows where m = 1 leaves a cell short
            rows = np.flatnonzero(np.any(short, axis=1))

            def cell(a: FloatArray) -> FloatArray:
                return a[rows]

            def row(a: FloatArray) -> FloatArray:
                return a[rows][:, None]

        self.scaled = guard_m is None
        self.d = cell(c.demand)
        self.p = row(c.forecast)
        self.r = cell(c.reaction)
        self.rt = row(c.ratchet)
        self.upper = row(c.upper)
        self.gb = row(c.guard_bound)
        self.fixed = np.maximum(row(floor), cell(c.cover))
        seen = np.maximum(self.r, self.rt)
        if guard_m is not None:
            self.fixed = np.maximum(self.fixed, np.minimum(guard_m * seen, np.maximum(seen, self.gb)))
        self.seen, self.seen_top = seen, np.maximum(seen, self.gb)  # the guard's rates, and its bound
        self.w = row(c.weight)
        self.block = block
        if block is not None:
            self.cell_block = block[rows]
            self.n_blocks = int(block.max()) + 1
            self.wd = c.block_demand if c.block_demand is not None else np.zeros(self.n_blocks)
            self.total = float(self.wd.sum())

    def unserved(self, m: float) -> float:
        """The weighted score of multiplier ``m``: requests unserved (or waiting past the SLO), plus ``_Z``
        standard errors of it with ``block``."""
        capacity = np.maximum(np.minimum(m * self.p, self.upper), self.fixed)
        if self.scaled:
            np.maximum(capacity, np.minimum(m * self.seen, self.seen_top), out=capacity)
        if self.wait is None:
            short = np.subtract(self.d, capacity, out=capacity)
            np.maximum(short, 0.0, out=short)
            short *= self.w
        else:
            short = (self.w * waiting_beyond(self.d, capacity, self.wait)).sum(axis=1)
        s = float(short.sum())
        if self.block is None or self.total <= 0:
            return s
        per_block = np.bincount(self.cell_block, weights=short, minlength=self.n_blocks)
        spread = math.sqrt(float(((per_block - s / self.total * self.wd) ** 2).sum()))
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


def _clean(x: FloatArray | None, like: FloatArray, name: str) -> FloatArray:
    if x is None:
        return np.zeros_like(like)
    if x.shape != like.shape:
        raise ValueError(f"{name} must have demand's shape")
    return np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)


def calibrate(
    forecast: FloatArray,
    demand: FloatArray,
    budget_pct: float,
    weight: FloatArray | None = None,
    level: FloatArray | None = None,
    cover: FloatArray | None = None,
    floor_cap: FloatArray | None = None,
    block: NDArray[np.int64] | None = None,
    reaction: FloatArray | None = None,
    bound: FloatArray | None = None,
    ratchet: FloatArray | None = None,
    guard_headroom: bool = True,
    guard_bound: FloatArray | None = None,
    wait: WaitSLO | None = None,
) -> Headroom:
    """Cheapest ``(multiplier, floor)`` whose replay on history leaves at most ``budget_pct`` % unserved.

    ``forecast[i]`` is what the model predicted at a past decision time; ``demand[i]`` holds the rates
    actually seen over that decision's horizon (NaN = not observed, ignored); ``weight[i]`` (default 1)
    lets recent decisions count more, in the budget and in the cost. With ``level[i]`` (the traffic level
    at that decision, > 0) the candidate floors are ratios to it (``floor_i = r × level[i]``) and the result
    carries ``floor_ratio``; call ``at_level`` with the current level. Without it, floors are absolute.
    ``cover[i, j]`` (same shape as ``demand``) is capacity the policy has in that cell without headroom;
    ``reaction[i, j]`` is the guard's reaction in that cell (scaled by the multiplier); ``bound[i]`` is the
    recent need headroom never plans past (module docstring); ``floor_cap[i]`` bounds the floor of row ``i``
    (and adds the candidate "floor = cap"). With ``block[i]`` (rows sharing errors share a block id,
    0 … k-1), the budget must hold with one standard error to spare. With ``wait`` the budget is on the share
    of requests waiting longer than its SLO in a FIFO queue (``waiting_beyond``) instead of the unserved share.
    """
    if forecast.ndim != 1 or demand.ndim != 2 or demand.shape[0] != forecast.shape[0]:
        raise ValueError("forecast must be (n,) and demand (n, window)")
    demand = np.where(np.isfinite(demand), demand, 0.0)
    forecast = np.maximum(np.nan_to_num(forecast), 0.0)
    weight = np.ones_like(forecast) if weight is None else np.maximum(weight, 0.0)
    cover_cells = _clean(cover, demand, "cover")
    reaction_cells = _clean(reaction, demand, "reaction")
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
    limit = np.full(n, _CAP) if bound is None else np.where(np.isfinite(bound), np.maximum(bound, 0.0), _CAP)
    ratchet_rows = np.zeros(n) if ratchet is None else np.where(np.isfinite(ratchet), np.maximum(ratchet, 0.0), 0.0)
    glimit = np.full(n, _CAP) if guard_bound is None else np.where(np.isfinite(guard_bound), guard_bound, _CAP)
    standing = np.maximum(reaction_cells, cover_cells)
    upper = np.maximum(forecast, limit)
    # Every candidate plans at least the forecast and the held needs at m = 1 (the floor only adds): the cells above
    # them and the standing capacity are the only ones any candidate can leave short.
    open_rows, open_cols = np.nonzero(demand > np.maximum(standing, np.maximum(forecast, ratchet_rows)[:, None]))
    n_blocks = 0 if block is None else int(block.max()) + 1
    per_block: FloatArray | None = None
    if block is not None:
        per_block = np.bincount(block, weights=weight * demand.sum(axis=1), minlength=n_blocks).astype(np.float64)
    cells = _Cells(
        forecast,
        demand,
        cover_cells,
        reaction_cells,
        ratchet_rows,
        upper,
        glimit,
        weight,
        standing=standing,
        open_rows=open_rows,
        open_cols=open_cols,
        open_demand=demand[open_rows, open_cols],
        block_demand=per_block,
        reaction_top=np.maximum(reaction_cells, glimit[:, None]),
    )
    relative = demand / scale[:, None]
    positive = relative[demand > 0]
    ratios = sorted({0.0, *(float(v) for v in np.quantile(positive, _FLOOR_QUANTILES[1:]))})
    if floor_cap is not None:
        ratios.append(_CAP)

    def floor_of(ratio: float) -> FloatArray:
        return np.minimum(cap if ratio == _CAP else np.minimum(ratio * scale, cap), cells.upper)

    total = float(np.sum(demand * weight[:, None]))
    # What no candidate serves (the largest multiplier over the largest floor) is not charged to the budget.
    top = floor_of(_CAP if floor_cap is not None else max(ratios))
    unavoidable = _Search(cells, top, None, block, wait).unserved(_MAX_MULTIPLIER)
    allowed = budget * total + unavoidable
    # The guard scales its rates by the multiplier only where that is cheaper (it holds what it raises for
    # the scale-in window: on noise it buys nothing, on fast persistent rises it replaces standing headroom).
    modes: tuple[float | None, ...] = (1.0,)  # the guard's multiplier: 1 (the bare rate) or None (the tick's m)
    if (reaction is not None or ratchet is not None) and guard_headroom:
        modes = (1.0, None)
    best: tuple[float, float, float, float | None] | None = None  # (cost, m, floor ratio, guard multiplier)
    for guard_m in modes:
        for ratio in ratios:
            floor = floor_of(ratio)
            search = _Search(cells, floor, guard_m, block, wait)
            if best is not None and search.least_cost >= best[0] * (1 + 1e-9):
                continue  # cannot beat the best: its cheapest multiplier already costs as much
            m = search.smallest_multiplier(allowed * (1 + 1e-9))
            if m is None:
                continue
            cost = float(np.sum(weight[:, None] * _capacity(cells, m, floor, guard_m)))
            if best is None or cost < best[0] - 1e-9:
                best = (cost, m, ratio, guard_m)
    if best is None:  # only float noise can get here: the top candidate meets `allowed` by construction
        best = (0.0, _MAX_MULTIPLIER, ratios[-1], 1.0)
    _, m, ratio, guard_m = best
    floor = floor_of(ratio)
    capacity = _capacity(cells, m, floor, guard_m)
    missed = np.maximum(demand - capacity, 0.0) if wait is None else waiting_beyond(demand, capacity, wait)
    score = float(np.sum(missed * weight[:, None])) / total * 100.0 if total else 0.0
    last_bound, last_guard_bound = float(limit[-1]), float(glimit[-1])
    g = m if guard_m is None else guard_m
    if level is None:
        ratio_kept = _CAP if ratio == _CAP else 0.0
        return Headroom(
            m,
            float(floor[-1]),
            score,
            n,
            ratio_kept,
            bound_rps=last_bound,
            guard_multiplier=g,
            guard_bound_rps=last_guard_bound,
        )
    return Headroom(
        m, float(floor[-1]), score, n, ratio, bound_rps=last_bound, guard_multiplier=g, guard_bound_rps=last_guard_bound
    )
