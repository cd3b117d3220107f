"""The seasonal model's features at the last sample only: what a kept fit needs between refits (predictor/reuse.py).

``seasonal._fit`` builds every feature over the whole history to fit the model; between refits the kept model
only needs today's row. ``latest_features`` gives that row value for value — the same arithmetic on the same
samples (the level's trailing means from the same cumulative sums, the same logarithms) — without the arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def latest_features(
    yf: FloatArray, eps: float, windows: tuple[int, int, int], lags: tuple[int | None, int | None], tod: FloatArray
) -> list[tuple[str, list[float]]]:
    """The feature groups of ``seasonal._fit`` at the last index of ``yf``, in its order.

    ``windows``: the level's, the growth's and the horizon's length in samples; ``lags``: a day and a week in
    samples (None: the history is too short for that group); ``tod``: the last sample's time of day in radians
    (a one-element array)."""
    k_lvl, k_g, h = windows
    n = yf.shape[0]
    seen = np.isfinite(yf)
    csum = np.concatenate(([0.0], np.cumsum(np.where(seen, yf, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(seen)))

    def levels(at: list[int]) -> list[float]:
        """log(mean of the last k_lvl samples + eps) at each index (NaN before a whole window, or without data)."""
        if k_lvl > n:
            return [math.nan] * len(at)
        idx = np.array([max(i, 0) for i in at])
        ok = (np.array(at) >= k_lvl - 1) & (idx >= k_lvl - 1)
        safe = np.where(ok, idx, k_lvl - 1)
        total, count = csum[safe + 1] - csum[safe + 1 - k_lvl], ccount[safe + 1] - ccount[safe + 1 - k_lvl]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok & (count > 0), total / np.maximum(count, 1), np.nan)
        return [float(v) for v in np.log(mean + eps)]

    def peak(values: FloatArray) -> float:
        """Max of the finite values of a window (NaN when none), as ``windows.rolling(…, "max")``."""
        top = float(np.max(np.where(np.isfinite(values), values, -np.inf))) if values.shape[0] else -math.inf
        return top if math.isfinite(top) else math.nan

    def future_at(i: int) -> float:
        """Log peak over (i, i+h]: ``shift(rolling(logy, h, "max"), -h)`` at ``i``."""
        end = i + h
        if i < 0 or end >= n:
            return math.nan
        return peak(np.log(yf[end - h + 1 : end + 1] + eps))

    last = n - 1
    day, week = lags
    lvl = levels([last, last - k_g, last - (day or 0), last - (week or 0)])
    burst = float(np.log(np.array([peak(yf[n - h :]) if n >= h else math.nan]) + eps)[0])
    groups: list[tuple[str, list[float]]] = [("level", [lvl[0]]), ("trend", [lvl[0] - lvl[1], burst])]
    if day is not None:
        trig = (np.sin(tod), np.cos(tod), np.sin(2 * tod), np.cos(2 * tod))
        groups.append(("time_of_day", [float(v[0]) for v in trig]))
        groups.append(("daily", [future_at(last - day), lvl[2]]))
        if week is not None:
            groups.append(("weekly", [future_at(last - week), lvl[3]]))
    return groups
