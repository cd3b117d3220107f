"""The default model: linear regression on daily/weekly seasonal features, recent level and growth,
plus headroom calibrated on the model's own past errors to meet the stated SLO.

Everything is fitted afresh at each call from the history handed in (stateless, hence causal by
construction): the training rows are past decision times whose horizon had already elapsed.

Target and features are logs of rates (traffic is multiplicative: a busy Monday is the whole profile
scaled up), so the same model fits 5 req/s and 5,000 req/s. At a decision time τ with horizon H:

- target: log of the peak rate over (τ, τ+H];
- level: log mean rate over the last 10 minutes; growth: level minus the level 30 minutes earlier;
  burst: log peak over the last H;
- with ≥ 2 days of history: the peak over the same window one day earlier and the level one day
  earlier (the model learns "today's level × yesterday's ramp"), and time-of-day Fourier terms;
- with ≥ 8 days: the same one week earlier (weekday/weekend cycles).

With too little history it falls back to the features it can fill (trend only), and the headroom
widens because the SLO budget is scaled by how much history backs it (see ``_budget_pct``). The
headroom's floor is learned as a multiple of the mean rate over the last day, so it follows growth.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from sklearn.linear_model import LinearRegression

from autoscaler.core.series import RateSeries
from predictor.base import Forecast
from predictor.headroom import Headroom, calibrate

FloatArray = NDArray[np.float64]

DAY = 86400.0
WEEK = 7 * DAY
LEVEL_S = 600.0  # "recent level" = mean of the last 10 minutes
BASE_S = DAY  # the floor scales with the mean rate of the last day (a whole daily cycle: not its phase)
GROWTH_S = 1800.0  # growth = change of that level over 30 minutes
MAX_GRID = 40_000  # history points kept after aggregation (14 days of 1-minute samples fit)
MAX_TRAIN_ROWS = 6_000
MAX_CALIBRATION_CELLS = 40_000  # rows × horizon samples replayed by the headroom search
COLD_MULTIPLIER = 1.5  # before any error can be measured: 1.5 × the highest rate seen so far


@dataclass(frozen=True)
class _Grid:
    """History on a regular grid ending at the last sample (NaN = not observed)."""

    y: FloatArray
    t: FloatArray
    step_s: float


def _to_grid(history: RateSeries, max_points: int = MAX_GRID) -> _Grid:
    step = float(history.step_s)
    if len(history) > 1:
        step = max(step, float(np.min(np.diff(history.t))))
    t_last = float(history.t[-1])
    idx = np.rint((history.t - t_last) / step).astype(np.int64)
    n = int(-idx[0]) + 1
    y = np.full(n, np.nan)
    y[idx + n - 1] = history.rps
    factor = max(1, math.ceil(n / max_points))
    if factor > 1:  # aggregate (mean of observed samples) to keep the fit fast on fine-grained history
        cut = n % factor
        y = y[cut:]
        blocks = y.reshape(-1, factor)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            y = np.nanmean(blocks, axis=1)
        step *= factor
        n = y.shape[0]
    t = t_last - step * np.arange(n - 1, -1, -1, dtype=np.float64)
    return _Grid(y, t, step)


def _rolling(y: FloatArray, k: int, how: str) -> FloatArray:
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


def _trailing_mean(y: FloatArray, k: int) -> FloatArray:
    """Mean of the observed samples in the last ``k`` (fewer at the start: all there is so far)."""
    seen = np.isfinite(y)
    csum = np.concatenate(([0.0], np.cumsum(np.where(seen, y, 0.0))))
    ccount = np.concatenate(([0], np.cumsum(seen)))
    lo = np.maximum(np.arange(1, y.shape[0] + 1) - k, 0)
    count = ccount[1:] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[1:] - csum[lo]) / np.maximum(count, 1), np.nan)


def _shift(x: FloatArray, lag: int) -> FloatArray:
    """x[τ - lag] at τ (NaN before the start); negative lags look ahead (targets only)."""
    out = np.full(x.shape[0], np.nan)
    if lag >= 0:
        if lag < x.shape[0]:
            out[lag:] = x[: x.shape[0] - lag]
    elif -lag < x.shape[0]:
        out[:lag] = x[-lag:]
    return out


@dataclass(frozen=True)
class _Fit:
    predicted: float
    headroom: Headroom
    mode: str
    rows: int
    budget_pct: float


class SeasonalPredictor:
    """Seasonal linear regression + SLO-calibrated headroom (see the module docstring)."""

    name = "seasonal_lr"

    def __init__(
        self,
        history_s: float = 14 * DAY,
        slo_unserved_pct: float = 1.0,
        budget_fraction: float = 0.5,
        confidence_s: float = DAY,
        half_life_s: float | None = 3 * DAY,
    ) -> None:
        if history_s <= 0:
            raise ValueError("history_s must be > 0")
        if slo_unserved_pct <= 0:
            raise ValueError("slo_unserved_pct must be > 0")
        self.history_s = history_s
        self.slo_unserved_pct = slo_unserved_pct
        self.budget_fraction = budget_fraction
        self.confidence_s = confidence_s
        self.half_life_s = half_life_s

    def history_seconds(self) -> float:
        return self.history_s

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        # Samples are stamped at the end of the interval they measure: t ≤ now is the past.
        hist = history.finite().window(now - self.history_s, now + 1e-6)
        if len(hist) == 0:
            raise ValueError("no samples in the history window")
        observed = hist.last_rps
        grid = _to_grid(hist)
        fit = self._fit(grid, horizon_s)
        if fit is None:
            peak = float(np.nanmax(grid.y))
            return Forecast(
                peak_rps=COLD_MULTIPLIER * peak,
                observed_rps=observed,
                horizon_s=horizon_s,
                model=self.name,
                details={"mode": "cold", "peak_seen_rps": round(peak, 3), "multiplier": COLD_MULTIPLIER},
            )
        peak_rps = fit.headroom.apply(fit.predicted)
        return Forecast(
            peak_rps=peak_rps,
            observed_rps=observed,
            horizon_s=horizon_s,
            model=self.name,
            details={
                "mode": fit.mode,
                "predicted_rps": round(fit.predicted, 3),
                "multiplier": round(fit.headroom.multiplier, 4),
                "floor_rps": round(fit.headroom.floor_rps, 3),
                "history_unserved_pct": round(fit.headroom.unserved_pct, 4),
                "budget_pct": round(fit.budget_pct, 4),
                "rows": float(fit.rows),
            },
        )

    def _budget_pct(self, rows_span_s: float) -> float:
        """Part of the SLO the calibration aims for: half of it (the other half absorbs drift and the
        optimism of in-sample errors), scaled down while less than a day of errors backs the estimate."""
        confidence = min(1.0, rows_span_s / self.confidence_s)
        return self.slo_unserved_pct * self.budget_fraction * confidence

    def _fit(self, grid: _Grid, horizon_s: float) -> _Fit | None:
        y, step = grid.y, grid.step_s
        n = y.shape[0]
        h = max(1, math.ceil(horizon_s / step - 1e-9))
        eps = max(1e-3 * float(np.nanmean(y)), 1e-9)
        logy = np.log(y + eps)
        k_lvl = max(1, round(LEVEL_S / step))
        k_g = max(1, round(GROWTH_S / step))
        level = np.log(_rolling(y, k_lvl, "mean") + eps)
        burst = np.log(_rolling(y, h, "max") + eps)
        growth = level - _shift(level, k_g)
        future = _shift(_rolling(logy, h, "max"), -h)  # log peak over (τ, τ+h]
        span_s = n * step
        groups: list[tuple[str, list[FloatArray]]] = [("level", [level]), ("trend", [growth, burst])]
        if span_s >= 2 * DAY:
            d = round(DAY / step)
            tod = 2 * np.pi * (grid.t % DAY) / DAY
            groups.append(("time_of_day", [np.sin(tod), np.cos(tod), np.sin(2 * tod), np.cos(2 * tod)]))
            groups.append(("daily", [_shift(future, d), _shift(level, d)]))
            if span_s >= WEEK + DAY:
                w = round(WEEK / step)
                groups.append(("weekly", [_shift(future, w), _shift(level, w)]))
        # A lag that lands in a gap (or not enough data yet): use only what the current row can fill.
        usable = [(name, cols) for name, cols in groups if all(math.isfinite(float(c[-1])) for c in cols)]
        if not usable or usable[0][0] != "level":
            return None
        mode = usable[-1][0]
        x = np.column_stack([c for _, cols in usable for c in cols])
        rows = np.flatnonzero(np.all(np.isfinite(x), axis=1) & np.isfinite(future))
        min_rows = max(12, 4 * x.shape[1])
        # Headroom needs errors from at least four horizons of past decisions to mean anything.
        if rows.shape[0] < min_rows or (rows[-1] - rows[0] + 1) < 4 * h:
            return None
        train = rows[:: max(1, math.ceil(rows.shape[0] / MAX_TRAIN_ROWS))]
        model = LinearRegression().fit(x[train], future[train])
        predicted = float(np.exp(model.predict(x[-1:])[0]) - eps)
        cal = rows[:: max(1, math.ceil(rows.shape[0] * h / MAX_CALIBRATION_CELLS))]
        past = np.maximum(np.exp(model.predict(x[cal])) - eps, 0.0)
        windows = sliding_window_view(np.append(y, np.full(h, np.nan)), h)[cal + 1]
        budget = self._budget_pct((rows[-1] - rows[0] + 1) * step)
        weight = None
        if self.half_life_s:  # recent errors count more: traffic drifts, and so do the model's errors
            weight = 0.5 ** ((cal[-1] - cal) * step / self.half_life_s)
        # The floor is learned relative to the traffic level, so it follows growth and decline.
        base = _trailing_mean(y, max(1, round(BASE_S / step)))
        headroom = calibrate(past, windows, budget, weight=weight, level=base[cal]).at_level(float(base[-1]))
        return _Fit(max(predicted, 0.0), headroom, mode, int(rows.shape[0]), budget)
