"""The screen's jump test (``_any_jump``) answers exactly what the range maxima over every window answer."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.policy.screen import _any_jump, window_peaks


def full_answer(t: np.ndarray, v: np.ndarray, window: float, factor: float, floor: float) -> bool:
    return bool(len(t) > 1 and np.any(v[1:] > factor * np.maximum(window_peaks(t, v, window)[1:], floor)))


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.sampled_from([60.0, 60.0, 60.0, 300.0, 4000.0]), min_size=1, max_size=150),
    values=st.lists(st.floats(0.0, 1000.0), min_size=150, max_size=150),
    window=st.sampled_from([120.0, 600.0, 3600.0]),
    factor=st.sampled_from([1.5, 3.0, 10.0]),
    floor=st.sampled_from([0.0, 1.0, 50.0]),
)
def test_the_fast_jump_test_agrees_with_the_range_maxima(
    steps: list[float], values: list[float], window: float, factor: float, floor: float
) -> None:
    t = np.cumsum(np.array(steps))
    v = np.array(values[: len(t)])
    assert _any_jump(t, v, window, factor, floor) == full_answer(t, v, window, factor, floor)


def test_many_suspects_take_the_range_maxima_and_agree() -> None:
    """A saw-tooth: every other sample jumps over its predecessor but not over the window's peak."""
    t = np.arange(1.0, 401.0) * 60.0
    v = np.where(np.arange(400) % 2 == 0, 1.0, 10.0)
    v[0] = 10.0
    assert not _any_jump(t, v, 3600.0, 3.0, 0.0)
    assert full_answer(t, v, 3600.0, 3.0, 0.0) is False
    v[300] = 100.0  # one sample ten times the window's peak
    assert _any_jump(t, v, 3600.0, 3.0, 0.0) and full_answer(t, v, 3600.0, 3.0, 0.0)
