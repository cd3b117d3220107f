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
widens because the budget must hold with one standard error of the replayed share to spare, which is
large on a short history (see ``_budget_pct``). Before even
the trend model has enough rows (cold start) it decides reactively: the forecast is the observed rate
(its peak over the last horizon, or the line through that horizon when it grows), with the headroom the
same calibration learns from the short history — but a cold start never plans past what it has seen: its
headroom (tick and guard) stops at the highest rate of the history, whatever the sample resolution. It
leaves cold mode as soon as the model has enough rows. A linear model never forecasts a rise larger than
any it was fitted on.

The headroom is calibrated on every past decision the history holds: rows from before the model's
features existed (a pool's first day or week) are forecast by the richest simpler model they fill, so
bursts seen early are not forgotten when the model gains a feature. The replay credits the policy around
the forecast (``PolicyShape``): the observed-rate need of each tick, the fast guard between ticks (which
scales the rates it sees by 1 or by the tick's multiplier, whichever the calibration finds cheaper) and
the scale-in window (which holds what the guard raised) all provide capacity, so headroom is only bought
for what they miss. The floor is learned as a multiple of the traffic level (the larger of the last day's
mean and the last 10 minutes', so an outage in the last day does not make the ratios explode); rows where
the pool was held (no fresh sample) or whose traffic is negligible for the SLO teach nothing; the floor
never exceeds the peak of the last day (recent need: a spike's floor is gone a day after it); a single
extreme error counts no more than the next largest one
(``_clip_single_extreme``); and the budget must hold with one standard error to spare, so errors that
come from a few rare events buy more headroom than steady noise (``predictor.headroom``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from autoscaler.core.series import RateSeries
from predictor.base import Forecast
from predictor.headroom import Headroom, WaitSLO, calibrate
from predictor.latest import latest_features
from predictor.ols import LinearRegression
from predictor.reuse import FitMemo, KeptFit
from predictor.windows import held_back, rolling, shift, trailing_max, trailing_mean, trend_end

FloatArray = NDArray[np.float64]

DAY = 86400.0
WEEK = 7 * DAY
LEVEL_S = 600.0  # "recent level" = mean of the last 10 minutes
BASE_S = DAY  # the floor scales with the mean rate of the last day (a whole daily cycle: not its phase)
GROWTH_S = 1800.0  # growth = change of that level over 30 minutes
BOUND_S = DAY  # recent need: floors never exceed the highest rate of the last day (a spike is gone a day later)
MAX_GRID = 40_000  # history points kept after aggregation (14 days of 1-minute samples fit)
MAX_TRAIN_ROWS = 6_000
MAX_CALIBRATION_CELLS = 40_000  # rows × horizon samples replayed by the headroom search
# With a single sample no growth can be measured: the rate seen (never plan past what has been seen).
COLD_MULTIPLIER = 1.0


@dataclass(frozen=True)
class PolicyShape:
    """What ``decide`` and the guard do without headroom, for the calibration to credit (pool settings).

    ``lead_s``: a node asked for now is ready after this; ``guard_s``: the guard checks the rate this
    often (None: no guard); ``window_s``: the scale-in window keeps the highest need this long. The tick
    interval is the horizon minus the lead time. A queue-fed pool's SLO is on waits: ``wait_slo_s`` (None: not
    queue-fed, the SLO is the unserved share) with ``wait_beyond_pct`` % of requests allowed to wait longer.
    """

    lead_s: float = 600.0
    guard_s: float | None = None
    window_s: float = 0.0
    wait_slo_s: float | None = None
    wait_beyond_pct: float = 5.0
    drain_s: float | None = None


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


def _clip_single_extreme(demand: FloatArray, forecast: FloatArray, rows: NDArray[np.int64], h: int) -> FloatArray:
    """A single extreme error counts no more than the next largest one.

    The error of a sample is its demand over the forecast of a decision that covered it. The worst error
    is a one-off when it stands farther above the next largest error (outside its event: within one
    horizon of it) than that one stands above the typical (median) error, in log terms (Dixon's gap test
    with the median for the range's low end). Then the cells of its event are capped at the next largest
    error: a one-off does not buy days of headroom; errors that recur are planned for in full.
    """
    p = np.nan_to_num(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(np.isfinite(demand) & (demand > 0), demand / p[:, None], 0.0)
    err = np.where(np.isnan(err), 0.0, err)
    if not np.any(err > 0):
        return demand
    sample = rows[:, None] + np.arange(1, h + 1)[None, :]
    flat = int(np.argmax(err))
    worst, top = sample.ravel()[flat], float(err.ravel()[flat])
    event = np.abs(sample - worst) <= h
    others = err[~event & (err > 0)]
    if others.size == 0 or not math.isfinite(top):
        return demand
    second, typical = float(np.max(others)), float(np.median(err[err > 0]))
    if not (0 < typical < second < top) or math.log(top / second) <= math.log(second / typical):
        return demand
    return np.where(event & (err > second), second * p[:, None], demand)


@dataclass(frozen=True)
class _Fit:
    predicted: float
    headroom: Headroom
    mode: str
    rows: int
    budget_pct: float


def _scale_and_peak(y: FloatArray, step: float) -> tuple[FloatArray, FloatArray]:
    """At each index: the floor's scale — the last day's mean, or the last 10 minutes' if higher (after an outage
    or a jump the day's mean lags far behind the traffic the floor must serve) — and its cap, the recent need:
    the highest rate of the last day (floors never exceed it: a spike's floor is gone a day after it)."""
    scale = np.fmax(trailing_mean(y, max(1, round(BASE_S / step))), trailing_mean(y, max(1, round(LEVEL_S / step))))
    return scale, trailing_max(y, max(1, round(BOUND_S / step)))


def _scale_and_peak_now(y: FloatArray, step: float) -> tuple[float, float]:
    """``_scale_and_peak`` at the last index only (the means and the peak of the trailing windows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window without a sample: NaN, as the full arrays say
        day, recent = np.nanmean(y[-max(1, round(BASE_S / step)) :]), np.nanmean(y[-max(1, round(LEVEL_S / step)) :])
        peak = np.nanmax(y[-max(1, round(BOUND_S / step)) :])
    return float(np.nan_to_num(np.fmax(day, recent))), float(np.nan_to_num(peak))


def _cold_forecast(y: FloatArray, h: int) -> FloatArray:
    """Cold start's forecast at each index: the peak of the last horizon, or the line through it read a
    horizon ahead when traffic grows (one quiet sample of a bursty pool is not taken for the level)."""
    return np.fmax(trailing_max(y, h), trend_end(y, h))


def _fit_rows(x: FloatArray, target: FloatArray, rows: NDArray[np.int64]) -> LinearRegression:
    """The regression on ``rows`` (evenly thinned to MAX_TRAIN_ROWS: the fit stays fast on long history)."""
    train = rows[:: max(1, math.ceil(rows.shape[0] / MAX_TRAIN_ROWS))]
    return LinearRegression().fit(x[train], target[train])


class SeasonalPredictor:
    """Seasonal linear regression + SLO-calibrated headroom (see the module docstring)."""

    name = "seasonal_lr"

    def __init__(
        self,
        history_s: float = 14 * DAY,
        slo_unserved_pct: float = 1.0,
        budget_fraction: float = 0.5,
        half_life_s: float | None = 3 * DAY,
        policy: PolicyShape | None = None,
        refit_s: float | None = None,
    ) -> None:
        if history_s <= 0:
            raise ValueError("history_s must be > 0")
        if slo_unserved_pct <= 0:
            raise ValueError("slo_unserved_pct must be > 0")
        self.history_s = history_s
        self.slo_unserved_pct = slo_unserved_pct
        self.budget_fraction = budget_fraction
        self.half_life_s = half_life_s
        self.policy = policy or PolicyShape()
        self.memo = FitMemo(refit_s) if refit_s else None  # one instance per pool: its fit kept (predictor/reuse.py)

    def history_seconds(self) -> float:
        return self.history_s

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        # Samples are stamped at the end of the interval they measure: t ≤ now is the past.
        hist = history.finite().window(now - self.history_s, now + 1e-6)
        if len(hist) == 0:
            raise ValueError("no samples in the history window")
        observed = hist.last_rps
        grid = _to_grid(hist)
        fit = self._fit(grid, horizon_s) or self._cold(grid, horizon_s, observed)
        if fit is None:
            peak = float(np.nanmax(grid.y))
            return Forecast(
                peak_rps=COLD_MULTIPLIER * peak,
                observed_rps=observed,
                horizon_s=horizon_s,
                model=self.name,
                details={"mode": "cold", "peak_seen_rps": round(peak, 3), "multiplier": COLD_MULTIPLIER},
                bound_rps=peak,
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
                "guard_multiplier": round(fit.headroom.guard_multiplier, 4),
                "history_unserved_pct": round(fit.headroom.unserved_pct, 4),
                "slo_metric": self._slo_metric(),
                "budget_pct": round(float(fit.budget_pct), 4),
                "rows": float(fit.rows),
                **({"bound_rps": round(fit.headroom.bound_rps, 3)} if math.isfinite(fit.headroom.bound_rps) else {}),
            },
            guard_multiplier=fit.headroom.guard_multiplier,
            bound_rps=fit.headroom.guard_bound_rps,
        )

    def _slo_metric(self) -> str:
        """What ``history_unserved_pct`` and ``budget_pct`` measure: lost requests, or requests waiting too long."""
        wait = self.policy.wait_slo_s
        return "unserved requests" if wait is None else f"requests waiting longer than {wait:g} s"

    def _budget_pct(self) -> float:
        """Part of the SLO the calibration aims for: half of it (the other half absorbs drift and errors
        larger than any in the history). How little history backs the estimate is not guessed from its
        length: the budget must hold with one standard error of the replayed share to spare, and that
        error is large when the history is short or its errors come from a few events. A queue-fed pool's
        SLO is the share of requests that may wait past its latency SLO, and the same half of it is aimed for."""
        slo = self.slo_unserved_pct if self.policy.wait_slo_s is None else self.policy.wait_beyond_pct
        return slo * self.budget_fraction

    def _fit(self, grid: _Grid, horizon_s: float) -> _Fit | None:
        y, step = grid.y, grid.step_s
        n = y.shape[0]
        h = max(1, math.ceil(horizon_s / step - 1e-9))
        # A kept fit serves once the history fills its window (while it grows, every tick's fit learns more).
        full = n * step >= self.history_s - 2 * step
        kept = self.memo.get(float(grid.t[-1]), step, h) if self.memo is not None and full else None
        eps = kept.eps if kept is not None else max(1e-3 * float(np.nanmean(y)), 1e-9)
        k_lvl = max(1, round(LEVEL_S / step))
        k_g = max(1, round(GROWTH_S / step))
        # With a kept fit only the last row's features are needed: the samples its windows and lags reach.
        tail = n if kept is None else min(n, round(WEEK / step) + max(k_lvl, h) + k_g + 2)
        yf = y[n - tail :]
        if kept is not None:  # between refits: today's features only, the kept model
            day = round(DAY / step) if n * step >= 2 * DAY else None
            lags = (day, round(WEEK / step) if n * step >= WEEK + DAY else None)
            tod = 2 * np.pi * (grid.t[-1:] % DAY) / DAY  # as the full path computes it, for the last sample
            today = latest_features(yf, eps, (k_lvl, k_g, h), lags, tod)
            filled = [(name, vals) for name, vals in today if all(math.isfinite(v) for v in vals)]
            if filled and filled[0][0] == "level" and kept.names == tuple(name for name, _ in filled):
                last = np.array([[v for _, vals in filled for v in vals]])
                headroom = kept.headroom.at_level(*_scale_and_peak_now(y, step))
                predicted = kept.predicted(last, filled[0][1][0])
                return _Fit(predicted, headroom, filled[-1][0], kept.rows, kept.budget_pct)
        logy = np.log(yf + eps)
        level = np.log(rolling(yf, k_lvl, "mean") + eps)
        burst = np.log(rolling(yf, h, "max") + eps)
        growth = level - shift(level, k_g)
        future = shift(rolling(logy, h, "max"), -h)  # log peak over (τ, τ+h]
        span_s = n * step
        groups: list[tuple[str, list[FloatArray]]] = [("level", [level]), ("trend", [growth, burst])]
        if span_s >= 2 * DAY:
            d = round(DAY / step)
            tod = 2 * np.pi * (grid.t[n - tail :] % DAY) / DAY
            groups.append(("time_of_day", [np.sin(tod), np.cos(tod), np.sin(2 * tod), np.cos(2 * tod)]))
            groups.append(("daily", [shift(future, d), shift(level, d)]))
            if span_s >= WEEK + DAY:
                w = round(WEEK / step)
                groups.append(("weekly", [shift(future, w), shift(level, w)]))
        # A lag that lands in a gap (or not enough data yet): use only what the current row can fill.
        usable = [(name, cols) for name, cols in groups if all(math.isfinite(float(c[-1])) for c in cols)]
        if not usable or usable[0][0] != "level":
            return None
        mode = usable[-1][0]
        names = tuple(name for name, _ in usable)
        if kept is not None and kept.names == names:  # between refits: today's features, the kept model
            last = np.array([[float(c[-1]) for _, cols in usable for c in cols]])
            headroom = kept.headroom.at_level(*_scale_and_peak_now(y, step))
            return _Fit(kept.predicted(last, float(level[-1])), headroom, mode, kept.rows, kept.budget_pct)
        x = np.column_stack([c for _, cols in usable for c in cols])
        rows = np.flatnonzero(np.all(np.isfinite(x), axis=1) & np.isfinite(future))
        min_rows = max(12, 4 * x.shape[1])
        # Headroom needs errors from at least four horizons of past decisions to mean anything.
        if rows.shape[0] < min_rows or (rows[-1] - rows[0] + 1) < 4 * h:
            return None
        model = _fit_rows(x, future, rows)
        # A linear model must not extrapolate a rise larger than any it was fitted on (after a jump, the
        # growth feature is far outside its range): the log forecast is at most the level plus the largest
        # rise from level to the coming peak seen in training.
        rise = float(np.max(future[rows] - level[rows]))

        def bounded(xr: FloatArray, at: NDArray[np.int64] | slice) -> FloatArray:
            return np.maximum(np.exp(np.minimum(model.predict(xr), level[at] + rise)) - eps, 0.0)

        predicted = float(bounded(x[-1:], slice(n - 1, n))[0])
        past = np.full(n, np.nan)
        past[rows] = bounded(x[rows], rows)
        # Rows from before the model's features existed (a pool's first day or week) still hold errors the
        # headroom must learn from (bursts, growth): forecast each with the richest simpler model it fills,
        # and the earliest ones as cold start does.
        for k in range(len(usable) - 1, 0, -1):
            if usable[k - 1][0] == "time_of_day":  # time of day alone is not a model: it goes with "daily"
                continue
            xs = np.column_stack([c for _, cols in usable[:k] for c in cols])
            fills = np.all(np.isfinite(xs), axis=1) & np.isfinite(future)
            missing = np.flatnonzero(fills & np.isnan(past))
            if missing.shape[0] == 0 or np.count_nonzero(fills) < max(12, 4 * xs.shape[1]):
                continue
            simpler = _fit_rows(xs, future, np.flatnonzero(fills))
            cut = float(np.max((future - level)[fills]))
            log_past = np.minimum(simpler.predict(xs[missing]), level[missing] + cut)
            past[missing] = np.maximum(np.exp(log_past) - eps, 0.0)
        earliest = np.isnan(past) & np.isfinite(y)
        past[earliest] = _cold_forecast(y, h)[earliest]
        known = np.flatnonzero(np.isfinite(past) & np.isfinite(future))
        budget = self._budget_pct()
        calibrated, at_level = self._headroom(y, past, known, h, step, budget, horizon_s)
        if self.memo is not None:
            kept_fit = KeptFit(
                float(grid.t[-1]), step, h, names, eps, model, rise, calibrated, int(rows.shape[0]), budget
            )
            self.memo.keep(kept_fit)
        return _Fit(max(predicted, 0.0), calibrated.at_level(*at_level), mode, int(rows.shape[0]), budget)

    def _cold(self, grid: _Grid, horizon_s: float, observed: float) -> _Fit | None:
        """Cold start: the forecast is the observed rate — its peak over the last horizon, so one quiet
        sample of a bursty pool is not taken for the level — and the headroom is calibrated on what that
        would have missed over the short history (the history's own growth over a horizon)."""
        y, step = grid.y, grid.step_s
        h = max(1, math.ceil(horizon_s / step - 1e-9))
        rows = np.flatnonzero(np.isfinite(y))[:-1]  # every decision with at least one sample after it
        if rows.shape[0] == 0 or not math.isfinite(observed):
            return None
        recent = _cold_forecast(y, h)
        budget = self._budget_pct()
        calibrated, at_level = self._headroom(y, recent, rows, h, step, budget, horizon_s, cold=True)
        return _Fit(max(float(recent[-1]), 0.0), calibrated.at_level(*at_level), "cold", int(rows.shape[0]), budget)

    def _headroom(
        self,
        y: FloatArray,
        past: FloatArray,
        rows: NDArray[np.int64],
        h: int,
        step: float,
        budget: float,
        horizon_s: float,
        cold: bool = False,
    ) -> tuple[Headroom, tuple[float, float]]:
        """Calibrate the headroom on the rows' forecasts ``past`` against what followed them, crediting the
        policy around the forecast (observed-rate need, guard, scale-in window); with the level and cap its
        floor is applied at now (``Headroom.at_level``)."""
        n = y.shape[0]
        policy = self.policy
        scale, recent_peak = _scale_and_peak(y, step)
        now = (float(np.nan_to_num(scale[-1])), float(np.nan_to_num(recent_peak[-1])))
        # A cold start's headroom — tick and guard — never plans past the highest rate seen at all.
        bound = trailing_max(y, n) if cold else np.full(n, np.inf)
        # Held rows (no fresh sample: the tick holds) and rows whose traffic is negligible for the SLO
        # (below the SLO's share of the mean rate: serving none of it would still meet the SLO) teach nothing.
        negligible = self.slo_unserved_pct / 100.0 * float(np.nanmean(y))
        rows = rows[np.isfinite(y[rows]) & (np.nan_to_num(scale[rows]) > negligible)]
        if rows.shape[0] == 0:
            return Headroom(1.0, 0.0, 0.0, 0), now
        # The scale-in window keeps the highest need of the ticks within it: the decision at i stands on
        # the ticks at i - I, i - 2I, … inside the window (I = the tick interval in steps).
        interval = max(1, round((horizon_s - policy.lead_s) / step))
        window = [q * interval for q in range(1, math.ceil(policy.window_s / (interval * step) - 1e-9))]
        held_past = held_back(past, [0, *window])
        held_scale = held_back(scale, [0, *window])
        if not window:
            ratchet = np.zeros(n)
        elif policy.guard_s is not None:
            # The guard raised the count to (its multiplier ×) any sample above capacity, and the window keeps it:
            # the highest sample of the window before the decision (window_s back from the decision) stands.
            before = np.concatenate(([np.nan], y[:-1]))
            ratchet = trailing_max(before, max(1, round(policy.window_s / step) - 1))
        else:  # without a guard the window keeps the ticks' observed needs
            ratchet = held_back(y, window)
        cal = rows[:: max(1, math.ceil(rows.shape[0] * h / MAX_CALIBRATION_CELLS))]
        future = sliding_window_view(np.append(y, np.full(h, np.nan)), h)[cal + 1]
        demand = _clip_single_extreme(future, held_past[cal], cal, h)
        cover, reaction = self._cover(y, cal, h, step, np.full(n, np.nan))
        weight = None
        if self.half_life_s:  # recent errors count more: traffic drifts, and so do the model's errors
            weight = 0.5 ** ((cal[-1] - cal) * step / self.half_life_s)
        # The bounds each past decision had (the needs the window held count as seen).
        limit = held_back(bound, [0, *window])[cal]
        headroom = calibrate(
            np.nan_to_num(held_past[cal]),
            demand,
            budget,
            weight=weight,
            level=held_scale[cal],
            cover=cover,
            floor_cap=held_back(recent_peak, [0, *window])[cal],
            block=((cal - cal[0]) // h).astype(np.int64),  # errors within one horizon are one event
            reaction=reaction,
            bound=limit,
            ratchet=np.nan_to_num(ratchet[cal]),
            guard_headroom=policy.guard_s is not None,
            guard_bound=limit,
            wait=self._wait(step),
        )
        return replace(headroom, bound_rps=float(bound[-1]), guard_bound_rps=float(bound[-1])), now

    def _wait(self, step: float) -> WaitSLO | None:
        """A queue-fed pool's wait SLO in cells of ``step``; the guard drains a backlog it sees (None: no queue)."""
        policy = self.policy
        if policy.wait_slo_s is None:
            return None
        lag = max(1, math.ceil((policy.guard_s + policy.lead_s) / step - 1e-9)) if policy.guard_s is not None else 0
        return WaitSLO(policy.wait_slo_s, step, lag, policy.drain_s or policy.lead_s)

    def _cover(
        self, y: FloatArray, cal: NDArray[np.int64], h: int, step: float, held: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Capacity each horizon cell gets from the rest of the policy: ``cover``, without headroom — the needs
        the scale-in window holds (ready at once) and this tick's observed-rate need (ready after the lead
        time); and ``reaction``, the guard's reaction to each later sample (ready a guard interval plus the
        lead time after the sample is seen), which the guard scales by the pool's multiplier."""
        policy = self.policy
        # The SLO's accounting: a sample (stamped at the end of the interval it measures) is served by the
        # nodes ready at its stamp. Cell j (1-based) is stamped j steps after the decision, so capacity
        # ready d seconds after the decision serves every cell from j = ceil(d / step) on: no later.
        lead = max(1, math.ceil(policy.lead_s / step - 1e-9))
        cover = np.repeat(np.nan_to_num(held[cal])[:, None], h, axis=1)
        if lead <= h:  # the tick's own observed-rate need, ready a lead time after the decision
            cover[:, lead - 1 :] = np.maximum(cover[:, lead - 1 :], np.nan_to_num(y[cal])[:, None])
        reaction = np.zeros_like(cover)
        if policy.guard_s is not None:
            # Sample k ≥ 1 is seen by a guard check at most a guard interval after its stamp; the nodes it
            # asks for are ready a lead time later: cell j is served by every sample k with k ≤ j - lag.
            lag = max(1, math.ceil((policy.guard_s + policy.lead_s) / step - 1e-9))
            if lag + 1 <= h:
                seen = np.nan_to_num(sliding_window_view(np.append(y, np.full(h, np.nan)), h)[cal + 1])
                reacted = np.maximum.accumulate(seen, axis=1)  # column c: max of samples 1 … c + 1
                reaction[:, lag:] = reacted[:, : h - lag]
        return cover, reaction
