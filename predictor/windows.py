"""Trailing-window maths over a sample grid (NaN = no sample): the features, floors and bounds of the
seasonal model are all windows ending at each decision, so nothing in them looks ahead (``shift`` with a
negative lag builds training targets only)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def rolling(y: FloatArray, k: int, how: str) -> FloatArray:
    """Trailing window of ``k`` samples ending at each index (NaN where the window has no data)."""
    n = y.shape[0]
    out = np.full(n, np.nan)
    if k > n:
        return out
    seen = np.isfinite(y)
    if how == "mean":  # O(n) with cumulative sums over the observed samples only
        csum = np.concatenate(([0.0], np.cumsum(np.where(seen, y, 0.0))))
        ccount = np.concatenate(([0], np.cumsum(seen)))
        total, count = csum[k:] - csum[:-k], ccount[k:] - ccount[:-k]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k - 1 :] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return out
    peak = np.max(sliding_window_view(np.where(seen, y, -np.inf), k), axis=1)
    out[k - 1 :] = np.where(np.isfinite(peak), peak, np.nan)
    return out


def trailing_mean(y: FloatArray, k: int) -> FloatArray:
    """Mean of the observed samples in the last ``k`` (fewer at the start: all there is so far)."""
    seen = np.isfinite(y)
    csum = np.concatenate(([0.0], np.cumsum(np.where(seen, y, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(seen)))
    lo = np.maximum(np.arange(1, y.shape[0] + 1) - k, 0)
    count = ccount[1:] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[1:] - csum[lo]) / np.maximum(count, 1), np.nan)


def shift(x: FloatArray, lag: int) -> FloatArray:
    """x[τ - lag] at τ (NaN before the start); negative lags look ahead (targets only)."""
    out = np.full(x.shape[0], np.nan)
    if lag >= 0:
        if lag < x.shape[0]:
            out[lag:] = x[: x.shape[0] - lag]
    elif -lag < x.shape[0]:
        out[:lag] = x[-lag:]
    return out


def trailing_max(y: FloatArray, k: int) -> FloatArray:
    """Max of the observed samples among the last ``k`` (all there is at the start), in O(n)
    (van Herk / Gil-Werman blocks: a 7-day window over 1-minute samples stays cheap)."""
    n = y.shape[0]
    k = max(1, min(k, n))
    v = np.where(np.isfinite(y), y, -np.inf)
    padded = np.concatenate((np.full(k - 1, -np.inf), v))
    m = -(-padded.shape[0] // k) * k
    padded = np.concatenate((padded, np.full(m - padded.shape[0], -np.inf))).reshape(-1, k)
    forward = np.maximum.accumulate(padded, axis=1).ravel()
    backward = np.maximum.accumulate(padded[:, ::-1], axis=1)[:, ::-1].ravel()
    out = np.maximum(backward[:n], forward[k - 1 : k - 1 + n])
    return np.where(np.isfinite(out), out, np.nan)


def trend_end(y: FloatArray, k: int) -> FloatArray:
    """A line fitted to the last ``k`` samples at each index, read ``k`` steps ahead (NaN on any gap)."""
    n = y.shape[0]
    out = np.full(n, np.nan)
    if k < 2 or n < k:
        return out
    win = sliding_window_view(y, k)  # (n - k + 1, k)
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2.0
    slope = (win @ x) / float(x @ x)
    mean = win.mean(axis=1)
    out[k - 1 :] = mean + slope * ((k - 1) / 2.0 + k)
    return out


def held_back(x: FloatArray, lags: list[int]) -> FloatArray:
    """max(x[i - lag] for lag in lags) at each i (NaN and out-of-range lags ignored; NaN if none)."""
    out = np.full(x.shape[0], -np.inf)
    for lag in lags:
        out = np.fmax(out, shift(x, lag))
    return np.where(np.isfinite(out), out, np.nan)
