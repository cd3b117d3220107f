"""The node step: selection strategies, the pure plan (drain state machine), lead time, the reconciler."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import NomadUnavailable
from autoscaler.core.nodes import (
    BootSample,
)
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes import (
    NodeMemory,
    NodeMemoryView,
    NodeReconciler,
    drain_deadline,
    lead_time,
    node_events,
    plan_nodes,
    select_nodes,
)
from autoscaler.policy.tick import run_tick
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict
from tests.node_doubles import NODES, Directory, Provider, alloc, group, node, ours, reconciler


def pool(**nodes: Any) -> PoolConfig:
    return make_config(pool_dict("ocr", nodes={**NODES, **nodes})).pool("ocr")


def kinds(plan: Any) -> list[tuple[str, str | None]]:
    return [(a.kind, a.node or a.machine) for a in plan.actions if a.status != "info" and a.kind != "problem"]


# -- selection ------------------------------------------------------------------------------------------------


def test_least_busy_picks_fewest_allocations_then_newest() -> None:
    nodes = [node(1, alloc()), node(2), node(3, alloc(), alloc("pending")), node(4)]
    picked = select_nodes(nodes, 2, "least_busy", ignore_system=False)
    assert [n.name for n, _ in picked] == ["gpu-4", "gpu-2"]  # both empty: newest (create index) first
    assert "least busy (0 live allocations)" in picked[0][1] and "next candidate gpu-1 has 1" in picked[1][1]


def test_newest_uses_the_create_index_not_the_list_order() -> None:
    nodes = [node(9, create_index=5), node(1, alloc(), create_index=50), node(5, create_index=20)]
    assert [n.name for n, _ in select_nodes(nodes, 1, "newest", False)] == ["gpu-1"]


def test_empty_first_ignores_system_jobs_when_asked() -> None:
    system = alloc(job="node-exporter", job_type="system")
    nodes = [node(1, system, create_index=10), node(2, alloc(), create_index=99), node(3, system, alloc())]
    picked = select_nodes(nodes, 2, "empty_first", ignore_system=True)
    assert [n.name for n, _ in picked] == ["gpu-1", "gpu-2"]
    assert picked[0][1].startswith("empty (no live allocation, system jobs ignored)")
    with pytest.raises(ValueError, match="unknown selection strategy"):
        select_nodes(nodes, 1, "random", False)


# -- the plan ------------------------------------------------------------------------------------------------


def test_scale_out_asks_for_the_missing_machines_plus_spare_and_clamps_to_max() -> None:
    p = pool(spare=1)
    plan = plan_nodes(p, 5 + 1, group(3), [node(i, alloc()) for i in range(1, 4)], T0)
    (act,) = [a for a in plan.actions if a.kind == "scale_out"]
    assert act.capacity == 6 and "capacity 3 → 6 for 6 wanted (5 + 1 spare)" in act.message
    capped = plan_nodes(p, 12, group(3, hi=4), [], T0)
    assert [a.capacity for a in capped.actions if a.kind == "scale_out"] == [4]
    assert any("capped at its max size 4 (wanted 12 machines)" in a.message for a in capped.actions)
    at_max = plan_nodes(p, 12, group(4, hi=4), [], T0)
    assert not [a for a in at_max.actions if a.kind == "scale_out"]


def test_scale_out_reclaims_a_node_forescale_is_draining_before_asking_for_more() -> None:
    nodes = [node(1, alloc()), ours(node(2), complete=True), node(3, alloc())]
    plan = plan_nodes(pool(), 3, group(3), nodes, T0 + timedelta(minutes=1))
    assert kinds(plan) == [("reclaim", "gpu-2")]  # effective 2 (one retiring) → want 3: reclaim, no new machine
    plan = plan_nodes(pool(), 4, group(3), nodes, T0 + timedelta(minutes=1))
    assert kinds(plan) == [("reclaim", "gpu-2"), ("scale_out", None)]
    assert plan.capacity_after == 4


def test_a_reclaimed_node_is_back_in_service_although_nomad_keeps_its_last_drain() -> None:
    # Cancelling a drain that already completed is a no-op for LastDrain in Nomad (state_store.go
    # updateNodeDrainImpl: drainNoop); only the eligibility changes. It must never be terminated for it.
    back = replace(ours(node(2), complete=True), eligible=True)
    plan = plan_nodes(pool(), 2, group(2), [node(1, alloc()), back], T0)
    assert kinds(plan) == []
    assert plan.nodes_ready == 2


def test_scale_in_drains_exact_nodes_of_the_group_and_never_others() -> None:
    outsider = node(7, machine_id="i-other")  # in the node pool, but its machine is not in this group
    nodes = [node(1, alloc()), node(2), node(3, alloc()), node(4), outsider]
    plan = plan_nodes(pool(), 2, group(4), nodes, T0)
    assert kinds(plan) == [("drain", "gpu-4"), ("drain", "gpu-2")]
    assert "deadline 15m" in plan.actions[0].message
    assert all(a.node != "gpu-7" for a in plan.actions)


def test_scale_in_respects_min_size_and_held_decisions() -> None:
    nodes = [node(i) for i in range(1, 5)]
    plan = plan_nodes(pool(), 1, group(4, lo=3), nodes, T0)
    assert kinds(plan) == [("drain", "gpu-4")]
    assert any("min size 3 stops scale-in" in a.message for a in plan.actions)
    held = plan_nodes(pool(), 1, group(4), nodes, T0, scale_in_allowed=False)
    assert kinds(held) == [] and any("never shrink blind" in a.message for a in held.actions)


def test_only_ready_eligible_nodes_are_drained() -> None:
    # Excess is counted from serving nodes only: a booting node and one someone else cordoned are not capacity.
    nodes = [node(1, status="initializing"), node(2, eligible=False), node(3, alloc(job="exporter"))]
    plan = plan_nodes(pool(), 0, group(3), nodes, T0)
    assert kinds(plan) == [("drain", "gpu-3")]
    unreadable = replace(node(4), allocations=(), allocations_error="its allocation list is unreadable (null)")
    plan = plan_nodes(pool(), 0, group(4), [*nodes, unreadable], T0)
    assert kinds(plan) == [("drain", "gpu-3")]
    assert any(
        "only 1 of 2 excess machine(s) can be drained now: i-4 allocations unreadable" in a.message
        for a in plan.actions
    )


def test_a_drained_node_is_terminated_only_when_its_allocations_stopped() -> None:
    now = T0 + timedelta(minutes=3)
    done = ours(node(2, alloc("complete")), complete=True)
    stopping = ours(node(3, alloc("running")), complete=True)
    plan = plan_nodes(pool(purge=True), 1, group(3, desired=3), [node(1, alloc()), done, stopping], now)
    assert kinds(plan) == [("terminate", "gpu-2"), ("purge", "gpu-2")]
    term = plan.actions[0]
    assert term.machine == "i-2" and term.seconds == 180 and "drained in 3m" in term.message
    assert any(a.kind == "waiting" and a.node == "gpu-3" for a in plan.actions)
    assert plan.draining == 1


def test_ignore_system_jobs_lets_a_drain_finish_with_system_allocations() -> None:
    n = ours(node(2, alloc(job="node-exporter", job_type="system")), complete=True)
    assert kinds(plan_nodes(pool(), 1, group(2), [node(1, alloc()), n], T0)) == []
    ignoring = pool(drain_ignore_system_jobs=True)
    assert kinds(plan_nodes(ignoring, 1, group(2), [node(1, alloc()), n], T0)) == [("terminate", "gpu-2")]


def test_a_drain_that_never_finishes_fails_once_and_keeps_its_machine() -> None:
    p = pool(drain_deadline="5m", drain_grace="2m")
    stuck = ours(node(2, alloc("running")), complete=False, started=T0)
    early = plan_nodes(p, 1, group(2), [node(1, alloc()), stuck], T0 + timedelta(minutes=6))
    assert [a.kind for a in early.actions] == ["waiting"]
    late = plan_nodes(p, 1, group(2), [node(1, alloc()), stuck], T0 + timedelta(minutes=8))
    (problem,) = late.actions
    assert problem.kind == "problem" and problem.status == "failed"
    assert "did not finish within 7m" in problem.message and "its machine is kept" in problem.message
    assert not [a for a in late.actions if a.kind == "terminate"]
    again = plan_nodes(
        p,
        1,
        group(2),
        [node(1, alloc()), stuck],
        T0 + timedelta(minutes=28),
        memory=NodeMemoryView(frozenset({problem.key or ""})),
    )
    assert [a.status for a in again.actions] == ["info"]  # reported once


def test_nodes_without_the_attribute_and_machines_without_nodes_are_reported() -> None:
    p = pool(boot_timeout="10m")
    g = group(3, launched_at=T0)
    nodes = [node(1, alloc()), node(9, machine_id=None)]
    young = plan_nodes(p, 3, g, nodes, T0 + timedelta(minutes=5))
    assert [a.key for a in young.actions if a.kind == "problem"] == ["no_attribute:node-9"]
    old = plan_nodes(p, 3, g, nodes, T0 + timedelta(minutes=11))
    keys = [a.key for a in old.actions if a.kind == "problem"]
    assert keys == ["no_attribute:node-9", "no_node:i-2", "no_node:i-3"]
    # gpu-9 names no machine: it may be i-2 or i-3, so neither is reaped while it is there.
    problems = [a for a in old.actions if a.kind == "problem"]
    assert "has no ready Nomad node after 11m" in problems[-1].message and "kept" in problems[-1].message
    assert kinds(old) == []
    # Once every node of the pool names its machine, dead machines are reaped (never a serving one), and
    # scale-out backs off.
    reaped = plan_nodes(p, 3, g, nodes[:1], T0 + timedelta(minutes=11))
    assert kinds(reaped) == [("reap", "i-2"), ("reap", "i-3")]
    assert reaped.backoff is not None and "never registered" in reaped.backoff.reason
    kept = plan_nodes(pool(boot_timeout="10m", reap_dead=False), 3, g, nodes[:1], T0 + timedelta(minutes=11))
    assert kinds(kept) == [] and any("kept (nodes.reap_dead is off)" in a.message for a in kept.actions)


def test_without_a_wanted_count_only_started_work_is_finished() -> None:
    nodes = [node(1), node(2), ours(node(3), complete=True)]
    plan = plan_nodes(pool(), None, group(3), nodes, T0)
    assert kinds(plan) == [("terminate", "gpu-3")]


def test_boots_are_sampled_once_from_launch_to_allocation_running() -> None:
    p = pool()
    g = group(2, launched_at=T0)
    running = alloc(since=T0 + timedelta(minutes=6))
    nodes = [node(1, running), node(2, alloc("pending"))]
    seen = frozenset({"i-1", "i-2"})  # forescale saw both booting (no ready node yet)
    plan = plan_nodes(
        p, 2, g, nodes, T0 + timedelta(minutes=7), memory=NodeMemoryView(first_seen={"i-1": T0}, booting_seen=seen)
    )
    (boot,) = plan.boots
    assert (boot.machine, boot.seconds) == ("i-1", 360)
    again = plan_nodes(
        p, 2, g, nodes, T0 + timedelta(minutes=8), memory=NodeMemoryView(sampled=frozenset({"i-1"}), booting_seen=seen)
    )
    assert again.boots == ()
    veteran = plan_nodes(p, 2, g, nodes, T0 + timedelta(minutes=7), memory=NodeMemoryView(first_seen={"i-1": T0}))
    assert veteran.boots == ()  # serving when first seen: its boot happened before forescale watched


def test_boot_start_without_launch_time_is_the_last_ask() -> None:
    g = group(1)
    nodes = [node(1, alloc(since=T0 + timedelta(minutes=9)))]
    mem = NodeMemoryView(first_seen={"i-1": T0 + timedelta(minutes=2)}, last_ask=T0, booting_seen=frozenset({"i-1"}))
    (boot,) = plan_nodes(pool(), 1, g, nodes, T0 + timedelta(minutes=10), memory=mem).boots
    assert boot.asked_at == T0 and boot.seconds == 540


# -- lead time and deadline ----------------------------------------------------------------------------------


def boots(*minutes: float) -> list[BootSample]:
    return [BootSample("ocr", f"i-{i}", f"gpu-{i}", T0, T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]


def test_lead_time_configured_initial_and_learned() -> None:
    fixed = lead_time(pool(), boots(5, 6), T0 + timedelta(hours=1))
    assert (fixed.source, fixed.seconds, fixed.boots) == ("configured", 600, 2)
    auto = make_config(pool_dict("ocr", lead_time="auto", lead_time_initial="12m", nodes={**NODES, "min_boots": 3}))
    p = auto.pool("ocr")
    initial = lead_time(p, boots(5, 6), T0 + timedelta(hours=1))
    assert (initial.source, initial.seconds) == ("initial", 720)
    learned = lead_time(p, boots(4, 5, 6, 20), T0 + timedelta(hours=1))
    assert learned.source == "learned" and learned.seconds == pytest.approx(60 * 17.9)
    assert learned.p50_s == pytest.approx(330)
    assert "p95 of 4 recent boots" in learned.explain() and "boots p50 5m30s" in learned.explain()
    stale = lead_time(p, boots(4, 5, 6, 20), T0 + timedelta(days=8))
    assert stale.source == "initial" and stale.boots == 0


def test_drain_deadline_follows_the_jobspec() -> None:
    assert drain_deadline(pool()) == timedelta(minutes=15)
    assert drain_deadline(pool(drain_deadline="3m")) == timedelta(minutes=3)
    spec = {"image": "ocr:1", "kill_timeout": "2m", "shutdown_delay": "10s"}
    p = make_config(pool_dict("ocr", jobspec=spec, nodes=NODES)).pool("ocr")
    assert drain_deadline(p) == timedelta(minutes=3, seconds=10)


# -- the reconciler with in-memory ports -------------------------------------------------------------------


def test_empty_nodes_are_drained_and_terminated_in_the_same_tick_busy_ones_later() -> None:
    prov = Provider(4)
    nomad = Directory([node(1, alloc()), node(2), node(3, alloc(job="exporter")), node(4)])
    rec = reconciler(prov, nomad)
    report = rec.step(pool(purge=True), 1, T0)
    assert report is not None and not report.failed
    assert nomad.calls[:3] == [("drain", "node-4"), ("drain", "node-2"), ("drain", "node-3")]
    assert prov.calls == [("terminate", ["i-2", "i-4"])]
    assert sorted(prov.machines) == ["i-1", "i-3"]  # gpu-3 still has its allocation: it waits
    assert ("purge", "node-4") in nomad.calls and "node-3" in nomad.nodes
    assert (report.capacity_before, report.capacity_after) == (4, 2)
    # Nomad finishes gpu-3's drain; a later tick (or a restarted forescale) terminates it.
    nomad.nodes["node-3"] = replace(
        nomad.nodes["node-3"], allocations=(alloc("complete"),), draining=False, last_drain_status="complete"
    )
    fresh = reconciler(prov, nomad)  # nothing in memory: the drain state is read back from Nomad
    later = fresh.step(pool(), 1, T0 + timedelta(minutes=20))
    assert later is not None and [a.machine for a in later.of_kind("terminate")] == ["i-3"]
    assert prov.machines == ["i-1"]


def test_dry_run_plans_without_calling_anything() -> None:
    prov = Provider(2)
    nomad = Directory([node(1), node(2)])
    report = reconciler(prov, nomad).step(pool(), 4, T0, dry_run=True)
    assert report is not None and report.dry_run and prov.calls == [] and nomad.calls == []
    assert report.of_kind("scale_out")[0].status == "planned" and report.capacity_after == 4


def test_provider_errors_change_nothing_and_terminate_failures_keep_the_node() -> None:
    prov = Provider(2)
    prov.fail = "describe"
    nomad = Directory([node(1), node(2)])
    report = reconciler(prov, nomad).step(pool(), 0, T0)
    assert report is not None and report.failed and "throttled" in (report.error or "")
    assert nomad.calls == []
    prov.fail = None
    prov.refuse = {"i-2"}
    report = reconciler(prov, nomad).step(pool(purge=True), 1, T0)
    assert report is not None and report.failed
    (term,) = report.of_kind("terminate")
    assert term.status == "failed" and term.error == "AccessDenied"
    (purge,) = report.of_kind("purge")
    assert purge.status == "failed" and "not terminated" in (purge.error or "")
    assert "node-2" in nomad.nodes and prov.machines == ["i-1", "i-2"]


def test_problems_are_reported_once_and_events_explain_the_actions() -> None:
    prov = Provider(2)
    nomad = Directory([node(1, alloc()), node(2, alloc()), node(9, machine_id=None)])
    rec = reconciler(prov, nomad)
    first = rec.step(pool(), 3, T0 + timedelta(hours=1))
    assert first is not None
    events = node_events("ocr", first, T0)
    assert [e.kind for e in events] == ["nodes.scale_out", "nodes.problem"]
    assert "ask ASG gpu-ocr for 1 machine(s): capacity 2 → 3" in events[0].message
    # i-3 never registers: past boot_timeout it is reaped (reported once), and scale-out backs off — once
    # node-9 names its machine (until then a machine "without a node" could be node-9's).
    del nomad.nodes["node-9"]
    second = rec.step(pool(), 3, T0 + timedelta(hours=2))
    assert second is not None
    assert [e.kind for e in node_events("ocr", second, T0)] == ["nodes.reap", "nodes.problem"]
    assert [e.details.get("key") for e in node_events("ocr", second, T0) if e.kind == "nodes.problem"] == [
        "no_node:i-3"
    ]
    assert prov.machines == ["i-1", "i-2"] and prov.desired == 2
    assert second.backoff is not None and second.backoff.until == T0 + timedelta(hours=2, minutes=5)
    assert any("backs off until" in a.message for a in second.actions)
    during = rec.step(pool(), 3, T0 + timedelta(hours=2, minutes=2))
    assert during is not None and node_events("ocr", during, T0) == [] and prov.desired == 2
    # After the back-off the pool asks again; node-9 (no attribute) was reported once only.
    third = rec.step(pool(), 3, T0 + timedelta(hours=3))
    assert third is not None and [e.kind for e in node_events("ocr", third, T0)] == ["nodes.scale_out"]


def test_tick_applies_the_count_then_the_machines_follow(tmp_path: Any) -> None:
    cfg = make_config(pool_dict("ocr", nodes=NODES))
    prov = Provider(2, hi=20)
    nomad = Directory([node(1, alloc()), node(2, alloc())])
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}))
    deps.nodes = reconciler(prov, nomad)
    report = run_tick(deps)
    (outcome,) = report.outcomes
    assert outcome.status == "applied" and outcome.decision is not None and outcome.decision.desired == 13
    assert outcome.nodes is not None and prov.calls == [("scale_out", 13)]
    assert [e.kind for e in report.events] == ["nodes.scale_out"]
    plan = run_tick(deps, dry_run=True)
    assert plan.events == () and len(prov.calls) == 1


def test_memory_survives_restart_through_the_audit_log(tmp_path: Any) -> None:
    from autoscaler.core.report import TickReport
    from autoscaler.notify.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    prov = Provider(1)
    nomad = Directory([node(1, alloc(since=T0 + timedelta(minutes=4))), node(9, machine_id=None)])
    memory = NodeMemory(first_seen={"ocr": {"i-1": T0}}, booting_seen={"ocr": {"i-1"}})
    rec = NodeReconciler({"ocr": prov}, nomad, ManualClock(T0), memory)  # type: ignore[dict-item]
    report = rec.step(pool(), 1, T0 + timedelta(minutes=5))
    assert report is not None and [b.seconds for b in report.boots] == [240]
    log.record_tick(TickReport(T0, (), tuple(node_events("ocr", report, T0))))
    boots_back, reported = log.node_history(T0 - timedelta(days=1))
    assert [b.seconds for b in boots_back] == [240]
    assert reported == {"no_attribute:node-9"}
    _ = NomadUnavailable  # the directory's errors are NomadError (a ForescaleError): covered by provider errors
