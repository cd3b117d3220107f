"""Cooldowns from Nomad's own record: ``GET /v1/job/:id/scale`` scaling events, read by NomadTarget."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import PastAction
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.policy.tick import run_tick
from autoscaler.targets.nomad import NomadTarget, changes_from_events
from autoscaler.wiring import build_deps
from tests.fakes.nomad import FakeNomad
from tests.helpers import T0, FlatMetrics, make_config, pool_dict

JOB, GROUP = "ml-ocr", "workers"


def ns(when: object) -> int:
    return int(when.timestamp() * 1e9)  # type: ignore[attr-defined]


def test_events_become_past_actions_within_the_window() -> None:
    events = [  # newest first, as Nomad lists them
        {"Count": 9, "PreviousCount": 13, "Error": False, "Time": ns(T0 - timedelta(minutes=1)), "Meta": None},
        {"Count": 13, "PreviousCount": 13, "Error": False, "Time": ns(T0 - timedelta(minutes=2))},  # no change
        {"Count": None, "PreviousCount": 13, "Error": True, "Time": ns(T0 - timedelta(minutes=3))},  # an error
        {
            "Count": 13,
            "PreviousCount": 40,
            "Error": False,
            "Time": ns(T0 - timedelta(minutes=5)),
            "Meta": {"reasons": "forecast,observed,manual_pin"},
        },
        {"Count": 40, "PreviousCount": 2, "Error": False, "Time": ns(T0 - timedelta(hours=3))},  # too old
        {"Count": 50, "PreviousCount": 9, "Error": False, "Time": ns(T0 + timedelta(minutes=1))},  # after now
    ]
    actions = changes_from_events("ocr", events, T0 - timedelta(minutes=30), T0)
    assert actions == [
        PastAction(T0 - timedelta(minutes=5), "ocr", 40, 13, pinned=True),
        PastAction(T0 - timedelta(minutes=1), "ocr", 13, 9),
    ]


def test_a_new_process_without_audit_log_keeps_the_cooldown(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, tmp_path: Path
) -> None:
    """Tick 1 scales 2 → 13 in Nomad; tick 2 is a new process whose audit log is gone: Nomad's event still
    holds the pool in its cooldown."""
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    fake_nomad.now_ns = lambda: ns(T0)
    cfg = make_config(
        pool_dict("ocr", scale_in_cooldown="30m"),
        audit_log=str(tmp_path / "audit.jsonl"),
        overrides={"path": str(tmp_path / "overrides.json")},
    )
    clock = ManualClock(T0)
    first = build_deps(cfg, clock=clock, notifiers=[])
    first.metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    first.target = NomadTarget(nomad_settings)
    assert run_tick(first).outcomes[0].status == "applied"
    assert fake_nomad.group_count(JOB, GROUP) == 13

    (tmp_path / "audit.jsonl").unlink()  # lost (or the next cron run has another working directory)
    clock.advance(timedelta(minutes=20))
    second = build_deps(cfg, clock=clock, notifiers=[])
    second.metrics = FlatMetrics({cfg.pool("ocr").query: 10.0})
    second.target = NomadTarget(nomad_settings)
    outcome = run_tick(second).outcomes[0]
    assert outcome.status == "unchanged" and outcome.decision is not None
    assert "cooldown" in outcome.decision.reason_codes()
    assert "no scale-in before 12:30 UTC" in outcome.decision.reasons[-1].message
    assert len(fake_nomad.requests_to("GET", f"/v1/job/{JOB}/scale")) == 2  # once per process
    assert len(fake_nomad.requests_to("POST", f"/v1/job/{JOB}/scale")) == 1
