"""Issue 22, item 10: one vocabulary for a kept count. "unchanged": the policy keeps it; "held: no usable
metrics": forescale is blind and keeps it. Before, the daemon said "(hold)" for the first, the table "held"
for the second, and `override set` printed "stays at 14 (unchanged)" during a Prometheus outage."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from autoscaler.cli.effect import _ticked
from autoscaler.cli.output import report_table
from autoscaler.core.decision import Decision, Reason
from autoscaler.core.report import PoolOutcome, TickReport
from autoscaler.notify.console import format_outcome

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
BLIND = Decision(
    "ocr",
    T0,
    14,
    14,
    (Reason("held", "held at 14: metrics unavailable (connection refused)"),),
    held=True,
    hold_cause="connection refused",
)
CALM = Decision("ocr", T0, 14, 14, (Reason("forecast", "forecast 100 rps → 14 nodes"),))
PINNED_BLIND = Decision("ocr", T0, 14, 40, (Reason("manual_pin", "pinned to 40"),), held=True, hold_cause="x")


def text(report: TickReport, outcome: PoolOutcome) -> str:
    console = Console(width=300, record=True)
    console.print(format_outcome(report, outcome))
    return console.export_text()


def test_the_decision_says_which_kind_of_kept_count() -> None:
    assert BLIND.counts_text() == "14 held: no usable metrics"
    assert CALM.counts_text() == "14 unchanged"
    assert PINNED_BLIND.counts_text().startswith("14 → 40 (held: no usable metrics")
    assert "(hold)" not in BLIND.explain() + CALM.explain()


def test_the_daemon_console_uses_the_same_words() -> None:
    report = TickReport(at=T0, outcomes=(), events=())
    blind = text(report, PoolOutcome("ocr", "unchanged", BLIND))
    calm = text(report, PoolOutcome("ocr", "unchanged", CALM))
    assert "ocr: 14 held: no usable metrics" in blind and "(hold)" not in blind
    assert "ocr: 14 unchanged" in calm and "held" not in calm


def test_the_plan_table_uses_the_same_words() -> None:
    report = TickReport(
        at=T0, outcomes=(PoolOutcome("ocr", "unchanged", BLIND), PoolOutcome("asr", "unchanged", CALM)), events=()
    )
    console = Console(width=300, record=True)
    console.print(report_table(report, "plan"))
    table = console.export_text()
    assert "held: no metrics" in table and "unchanged" in table and " hold " not in table


def test_override_set_during_an_outage_says_the_pool_is_held_blind() -> None:
    doc = {
        "pools": {
            "ocr": {
                "last_tick": T0.isoformat(),
                "current": 14,
                "desired": 14,
                "status": "unchanged",
                "held": True,
                "hold_cause": "Prometheus: connection refused",
            }
        }
    }
    said = _ticked(doc, ["ocr"], T0)
    assert said is not None
    assert "held at 14: no usable metrics (Prometheus: connection refused)" in said
    assert "stays at 14 (unchanged)" not in said
    doc["pools"]["ocr"]["held"] = False
    assert "stays at 14 (unchanged)" in (_ticked(doc, ["ocr"], T0) or "")
