"""range_answer.decode: the documented matrix answer straight to arrays, exactly what reading it with ``json`` and
``float()`` gives; anything else read by ``json`` as before (so the source's checks and messages are unchanged)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.sources.range_answer import decode, decode_fast


def matrix(*series: list[list[Any]], status: str = "success") -> bytes:
    result = [{"metric": {"pool": f"p{i}"}, "values": values} for i, values in enumerate(series)]
    return json.dumps({"status": status, "data": {"resultType": "matrix", "result": result}}).encode()


def answer(result_type: str, result: Any) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": result_type, "result": result}}).encode()


def plain(values: list[list[Any]]) -> np.ndarray:
    """What the source reads from ``json.loads``: float() of the time and of the quoted value."""
    return np.array([[float(t), float(v)] for t, v in values], dtype=np.float64).reshape(-1, 2)


def test_a_matrix_answer_becomes_one_array_per_series() -> None:
    a = [[1733580000, "12.5"], [1733580060, "0"], [1733580120.5, "1e3"], [1733580180, "NaN"]]
    b = [[1733580000, "3"]]
    got = decode(matrix(a, b))
    assert got["status"] == "success" and got["data"]["resultType"] == "matrix"
    first, second = (s["values"] for s in got["data"]["result"])
    assert isinstance(first, np.ndarray) and first.dtype == np.float64 and first.shape == (4, 2)
    np.testing.assert_array_equal(first, plain(a))  # NaN compares equal here: the source drops it itself
    np.testing.assert_array_equal(second, plain(b))
    assert got["data"]["result"][1]["metric"] == {"pool": "p1"}


def test_an_empty_result_and_an_empty_series() -> None:
    assert decode(matrix())["data"]["result"] == []
    empty = decode(matrix([]))["data"]["result"][0]["values"]
    assert isinstance(empty, np.ndarray) and empty.shape == (0, 2)


@pytest.mark.parametrize(
    "body",
    [
        matrix([[1733580000, "+Inf"], [1733580060, "2"]]),  # Go writes +Inf; msgspec does not read it
        matrix([[1733580000, " 7"]]),  # float() reads it, msgspec does not: json as before
        answer("vector", [{"metric": {}, "value": [1, "2"]}]),
        answer("scalar", [1, "2"]),
        matrix([[1733580000, "two"]]),
        matrix([[1733580000, "1", "extra"]]),
        b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
    ],
)
def test_anything_else_is_read_by_json_as_before(body: bytes) -> None:
    assert decode(body) == json.loads(body)


def test_a_body_that_is_not_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode(b"<html>502 Bad Gateway</html>")


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
stamps = st.one_of(st.integers(0, 4_000_000_000), st.integers(0, 4_000_000_000_000).map(lambda ms: ms / 1000))


@given(st.lists(st.tuples(stamps, finite), max_size=50))
def test_the_numbers_are_exactly_floats_of_the_text(pairs: list[tuple[float, float]]) -> None:
    values = [[t, repr(v)] for t, v in pairs]  # the value as text, as Prometheus sends it
    got = decode(matrix(values))["data"]["result"][0]["values"]
    expected = plain(values)
    assert got.shape == expected.shape
    assert all(math.copysign(1, x) == math.copysign(1, y) for x, y in zip(got.ravel(), expected.ravel(), strict=True))
    np.testing.assert_array_equal(got, expected)


def test_the_hook_gives_a_response_this_json() -> None:
    response = requests.Response()
    response.status_code = 200
    response._content = matrix([[1733580000, "4.25"]])
    hooked = decode_fast(response)
    assert hooked is response and isinstance(response, requests.Response)
    np.testing.assert_array_equal(response.json()["data"]["result"][0]["values"], [[1733580000.0, 4.25]])
