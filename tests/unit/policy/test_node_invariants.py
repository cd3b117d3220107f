"""The node step never retires working capacity on bad data (issue 20's invariants), pure plan and reconciler.

Each test is a fault that took a serving pool towards zero before: desired above the machines that exist,
machines that never register, machines of another node pool in the group, unreadable allocation lists, two
nodes claiming one machine, stopping allocations counted as work.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from autoscaler.core.nodes import GroupState, LaunchFailure, Machine, MachineGroup, MigrateSpec, NodeAllocation
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.directory import parse_allocs
from autoscaler.policy.nodes import NodeMemoryView, Slot, classify, drain_deadline, node_drain_deadline, plan_nodes
from tests.helpers import T0, make_config, pool_dict
from tests.node_doubles import NODES, Directory, Provider, alloc, group, node, ours, reconciler


def pool(**nodes: Any) -> PoolConfig:
    return make_config(pool_dict("ocr", nodes={**NODES, **nodes})).pool("ocr")


def writes(plan: Any) -> list[tuple[str, str | None]]:
    return [(a.kind, a.node or a.machine) for a in plan.actions if a.kind in ("drain", "terminate", "reap", "cancel")]


def plan_failed(plan: Any) -> bool:
    return any(a.status == "failed" for a in plan.actions)


def removed(plan: Any) -> set[str]:
    return {a.machine for a in plan.actions if a.kind in ("drain", "terminate", "reap") and a.machine}


# -- desired above the machines that exist ---------------------------------------------------------------------


def test_desired_above_the_machines_that_exist_never_drains_a_working_node() -> None:
    # A GPU capacity shortage: the group asks for 13, 3 instances exist and serve; the count rises 3 → 5.
    busy = [node(i, alloc()) for i in (1, 2, 3)]
    shortage = group(3, desired=13, hi=20)
    plan = plan_nodes(pool(), 5, shortage, busy, T0)
    assert writes(plan) == [] and not [a for a in plan.actions if a.kind == "scale_out"]
    assert any("launch(es) in flight cover" in a.message for a in plan.actions)
    # Even when the count drops below what exists, scale-in counts the 3 serving machines, not desired 13.
    plan = plan_nodes(pool(), 3, shortage, busy, T0)
    assert writes(plan) == []
    plan = plan_nodes(pool(), 2, shortage, busy, T0)
    assert writes(plan) == []  # each runs an allocation of the pool's job the count still wants
    emptied = [node(1, alloc()), node(2, alloc()), node(3)]  # Nomad stopped one allocation for the lower count
    plan = plan_nodes(pool(), 2, shortage, emptied, T0)
    assert writes(plan) == [("drain", "gpu-3")]  # one node: 3 serving − 2 wanted, never 13 − 2


def test_a_failed_launch_is_reported_once_lowers_desired_to_what_exists_and_backs_off() -> None:
    failure = LaunchFailure(
        "act-1", "We currently do not have sufficient p4d.24xlarge capacity", T0, "InsufficientInstanceCapacity"
    )
    shortage = replace(group(3, desired=13, hi=20), state=GroupState(failures=(failure,)))
    busy = [node(i, alloc()) for i in (1, 2, 3)]
    plan = plan_nodes(pool(), 5, shortage, busy, T0 + timedelta(minutes=2), memory=NodeMemoryView(last_ask=T0))
    (cancel,) = [a for a in plan.actions if a.kind == "cancel"]
    assert cancel.capacity == 3 and "cancel 10 launch(es) that never came" in cancel.message
    (problem,) = [a for a in plan.actions if a.kind == "problem"]
    assert problem.status == "failed" and "InsufficientInstanceCapacity" in problem.message
    assert problem.key is not None and problem.key.startswith("launch_failed:")
    assert plan.backoff is not None and plan.backoff.until == T0 + timedelta(minutes=7)
    assert plan.capacity_after == 3 and removed(plan) == set()
    # While backing off, the missing machines are not asked for again; after it, they are (delay doubles if
    # the next launch fails too).
    whole = group(3, desired=3, hi=20)
    mem = NodeMemoryView(last_ask=T0, backoff=plan.backoff, reported=frozenset({problem.key}))
    held = plan_nodes(pool(), 5, whole, busy, T0 + timedelta(minutes=4), memory=mem)
    assert not [a for a in held.actions if a.kind == "scale_out"]
    assert any("backs off until" in a.message for a in held.actions)
    retry = plan_nodes(pool(), 5, whole, busy, T0 + timedelta(minutes=8), memory=mem)
    assert [a.capacity for a in retry.actions if a.kind == "scale_out"] == [5]


def test_a_gap_that_outlasts_launch_timeout_is_a_failed_launch() -> None:
    # A command provider answers desired 100 with 3 machines and says nothing else: no existing machine goes.
    p = pool(launch_timeout="15m")
    lying = group(3, desired=100, hi=200)
    busy = [node(i, alloc()) for i in (1, 2, 3)]
    early = plan_nodes(p, 3, lying, busy, T0 + timedelta(minutes=10), memory=NodeMemoryView(gap_since=T0))
    assert writes(early) == [] and early.gap_since == T0
    late = plan_nodes(p, 3, lying, busy, T0 + timedelta(minutes=16), memory=NodeMemoryView(gap_since=T0))
    assert writes(late) == [("cancel", None)] and late.capacity_after == 3
    assert any("97 machine(s) asked for have not appeared after 16m" in a.message for a in late.actions)


# -- machines that never register --------------------------------------------------------------------------------


def test_machines_that_never_register_never_cost_the_working_node() -> None:
    # 12 new instances never join Nomad (a broken image); the count then drops 13 → 2.
    veteran = Machine("i-1", "InService", T0 - timedelta(days=1))
    machines = (veteran, *(Machine(f"i-{i}", "InService", T0) for i in range(2, 14)))
    g = MachineGroup("ASG gpu-ocr", 13, machines, 0, 20)
    only = [node(1, alloc())]
    before_bound = plan_nodes(pool(), 2, g, only, T0 + timedelta(minutes=10))
    assert writes(before_bound) == []  # booting machines are never drained; the working node is the only serving
    after_bound = plan_nodes(pool(), 2, g, only, T0 + timedelta(minutes=21))
    assert "i-1" not in removed(after_bound)
    assert sorted(m for k, m in writes(after_bound) if k == "reap") == sorted(f"i-{i}" for i in range(2, 14))
    assert after_bound.capacity_after == 1 and after_bound.backoff is not None


def test_a_node_down_past_its_bound_is_reaped_only_when_nothing_on_it_may_still_run() -> None:
    p = pool(down_timeout="10m")
    gone = replace(node(2, alloc("lost")), status="down", status_since=T0)
    maybe = replace(node(3, alloc("unknown")), status="disconnected", status_since=T0)
    nodes = [node(1, alloc()), gone, maybe]
    early = plan_nodes(p, 3, group(3), nodes, T0 + timedelta(minutes=5))
    assert writes(early) == []
    late = plan_nodes(p, 3, group(3), nodes, T0 + timedelta(minutes=11))
    assert writes(late) == [("reap", "gpu-2")]  # drained (kept ineligible) and terminated
    kept = [a for a in late.actions if a.kind == "problem" and a.machine == "i-3"]
    assert kept and "may still run (unknown)" in kept[0].message and "kept" in kept[0].message


# -- machines of another node pool ---------------------------------------------------------------------------


def test_machines_of_another_node_pool_are_never_counted_drained_or_reaped() -> None:
    # 5 machines in the group: 3 are this pool's busy nodes, 2 belong to node pool "cpu".
    mine = [node(i, alloc()) for i in (1, 2, 3)]
    foreign = [replace(node(i, alloc(job="etl")), node_pool="cpu", in_pool=False) for i in (4, 5)]
    plan = plan_nodes(pool(), 3, group(5), mine + foreign, T0 + timedelta(hours=2))
    assert writes(plan) == []
    keys = sorted(a.key or "" for a in plan.actions if a.kind == "warning" and a.status == "new")
    assert keys == ["foreign:i-4", "foreign:i-5"] and not plan_failed(plan)
    assert "outside this pool's filters (node_pool=gpu)" in plan.actions[-1].message


def test_a_dead_node_of_another_node_pool_keeps_its_machine_foreign() -> None:
    """Found by the property test: a machine whose only node is a *down* node of another pool is not this pool's
    dead machine — it is never reaped, however long it has been down."""
    mine = [node(i, alloc()) for i in (1, 2)]
    dead = replace(node(3), node_pool="cpu", in_pool=False, status="down", status_since=T0)
    plan = plan_nodes(pool(down_timeout="10m"), 2, group(3), [*mine, dead], T0 + timedelta(hours=2))
    assert writes(plan) == []
    assert [a.key for a in plan.actions if a.kind == "warning"] == ["foreign:i-3"]


def test_the_reconciler_reads_outside_nodes_only_for_unexplained_machines() -> None:
    prov = Provider(5)
    mine = [node(i, alloc()) for i in (1, 2, 3)]
    foreign = [replace(node(i, alloc(job="etl")), node_pool="cpu") for i in (4, 5)]
    nomad = Directory(mine, others=foreign)
    report = reconciler(prov, nomad).step(pool(), 3, T0 + timedelta(hours=2))
    assert report is not None and ("others", "") in nomad.calls
    assert (
        not report.of_kind("drain") and not report.of_kind("reap") and prov.machines == [f"i-{i}" for i in range(1, 6)]
    )
    assert report.counts is not None and (report.counts.serving, report.counts.foreign) == (3, 2)
    whole = Directory([node(i, alloc()) for i in (1, 2, 3)], others=foreign)
    reconciler(Provider(3), whole).step(pool(), 3, T0)
    assert ("others", "") not in whole.calls  # every machine has a node of the pool: nothing else is read


# -- unreadable allocation lists ------------------------------------------------------------------------------


def test_bad_allocation_answers_make_a_node_busy() -> None:
    for body in (None, {}, [{"ID": "a1", "JobID": "ml-ocr"}], "oops", [None]):
        allocs, error = parse_allocs(body)
        assert error is not None and "unreadable" in error, body
    allocs, error = parse_allocs([{"ID": "a1", "JobID": "ml-ocr", "TaskGroup": "workers", "ClientStatus": "unknown"}])
    assert error is None and allocs[0].live  # unknown: the client disconnected, the work may still run
    assert parse_allocs([]) == ((), None)


def test_a_retiring_node_with_an_unreadable_or_unknown_allocation_is_never_terminated() -> None:
    unreadable = replace(ours(node(2), complete=True), allocations_error="its allocation list is unreadable (null)")
    unknown = ours(node(3, alloc("unknown")), complete=True)
    plan = plan_nodes(pool(), 1, group(3), [node(1, alloc()), unreadable, unknown], T0)
    assert writes(plan) == []
    assert plan.draining == 2


def test_a_serving_node_with_an_unreadable_list_is_never_drained() -> None:
    bad = replace(node(2), allocations_error="its allocation list is unreadable ({})")
    plan = plan_nodes(pool(), 1, group(2), [node(1, alloc()), bad], T0)
    assert writes(plan) == []  # gpu-2 is unreadable, and gpu-1 runs the pool's allocation
    assert any(a.kind == "problem" and a.key == "unreadable:node-2" for a in plan.actions)
    assert any(
        "only 0 of 1 excess machine(s) can be drained now: i-1 runs ml-ocr/workers, i-2 allocations "
        "unreadable" in a.message
        for a in plan.actions
    )


# -- two nodes claiming one machine ---------------------------------------------------------------------------


def test_two_live_nodes_claiming_one_machine_keep_it() -> None:
    busy = node(1, alloc(), create_index=10)
    clone = node(7, machine_id="i-1", create_index=99)  # empty, newer: the one least_busy would pick
    plan = plan_nodes(pool(), 1, group(2), [busy, clone, node(2, alloc())], T0)
    assert "i-1" not in removed(plan)
    (problem,) = [a for a in plan.actions if a.kind == "problem"]
    assert problem.key == "ambiguous:i-1" and "claimed by 2 live nodes (gpu-1, gpu-7)" in problem.message
    # A down node on the same machine is history, not a claim.
    old = replace(node(7, machine_id="i-1"), status="down")
    plan = plan_nodes(pool(), 1, group(2), [node(1), old, node(2, alloc())], T0)
    assert writes(plan) == [("drain", "gpu-1")]


# -- selection counts work, not stopping allocations -----------------------------------------------------------


def test_selection_counts_only_allocations_still_wanted() -> None:
    stopping = NodeAllocation("a-stop", "ml-ocr", "workers", "running", desired_status="stop")
    wanted = NodeAllocation("a-run", "ml-ocr", "workers", "running")
    nodes = [node(1, stopping, create_index=5), node(2, wanted, create_index=50)]
    plan = plan_nodes(pool(), 1, group(2), nodes, T0)
    (drain,) = [a for a in plan.actions if a.kind == "drain"]
    assert drain.node == "gpu-1" and "least busy (0 live allocations, 1 stopping)" in drain.message


# -- drain deadline follows Nomad's drainer --------------------------------------------------------------------


def test_drain_deadline_follows_max_parallel_health_and_kill_timeout() -> None:
    spec = MigrateSpec(max_parallel=2, healthy_deadline_s=300, stop_s=30)
    allocs = [NodeAllocation(f"a{i}", "api", "web", "running", migrate=spec) for i in range(4)]
    with_jobspec = make_config(pool_dict("ocr", jobspec={"image": "ocr:1", "kill_timeout": "30s"}, nodes=NODES)).pool(
        "ocr"
    )
    deadline, why = node_drain_deadline(with_jobspec, node(1, *allocs))
    assert deadline == timedelta(seconds=2 * 30 + 1 * 300 + 60)
    assert "4 allocation(s) of api/web draining, 2 at a time: 2 × 30s stop + 1 × 5m healthy" in why
    small, basis = node_drain_deadline(with_jobspec, node(1, allocs[0]))
    assert small == drain_deadline(with_jobspec) < deadline and basis == "pool default"  # never below it
    one_by_one = [replace(a, migrate=replace(spec, max_parallel=1)) for a in allocs]
    longer, _ = node_drain_deadline(pool(), node(1, *one_by_one))
    assert longer == timedelta(seconds=4 * 30 + 3 * 300 + 60)  # 18m: above the 15m default
    configured, basis = node_drain_deadline(pool(drain_deadline="2m"), node(1, *allocs))
    assert configured == timedelta(minutes=2) and basis == "configured"
    plan = plan_nodes(with_jobspec, 0, group(1), [node(1, *allocs)], T0)
    (drain,) = [a for a in plan.actions if a.kind == "drain"]
    assert drain.deadline_s == 420 and "deadline 7m" in drain.message
    # Nomad's drainer batches a task group across every draining node: two nodes with 2 each drain one by one.
    one = replace(spec, max_parallel=1)
    pair = [
        node(i, *(NodeAllocation(f"a{i}{j}", "api", "web", "running", migrate=one) for j in range(2))) for i in (1, 2)
    ]
    plan = plan_nodes(with_jobspec, 0, group(2), pair, T0)
    deadlines = {a.deadline_s for a in plan.actions if a.kind == "drain"}
    assert deadlines == {4 * 30 + 3 * 300 + 60}


# -- group state -----------------------------------------------------------------------------------------------


def test_an_instance_refresh_pauses_every_removal_and_says_why() -> None:
    refresh = "instance refresh r-1 is InProgress (40% done): AWS replaces instances itself"
    g = replace(group(4), state=GroupState(scale_in_blocked=refresh))
    dead = MachineGroup("ASG gpu-ocr", 5, (*g.machines, Machine("i-9", "InService", T0)), 0, 10, g.state)
    nodes = [node(1, alloc()), node(2), node(3), ours(node(4), complete=True)]
    plan = plan_nodes(pool(), 1, dead, nodes, T0 + timedelta(hours=1))
    assert writes(plan) == []
    assert any(refresh in a.message for a in plan.actions)


def test_protected_and_unhealthy_machines_are_never_selected() -> None:
    g = group(3)
    g = replace(
        g, machines=(replace(g.machines[0], protected=True), replace(g.machines[1], healthy=False), g.machines[2])
    )
    plan = plan_nodes(pool(), 1, g, [node(1), node(2), node(3, alloc(job="exporter"))], T0)
    assert writes(plan) == [("drain", "gpu-3")]
    assert any("protected from scale-in" in n for n in plan.notes) and any("unhealthy" in n for n in plan.notes)


def test_group_warnings_are_reported_once_and_shown_every_time() -> None:
    warning = ("az_rebalance:gpu-ocr", "AZRebalance is active across 3 zones")
    g = replace(group(2), state=GroupState(warnings=(warning,)))
    first = plan_nodes(pool(), 2, g, [node(1), node(2)], T0)
    (told,) = [a for a in first.actions if a.kind == "warning"]
    assert told.status == "new" and told.reported_once and not plan_failed(first)  # a risk, not a failure
    again = plan_nodes(pool(), 2, g, [node(1), node(2)], T0, memory=NodeMemoryView(reported=frozenset({warning[0]})))
    assert [(a.status, a.message) for a in again.actions if a.kind == "warning"] == [("info", warning[1])]


def test_launch_suspended_holds_scale_out_with_the_reason() -> None:
    g = replace(group(2), state=GroupState(scale_out_blocked="the group's Launch process is suspended"))
    plan = plan_nodes(pool(), 4, g, [node(1), node(2)], T0)
    assert not [a for a in plan.actions if a.kind == "scale_out"]
    assert any("not asked: the group's Launch process is suspended" in a.message for a in plan.actions)


# -- lead_time: auto and the gauges ---------------------------------------------------------------------------


def test_lead_time_auto_learns_nothing_from_machines_that_were_already_serving() -> None:
    p = make_config(pool_dict("ocr", lead_time="auto", nodes={**NODES, "min_boots": 3})).pool("ocr")
    prov = Provider(6)
    nomad = Directory([node(i, alloc(since=T0 - timedelta(days=1))) for i in range(1, 7)])
    rec = reconciler(prov, nomad)
    for minutes in (0, 20, 40):
        report = rec.step(p, 6, T0 + timedelta(minutes=minutes))
        assert report is not None and report.boots == ()
    lead = rec.lead_time(p, T0 + timedelta(hours=1))
    assert lead.source == "initial" and lead.seconds == 600 and lead.boots == 0


def test_counts_follow_a_same_tick_drain_and_terminate() -> None:
    prov = Provider(4)
    nomad = Directory([node(1, alloc()), node(2), node(3), node(4)])
    report = reconciler(prov, nomad).step(pool(), 1, T0)
    assert report is not None and not report.failed
    assert report.counts is not None
    c = report.counts
    assert (c.capacity, c.machines, c.serving, c.draining) == (1, 1, 1, 0)
    assert (report.machines, report.nodes_ready, report.draining) == (1, 1, 0)


def test_classify_gives_every_present_machine_exactly_one_slot() -> None:
    g = MachineGroup(
        "g",
        6,
        (
            Machine("i-1"),
            Machine("i-2"),
            Machine("i-3", phase="standby", state="Standby"),
            Machine("i-4", phase="leaving", state="Terminating"),
            Machine("i-5", launched_at=T0),
            Machine("i-6", launched_at=T0 - timedelta(hours=1)),
        ),
    )
    fleet = classify(g, [node(1), ours(node(2), complete=False)], T0, 1200)
    kinds: dict[str, str] = {s.machine.id: s.kind for s in fleet.slots}
    assert kinds == {"i-1": "serving", "i-2": "retiring", "i-3": "standby", "i-5": "booting", "i-6": "unregistered"}
    assert all(isinstance(s, Slot) for s in fleet.slots)


def test_no_machine_is_reaped_while_nodes_of_the_pool_name_no_machine_of_the_group() -> None:
    # A wrong nodes.instance_attribute (or a client whose fingerprint lacks it): the pool's three busy nodes name
    # hostnames, so the group's three machines look like they never registered. Reaping them would kill the pool.
    g = group(3, launched_at=T0 - timedelta(hours=2))
    wrong = [node(i, alloc(), machine_id=f"ip-10-0-0-{i}") for i in (1, 2, 3)]
    plan = plan_nodes(pool(), 3, g, wrong, T0)
    assert writes(plan) == [] and not [a for a in plan.actions if a.kind == "scale_out"]
    kept = [a for a in plan.actions if a.kind == "problem" and (a.key or "").startswith("no_node:")]
    assert len(kept) == 3 and all("the node ↔ machine mapping may be wrong" in a.message for a in kept)
    unnamed = [node(i, alloc(), machine_id=None) for i in (1, 2, 3)]
    assert writes(plan_nodes(pool(), 3, g, unnamed, T0)) == []
    # Down nodes of machines that are gone are history, not a doubt: a dead machine is reaped as usual.
    history = [replace(node(7, machine_id="i-gone"), status="down"), node(1, alloc()), node(2, alloc())]
    assert writes(plan_nodes(pool(), 3, g, history, T0)) == [("reap", "i-3")]
