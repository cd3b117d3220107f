"""The count model against the strict fake Nomad (issue 10 §1): decide steps from the group's *desired* count,
placed and queued are reported, a scale is sent once per change (not once per tick while GPU nodes boot), and
workers queued too long raise one warning per episode — in the daemon and across one-shot cron ticks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from autoscaler.core.clock import ManualClock
from autoscaler.core.report import TickReport
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.notify.audit import AuditLog
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.policy.placement import PLACED, UNPLACEABLE
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.targets.nomad import NomadTarget
from autoscaler.wiring import build_deps
from tests.fakes.nomad import FakeNomad
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict

JOB, GROUP, SCALE = "ml-ocr", "workers", "/v1/job/ml-ocr/scale"
TICK = timedelta(minutes=20)


def gpu_pool(fake: FakeNomad, nodes: int, count: int) -> list[dict[str, Any]]:
    """A finite fleet of ``nodes`` T4 clients and a GPU job (one allocation per node) at ``count``."""
    fake.auto_nodes = False
    booted = [fake.add_node(f"gpu-{i}", node_pool="gpu") for i in range(nodes)]
    fake.add_job(JOB, groups={GROUP: count}, scaling={GROUP: (1, 50)}, gpus=1, distinct_hosts=True, node_pool="gpu")
    return booted


def boot(fake: FakeNomad, n: int) -> None:
    """``n`` more GPU machines finish booting and register as Nomad nodes."""
    start = len(fake.node_list())
    for i in range(n):
        fake.add_node(f"gpu-{start + i}", node_pool="gpu")


def nomad_deps(settings: NomadSettings, rate: float, **pool: Any) -> tuple[TickDeps, ManualClock]:
    cfg = make_config(pool_dict("ocr", **pool))
    clock = ManualClock(T0)
    target = NomadTarget(settings, sleep=lambda _s: None)
    return make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: rate}), target=target, clock=clock), clock


def ticks(deps: TickDeps, clock: ManualClock, n: int) -> list[TickReport]:
    out = []
    for _ in range(n):
        out.append(run_tick(deps))
        clock.advance(TICK)
    return out


def summary(report: TickReport) -> tuple[str, int, int, int | None, int | None]:
    (o,) = report.outcomes
    assert o.decision is not None
    return o.status, o.decision.current, o.decision.desired, o.decision.placed, o.decision.queued


def test_booting_nodes_get_one_scale_call_not_one_per_tick(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings
) -> None:
    gpu_pool(fake_nomad, nodes=2, count=2)
    deps, clock = nomad_deps(nomad_settings, rate=40.0)  # 40 rps at 8 rps/node → 5 nodes
    version = fake_nomad.job(JOB)["Version"]  # type: ignore[index]
    reports = ticks(deps, clock, 4)  # the 3 new GPU machines are still booting for all four ticks
    assert [summary(r) for r in reports] == [
        ("applied", 2, 5, 2, 0),
        ("unchanged", 5, 5, 2, 3),  # desired 5 already: placed 2, queued 3 → nothing sent
        ("unchanged", 5, 5, 2, 3),
        ("unchanged", 5, 5, 2, 3),
    ]
    assert len(fake_nomad.requests_to("POST", SCALE)) == 1, "one scale call, not one per tick"
    assert fake_nomad.job(JOB)["Version"] == version + 1  # type: ignore[index]
    assert fake_nomad.queued(JOB, GROUP) == 3

    boot(fake_nomad, 3)  # the machines register: Nomad places the queued allocations itself
    assert summary(run_tick(deps)) == ("unchanged", 5, 5, 5, 0)
    assert len(fake_nomad.requests_to("POST", SCALE)) == 1


def test_step_limit_steps_from_the_desired_count_never_lowers_it(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings
) -> None:
    gpu_pool(fake_nomad, nodes=2, count=2)
    deps, clock = nomad_deps(nomad_settings, rate=80.0, max_step_up=2)  # wants 10, +2 per tick
    reports = ticks(deps, clock, 3)
    # With "current = placed" (2, nodes booting) each tick would have asked for 2 + 2 = 4 again.
    assert [summary(r)[:3] for r in reports] == [("applied", 2, 4), ("applied", 4, 6), ("applied", 6, 8)]
    posts = fake_nomad.requests_to("POST", SCALE)
    assert [p.body["Count"] for p in posts] == [4, 6, 8]
    assert [p.body["Meta"]["placed"] for p in posts] == [2, 2, 2]


def test_queued_too_long_warns_once_per_episode(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, tmp_path: Path
) -> None:
    gpu_pool(fake_nomad, nodes=2, count=2)
    deps, clock = nomad_deps(nomad_settings, rate=40.0)  # lead_time 10m → warn after 20m queued
    console = Console(record=True, width=200)
    deps.notifiers = [ConsoleNotifier(console)]
    deps.audit = AuditLog(tmp_path / "audit.jsonl")
    reports = ticks(deps, clock, 4)
    events = [[(e.kind, e.message) for e in r.events] for r in reports]
    assert events[0] == [] and events[1] == []  # 0 queued, then queued for the first time at T0+20m
    ((kind, message),) = events[2]
    assert kind == UNPLACEABLE
    assert message.startswith("3 workers cannot be placed: no eligible GPU node (2 of 2 node(s) in pool 'gpu'")
    assert "ruled out by distinct_hosts); queued for 20m (since 12:20 UTC, longer than 20m); 5 desired, 2 placed" in (
        message
    )
    assert events[3] == [], "announced once per episode"
    printed = console.export_text()
    assert "ml-ocr" not in printed and "ocr: 5 unchanged (2 placed, 3 queued)" in printed
    assert printed.count("pool_unplaceable 3 workers cannot be placed") == 1
    audited = [r for r in deps.audit.records() if r["type"] == UNPLACEABLE]  # type: ignore[union-attr]
    assert len(audited) == 1 and audited[0]["details"]["queued"] == 3 and audited[0]["pool"] == "ocr"
    boot(fake_nomad, 3)
    (event,) = run_tick(deps).events  # at T0+80m
    assert event.kind == PLACED and event.message.startswith("all 5 workers placed again after 1h")


def test_a_short_boot_raises_nothing(fake_nomad: FakeNomad, nomad_settings: NomadSettings) -> None:
    gpu_pool(fake_nomad, nodes=2, count=2)
    deps, clock = nomad_deps(nomad_settings, rate=40.0)
    ticks(deps, clock, 2)  # scaled, then queued at the next tick
    boot(fake_nomad, 3)
    assert [r.events for r in ticks(deps, clock, 3)] == [(), (), ()]


def test_cron_ticks_warn_once_too(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, tmp_path: Path, monkeypatch: Any
) -> None:
    gpu_pool(fake_nomad, nodes=2, count=2)
    cfg = make_config(
        pool_dict("ocr", queued_warning_after="30m"),
        nomad={"address": fake_nomad.address, "token_env": "FORESCALE_TEST_NOMAD_TOKEN", "timeout": "2s"},
        audit_log=str(tmp_path / "audit.jsonl"),
        overrides={"path": str(tmp_path / "overrides.json")},
    )
    clock = ManualClock(T0)
    kinds = []
    for _ in range(6):  # six one-shot `forescale tick` runs: every run starts from the audit log
        deps = build_deps(cfg, clock=clock, notifiers=[])
        deps.metrics = FlatMetrics({cfg.pool("ocr").query: 40.0})
        kinds.append([e.kind for e in run_tick(deps).events])
        clock.advance(TICK)
    # queued from T0+20m; 30m later is T0+50m, so the run at T0+60m warns, and only that one.
    assert kinds == [[], [], [], [UNPLACEABLE], [], []]
    records = list(AuditLog(tmp_path / "audit.jsonl").records())
    assert [r["type"] for r in records].count(UNPLACEABLE) == 1
    assert records[-1]["decision"]["placed"] == 2 and records[-1]["decision"]["queued"] == 3
    assert len(fake_nomad.requests_to("POST", SCALE)) == 1
