"""``latest_features`` is the last row of the seasonal model's feature arrays, value for value (a kept fit
between refits uses it instead of building every array: predictor/latest.py)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.latest import latest_features
from predictor.windows import rolling, shift


def last_rows(yf: np.ndarray, eps: float, k_lvl: int, k_g: int, h: int, lags: tuple[int | None, int | None]):
    """The arrays as ``seasonal._fit`` builds them (level, trend, daily, weekly), read at the last index."""
    logy = np.log(yf + eps)
    level = np.log(rolling(yf, k_lvl, "mean") + eps)
    burst = np.log(rolling(yf, h, "max") + eps)
    growth = level - shift(level, k_g)
    future = shift(rolling(logy, h, "max"), -h)
    rows = [("level", [level[-1]]), ("trend", [growth[-1], burst[-1]])]
    day, week = lags
    if day is not None:
        rows.append(("daily", [shift(future, day)[-1], shift(level, day)[-1]]))
        if week is not None:
            rows.append(("weekly", [shift(future, week)[-1], shift(level, week)[-1]]))
    return [(name, [float(v) for v in vals]) for name, vals in rows]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(0.0, 1e4), st.just(math.nan)), min_size=1, max_size=400),
    k_lvl=st.integers(1, 6),
    k_g=st.integers(1, 8),
    h=st.integers(1, 12),
    day=st.one_of(st.none(), st.integers(1, 200)),
    week=st.integers(1, 350),
)
def test_the_latest_row_is_the_arrays_last_row(
    values: list[float], k_lvl: int, k_g: int, h: int, day: int | None, week: int
) -> None:
    yf = np.array(values)
    lags = (day, week if day is not None else None)
    tod = np.array([1.234])
    got = latest_features(yf, 1e-3, (k_lvl, k_g, h), lags, tod)
    want = last_rows(yf, 1e-3, k_lvl, k_g, h, lags)
    got_rows = [(name, vals) for name, vals in got if name != "time_of_day"]
    assert [name for name, _ in got_rows] == [name for name, _ in want]
    for (_, g), (_, w) in zip(got_rows, want, strict=True):
        assert all(same(a, b) for a, b in zip(g, w, strict=True)), (g, w)
    if day is not None:  # the time of day goes with the daily group
        assert [name for name, _ in got][2] == "time_of_day"
        assert dict(got)["time_of_day"] == [
            float(np.sin(tod)[0]),
            float(np.cos(tod)[0]),
            float(np.sin(2 * tod)[0]),
            float(np.cos(2 * tod)[0]),
        ]
