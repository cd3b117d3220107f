"""The node step, explained everywhere: plan table and lines, JSON, console, Slack alerts and events, audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from autoscaler.cli.output import explanations, print_report, report_json
from autoscaler.core.report import TickReport
from autoscaler.notify.alerts import FailureTracker, digest, problems_of
from autoscaler.notify.audit import AuditLog
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.notify.slack.messages import MessageFormatter
from autoscaler.policy.tick import run_tick
from tests.fakes.slack import validate_blocks
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict
from tests.node_doubles import NODES, Directory, Provider, alloc, node, reconciler


def deps_for(rate: float, machines: int = 2, **provider_kw: object):  # type: ignore[no-untyped-def]
    cfg = make_config(pool_dict("ocr", nodes=NODES), pool_dict("asr"))
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: rate, cfg.pool("asr").query: 10.0}))
    prov = Provider(machines, hi=20)
    for key, value in provider_kw.items():
        setattr(prov, key, value)
    deps.nodes = reconciler(prov, Directory([node(i, alloc()) for i in range(1, machines + 1)]))
    return deps, cfg, prov


def test_plan_shows_machines_and_boot_columns_and_would_lines() -> None:
    deps, _cfg, prov = deps_for(100.0)
    report = run_tick(deps, dry_run=True)
    console = Console(width=120, record=True)
    print_report(console, report, "plan", as_json=False)
    text = console.export_text()
    assert "machines" in text and "boot" in text
    ocr_row = next(line for line in text.splitlines() if line.startswith("│ ocr"))
    assert "2 → 13" in ocr_row
    asr_row = next(line for line in text.splitlines() if line.startswith("│ asr"))
    assert "—" in asr_row  # a fixed-fleet pool has no machines column value
    lines = explanations(report)
    assert any(line.startswith("ocr: machines: would ask ASG gpu-ocr for 11 machine(s)") for line in lines)
    assert any("lead time 10m (configured)" in line for line in lines)
    assert prov.calls == []  # a plan never asks for machines
    data = json.loads(report_json(report))
    ocr = next(p for p in data["pools"] if p["pool"] == "ocr")
    assert ocr["nodes"]["capacity_after"] == 13 and ocr["nodes"]["actions"][0]["kind"] == "scale_out"


def test_console_audit_and_slack_tell_what_the_machines_did(tmp_path: Path) -> None:
    deps, cfg, _prov = deps_for(100.0)
    report = run_tick(deps)
    console = Console(width=200, record=True)
    ConsoleNotifier(console).notify(report)
    out = console.export_text()
    assert "nodes.scale_out ask ASG gpu-ocr for 11 machine(s): capacity 2 → 13" in out
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record_tick(report)
    records = list(log.records())
    decision = next(r for r in records if r["type"] == "decision" and r["pool"] == "ocr")
    assert decision["nodes"]["capacity_before"] == 2 and decision["nodes"]["capacity_after"] == 13
    assert any(r["type"] == "nodes.scale_out" for r in records)
    formatter = MessageFormatter(cfg)
    message = formatter.tick(digest(report, FailureTracker(timedelta(hours=1)), T0))
    assert message is not None
    validate_blocks(list(message.blocks))
    assert "nodes scale out (ocr): ask ASG gpu-ocr for 11 machine(s)" in message.text
    assert "ASG gpu-ocr: 2 → 13 machines" in json.dumps(message.blocks, ensure_ascii=False)


def test_machine_failures_alert_and_recover_one_time_problems_are_events() -> None:
    deps, cfg, prov = deps_for(100.0)
    prov.fail = "describe"
    report = run_tick(deps)
    (ocr, _asr) = report.outcomes
    assert ocr.status == "applied"  # the count was applied; the machines were not touched
    (problem,) = problems_of(ocr)
    assert problem.kind == "failed" and problem.cause.startswith("machines: cannot read machines/nodes")
    tracker = FailureTracker(timedelta(hours=1))
    message = MessageFormatter(cfg).tick(digest(report, tracker, T0))
    assert message is not None and "machines not shrunk on an error" in message.text
    prov.fail = None
    recovered = run_tick(deps)
    dig = digest(recovered, tracker, T0 + timedelta(minutes=20))
    assert [r.outcome.pool for r in dig.recoveries] == ["ocr"]


def test_a_one_time_problem_is_an_event_not_an_alert() -> None:
    deps, _cfg, _prov = deps_for(15.0, machines=2)
    deps.nodes.directory.nodes["node-9"] = node(9, machine_id=None)  # type: ignore[union-attr]
    report = run_tick(deps)
    ocr = report.outcomes[0]
    assert ocr.nodes is not None and ocr.nodes.failed
    assert problems_of(ocr) == ()
    assert [e.kind for e in report.events] == ["nodes.problem"]
    assert "has no attribute unique.platform.aws.instance-id" in report.events[0].message
    again = run_tick(deps)
    assert again.events == () and not again.outcomes[0].nodes.failed  # type: ignore[union-attr]
    empty = TickReport(T0, ())
    assert empty.events == ()
