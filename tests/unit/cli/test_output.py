"""How plan/tick show a report: compact numbers in the table, every reason in full below it."""

from __future__ import annotations

import json
from dataclasses import replace

from rich.console import Console

from autoscaler.cli.output import explanations, placed_cell, print_report, report_json, shaped_by
from autoscaler.policy.tick import run_tick
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict


def report():  # type: ignore[no-untyped-def]
    cfg = make_config(pool_dict("ocr", max=10), pool_dict("face-match"))
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0}, broken={cfg.pool("face-match").query})
    return run_tick(make_deps(cfg, metrics), dry_run=True)


def test_shaped_by_names_each_clamp_with_its_count() -> None:
    ocr, face = report().outcomes
    assert shaped_by(ocr.decision) == "pool max 10"  # type: ignore[arg-type]
    assert shaped_by(face.decision) == "—"  # type: ignore[arg-type]


def test_every_reason_is_printed_in_full_below_the_table() -> None:
    lines = explanations(report())
    assert lines[0].startswith("[bold]ocr[/]: forecast 100.0 rps peak")
    assert "clamped to pool max 10 (wanted 13)" in lines[0]
    assert "metrics unavailable (connection refused (test))" in lines[1]


def test_the_table_fits_80_columns_without_cutting_numbers() -> None:
    console = Console(width=80, record=True)
    print_report(console, report(), "plan", as_json=False)
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    ocr_row = next(line for line in text.splitlines() if line.startswith("│ ocr"))
    cells = [c.strip() for c in ocr_row.split("│")[2:7]]
    assert cells == ["2", "2", "100", "100", "13"]  # now, placed, fcst, obs, need


def test_placed_cell_shows_what_nomad_cannot_place_yet() -> None:
    ocr = report().outcomes[0].decision
    assert ocr is not None
    assert placed_cell(replace(ocr, placed=10, queued=2)) == "10+2q"
    assert placed_cell(replace(ocr, placed=10, queued=0)) == "10"
    assert placed_cell(replace(ocr, placed=None, queued=None)) == "—"


def test_json_carries_the_whole_decision() -> None:
    data = json.loads(report_json(report()))
    ocr = data["pools"][0]
    assert data["dry_run"] is True
    assert ocr["decision"]["desired"] == 10
    assert [r["code"] for r in ocr["decision"]["reasons"]] == ["forecast", "observed", "pool_max"]


def test_off_shadow_and_unknown_count_rows() -> None:
    from autoscaler.core.clock import ManualClock
    from autoscaler.core.errors import NomadUnavailable
    from autoscaler.targets.simulated import SimulatedCluster
    from tests.helpers import T0

    class HalfReachable(SimulatedCluster):
        def status(self, pool):  # type: ignore[no-untyped-def]
            if pool.name == "face":
                raise NomadUnavailable("cannot reach Nomad at http://127.0.0.1:1 (from $NOMAD_ADDR)")
            return super().status(pool)

    cfg = make_config(pool_dict("ocr", mode="shadow"), pool_dict("asr", mode="off"), pool_dict("face"))
    clock = ManualClock(T0)
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("face").query: 50.0})
    rep = run_tick(make_deps(cfg, metrics, target=HalfReachable(clock, {"ocr": 2, "face": 2}), clock=clock))
    console = Console(width=200, record=True)
    print_report(console, rep, "tick", as_json=False)
    text = console.export_text()
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]] for line in text.splitlines()
            if line.startswith("│ ")}
    assert rows["ocr"][-1] == "shadow: would scale" and rows["ocr"][-2] == "up"
    assert rows["asr"] == ["", "", "", "", "", "mode: off", "", "", "off"]
    assert rows["face"][:5] == ["?", "", "50", "50", "7"] and rows["face"][-1] == "failed"  # the forecast shows
    assert "face: forecast 50 rps peak" in text and "(current count unknown: nothing decided)" in text
    assert "ocr: shadow (mode: shadow): would scale 2 → 13; Nomad not changed" in text
    data = json.loads(report_json(rep))
    face = data["pools"][2]
    assert face["decision"] is None and face["estimate"]["need"] == 7 and face["status"] == "failed"


def test_a_degraded_forecast_is_marked_in_the_table_and_explained() -> None:
    rep = report()
    ocr = rep.outcomes[0]
    why = "a gap in the metrics from 09:00 UTC to 12:00 UTC (3h) within the last 35m"
    d = replace(ocr.decision, degraded=why)  # type: ignore[type-var]
    d = replace(d, reasons=(*d.reasons, type(d.reasons[0])("degraded", f"degraded: {why}; never scales in on it", 2)))
    rep = replace(rep, outcomes=(replace(ocr, decision=d), *rep.outcomes[1:]))
    console = Console(width=160, record=True)
    print_report(console, rep, "plan", as_json=False)
    text = console.export_text()
    assert "100 (degraded)" in text
    assert f"degraded: {why}" in text
    assert json.loads(report_json(rep))["pools"][0]["decision"]["degraded"] == why


def test_an_applied_change_names_what_nomad_answered() -> None:
    """The evaluation id (the target's note) is what an operator looks up in Nomad: it is printed below the table."""
    ocr, face = report().outcomes
    applied = replace(ocr, status="applied", note="eval 116f3ede")
    lines = explanations(replace(report(), outcomes=[applied, face]))
    assert "ocr: applied: eval 116f3ede" in lines
    assert not any("applied:" in line for line in explanations(report()))
