"""Fault class 8 (issue 22, item 2): every input is bounded. A recursive YAML anchor, an alias bomb, a 20 MB
config or schedule file, ``backtest --trace /dev/zero``, a 5000-digit ``--pin`` and ``--capacity-per-node inf``
each end in one clear line (no traceback) within seconds — never a hang.

Each run is a real process with a generous hard timeout (``code is None`` means it had to be killed): the
bound is "it returns", not a timed assertion.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests import REPO
from tests.fixtures.faults import Run, run_forescale

TIMEOUT = 60.0  # generous: a hang is what fails, not a slow machine
RECURSIVE = {
    "list": "pools: &a [*a]\n",
    "mapping": "nomad: &n {address: *n}\npools: []\n",
    "nested": "pools:\n  - &p\n    name: ocr\n    children: [*p]\n",
}
BOMB = "".join(
    [
        "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
        *(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True)),
        "pools: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
    ]
)
MINIMAL = {
    "nomad": {"address": "http://127.0.0.1:9"},
    "pools": [{"name": "ocr", "query": "q", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 30}],
}


def one_line_error(run: Run, *words: str) -> None:
    assert run.code is not None, f"killed after {TIMEOUT:.0f} s: it hung\n{run.err[-2000:]}"
    assert run.code in (1, 2), run.text
    assert "Traceback" not in run.err, run.err
    lines = [line for line in (run.out + run.err).splitlines() if line.strip()]
    assert len(lines) <= 4, lines  # the error line(s): "error: …" or "error: invalid config F:" + one problem
    assert all(len(line) < 400 for line in lines), lines
    for word in words:
        assert word in run.text, run.text


@pytest.mark.parametrize("kind", list(RECURSIVE))
@pytest.mark.parametrize("command", [["config", "check"], ["plan", "-c"], ["tick", "-c"], ["run", "-c"]])
def test_a_recursive_anchor_is_one_line_in_every_command(tmp_path: Path, kind: str, command: list[str]) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text(RECURSIVE[kind], encoding="utf-8")
    run = run_forescale([*command, str(path)], timeout=TIMEOUT)
    one_line_error(run, str(path), "anchor is used inside itself")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text(BOMB, encoding="utf-8")
    run = run_forescale(["config", "check", str(path)], timeout=TIMEOUT)
    one_line_error(run, "aliases expand to more than")


def test_a_20_mb_config_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "forescale.yaml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("pools:\n")
        for i in range(440_000):  # ~20 MB of valid-looking YAML
            fh.write(f"  - {{name: p{i}, query: q, capacity: {i}}}\n")
    assert path.stat().st_size > 20_000_000
    run = run_forescale(["config", "check", str(path)], timeout=TIMEOUT)
    one_line_error(run, "larger than 1024 KiB")


def test_a_20_mb_schedule_file_is_refused_by_size(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.yaml"
    with schedule.open("w", encoding="utf-8") as fh:
        fh.write("rules:\n")
        rule = "  - {name: r%d, pool: ocr, timezone: UTC, days: mon-fri, window: '09:00-18:00', min: 5}\n"
        for i in range(260_000):
            fh.write(rule % i)
    assert schedule.stat().st_size > 20_000_000
    cfg = {**MINIMAL, "overrides": {"schedule_file": str(schedule)}}
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run = run_forescale(["config", "check", str(path)], timeout=TIMEOUT)
    one_line_error(run, "schedule.yaml", "larger than 1024 KiB")


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_config_is_refused(special: str) -> None:
    run = run_forescale(["config", "check", special], timeout=TIMEOUT)
    one_line_error(run, special)


def test_backtest_of_dev_zero_is_one_line() -> None:
    run = run_forescale(["backtest", "--trace", "/dev/zero", "--capacity-per-node", "5"], timeout=TIMEOUT)
    one_line_error(run, "/dev/zero", "binary data")


def test_backtest_of_an_endless_line_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,requests\n" + "9" * 200_000, encoding="utf-8")
    run = run_forescale(["backtest", "--trace", str(path), "--capacity-per-node", "5"], timeout=TIMEOUT)
    one_line_error(run, "longer than 4096 characters")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "0"])
def test_backtest_capacity_per_node_must_be_a_finite_positive_number(value: str) -> None:
    trace = str(REPO / "data" / "nasa_http_1995_jul_5min.csv")
    run = run_forescale(["backtest", "--trace", trace, "--capacity-per-node", value], timeout=TIMEOUT)
    one_line_error(run, "--capacity-per-node", "is not a number from")


def test_a_non_finite_request_count_in_a_trace_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,requests\n2026-01-01T00:00:00Z,5\n2026-01-01T00:01:00Z,inf\n", encoding="utf-8")
    run = run_forescale(["backtest", "--trace", str(path), "--capacity-per-node", "5"], timeout=TIMEOUT)
    one_line_error(run, "line 3", "is not a count")


@pytest.mark.parametrize("digits", [5000, 40])
def test_a_huge_pin_is_one_line(tmp_path: Path, digits: int) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "audit_log": str(tmp_path / "audit.jsonl")}), encoding="utf-8")
    args = ["override", "set", "ocr", "--pin", "9" * digits, "--for", "1h", "-r", "x", "-c", str(path), "--wait", "0"]
    run = run_forescale(args, timeout=TIMEOUT)
    one_line_error(run, "--pin", "far more nodes than any pool can hold")
    assert "9" * 40 not in run.text
