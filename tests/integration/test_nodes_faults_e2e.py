"""Every machine fault of issue 20, end to end through forescale's real wiring, on the strict stand-ins
(tests/node_world.py: the strict Auto Scaling proxy in front of moto, the strict fake Nomad, one clock).

Each test is a way a serving pool reached zero before, or a group state forescale ignored: a GPU capacity
shortage, machines that never register, a node that goes down, machines of another node pool in the group, bad
allocation answers, two nodes on one machine, an instance refresh, scale-in protection, AZ rebalancing, stopping
allocations and a multi-allocation drain. The invariant under all of them: the node step never takes the running
allocations of the pool's job below what the count asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws
from tests.node_world import ASG, BOOT, World, aws_cloud

Make = Callable[..., World]


@pytest.fixture
def make(
    strict_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Make]:  # fmt: skip
    def build(**kw: Any) -> World:
        # The stories test the node step, not decide's caution: a count may drop right after it rose.
        kw.setdefault("pool_kw", {"scale_in_cooldown": "0s"})
        return World(strict_nomad, aws_cloud(aws, asg_proxy, asg_clock), tmp_path, monkeypatch, **kw)

    yield build


def settle(world: World) -> None:
    """Three machines serving three allocations at 20 rps (10 rps/node × 0.8 → 3 nodes)."""
    world.rate(20.0)
    step = world.tick()
    assert step.outcome.decision is not None and step.outcome.decision.desired == 3
    world.advance(BOOT + timedelta(minutes=1))
    assert len(world.running()) == 3


def test_a_gpu_shortage_is_reported_once_corrected_and_backed_off_never_drained(make: Make) -> None:
    world = make(machines=3)
    world.rate(20.0)
    world.tick()
    assert len(world.running()) == 3
    world.proxy.fail_launches("InsufficientInstanceCapacity")  # GPUs run out: every launch fails
    world.rate(100.0)  # → 13 nodes wanted
    step = world.tick()
    assert [a.capacity for a in step.done("scale_out")] == [13] and world.desired() == 13
    world.advance(timedelta(minutes=2))  # AWS tried and failed (its activities say so), and retries
    world.rate(40.0)  # the count falls back to 5 while desired is still 13 with 3 machines: nothing to drain
    step = world.tick()
    assert step.outcome.decision is not None and step.outcome.decision.desired == 5
    assert len(world.running()) == 3 and not step.done("drain") and not step.done("terminate")
    (cancel,) = step.done("cancel")
    assert cancel.capacity == 3 and world.desired() == 3 and len(world.instances()) == 3
    problems = [e for e in step.report.events if e.kind == "nodes.problem"]
    assert len(problems) == 1 and "InsufficientInstanceCapacity" in problems[0].message
    assert "backs off until" in problems[0].message
    # While backing off nothing is asked again; no alarm repeats.
    world.advance(timedelta(minutes=2))
    step = world.tick()
    assert not step.done("scale_out") and not [e for e in step.report.events if e.kind == "nodes.problem"]
    assert any("backs off until" in a.message for a in step.nodes.actions) and world.desired() == 3
    # After the back-off it asks again; capacity is back, so the launch succeeds and nothing is reported.
    world.proxy.clear_launch_failures()
    world.advance(timedelta(minutes=4))
    step = world.tick()
    assert [a.capacity for a in step.done("scale_out")] == [5]
    world.advance(BOOT + timedelta(minutes=1))
    assert len(world.running()) == 5 and len(world.instances()) == 5


def test_machines_that_never_register_are_reaped_and_never_the_working_node(make: Make) -> None:
    world = make(machines=1)
    step = world.tick()  # 13 wanted: 12 launched, every one with a broken image
    world.link.never_register.update(m for m in world.instances() if m not in world.link.registered)
    assert len(world.link.never_register) == 12
    working = world.instances()[0] if world.instances()[0] in world.link.registered else None
    (working,) = [m for m in world.instances() if m in world.link.registered]
    world.advance(timedelta(minutes=10))
    world.rate(15.0)  # the count drops 13 → 2
    step = world.tick()
    assert not step.done("drain") and not step.done("terminate") and len(world.running()) == 1
    world.advance(timedelta(minutes=11))  # past boot_timeout (20m)
    step = world.tick()
    reaped = {a.machine for a in step.done("reap")}
    assert reaped == world.link.never_register and working not in reaped
    problems = [e for e in step.report.events if e.kind == "nodes.problem"]
    assert len(problems) == 12 and all("has no ready Nomad node after" in e.message for e in problems)
    assert step.nodes.backoff is not None  # a broken image would fail again: scale-out backs off
    world.advance(timedelta(minutes=2))
    assert world.instances() == [working] and world.desired() == 1 and len(world.running()) == 1
    step = world.tick()
    assert not [e for e in step.report.events if e.kind == "nodes.problem"]  # once


def test_a_node_that_goes_down_is_reaped_after_its_bound_and_replaced(make: Make) -> None:
    world = make(machines=3, down_timeout="10m")
    settle(world)
    node_id, machine = next(iter(world.running().items()))
    world.fake.stop_heartbeats(node_id)  # its client died; the machine is still there
    world.advance(timedelta(minutes=1))
    assert world.fake.node(node_id)["Status"] == "down"  # type: ignore[index]
    step = world.tick()  # within down_timeout: kept, replaced by a new machine for the lost allocation
    assert not step.done("reap") and machine in world.instances()
    world.advance(timedelta(minutes=10))
    step = world.tick()
    (reap,) = step.done("reap")
    assert reap.machine == machine and "has been down for" in reap.message
    world.advance(BOOT + timedelta(minutes=1))
    world.tick()
    world.advance(BOOT + timedelta(minutes=1))
    assert machine not in world.instances() and len(world.running()) == 3


def test_machines_of_another_node_pool_are_never_retired_by_this_pool(make: Make) -> None:
    # 5 machines in the group: 2 are nodes of node pool "other", 3 are this pool's, each running an allocation.
    world = make(machines=5, foreign=2)
    world.rate(20.0)  # 3 wanted: exactly the pool's own three
    step = world.tick()
    assert len(world.running()) == 3
    assert not step.done("drain") and not step.done("reap") and not step.done("scale_out")
    warnings = [e for e in step.report.events if e.kind == "nodes.warning"]
    assert len(warnings) == 2 and all("outside this pool's filters" in e.message for e in warnings)
    world.advance(timedelta(minutes=30))  # well past boot_timeout: a foreign machine is never "dead"
    step = world.tick()
    assert not step.done("drain") and not step.done("reap") and not step.done("terminate")
    assert len(world.running()) == 3 and len(world.instances()) == 5
    assert step.nodes.counts.foreign == 2 and step.nodes.counts.serving == 3


@pytest.mark.parametrize("fault", ["null", "object", "no_client_status", "unknown"])
def test_bad_allocation_answers_keep_the_node(make: Make, fault: str) -> None:
    world = make(machines=3)
    settle(world)
    by_index = sorted(world.fake.allocations("ml-ocr"), key=lambda a: a["Name"])
    victim = by_index[-1]["NodeID"]  # Nomad stops the highest name indexes: this node empties first
    world.fake.fail_node_allocations(fault, node_id=victim)
    world.rate(5.0)  # 1 wanted: two nodes empty, one of them the victim
    step = world.tick()
    drained = {a.node_id for a in step.done("drain")}
    assert len(drained) == (2 if fault == "unknown" else 1)  # the other emptying node goes as usual
    if fault != "unknown":  # unreadable: never drained; unknown (desired stop): drained, but never terminated
        assert victim not in drained
        assert any(e.details.get("problem") == "unreadable" for e in step.report.events if e.kind == "nodes.problem")
    world.advance(timedelta(minutes=5))
    step = world.tick()
    assert victim not in {a.node_id for a in step.done("terminate")}
    assert len(world.running()) == 1
    victim_machine = next(m for m, n in world.link.registered.items() if n == victim)
    assert victim_machine in world.instances()
    world.fake.clear_node_allocation_faults()  # Nomad answers again: the machine follows the others
    world.advance(timedelta(minutes=1))
    world.tick()
    world.advance(timedelta(minutes=2))
    world.tick()
    assert victim_machine not in world.instances()


def test_two_nodes_claiming_one_machine_keep_it(make: Make) -> None:
    world = make(machines=3)
    settle(world)
    machine = world.instances()[0]
    world.fake.add_node("gpu-clone", instance_id=machine, node_pool="gpu")  # a cloned VM, empty and newest
    world.rate(10.0)  # 2 wanted
    step = world.tick()
    assert machine not in {a.machine for a in step.nodes.actions if a.kind in ("drain", "terminate", "reap")}
    (problem,) = [e for e in step.report.events if e.kind == "nodes.problem"]
    assert "claimed by 2 live nodes" in problem.message
    world.advance(timedelta(minutes=5))
    world.tick()
    assert machine in world.instances()


def test_an_instance_refresh_pauses_every_removal_and_plan_says_why(make: Make) -> None:
    world = make(machines=3)
    settle(world)
    world.asg.start_instance_refresh(AutoScalingGroupName=ASG)
    world.rate(5.0)
    plan = world.tick(dry_run=True)
    assert any("instance refresh" in a.message and "removes none" in a.message for a in plan.nodes.actions)
    step = world.tick()
    assert not step.done("drain") and not step.done("terminate") and len(world.instances()) == 3
    world.proxy.finish_instance_refresh(ASG)
    world.advance(timedelta(minutes=2))
    step = world.tick()
    assert len(step.done("drain")) == 2


def test_protected_instances_are_never_selected(make: Make) -> None:
    world = make(machines=3)
    settle(world)
    protected = world.instances()[:2]
    world.asg.set_instance_protection(AutoScalingGroupName=ASG, InstanceIds=protected, ProtectedFromScaleIn=True)
    world.rate(5.0)
    step = world.tick()
    drained = {a.machine for a in step.done("drain")}
    assert drained.isdisjoint(protected)
    assert any("protected from scale-in" in n for n in step.nodes.notes)


def test_az_rebalancing_is_warned_once_and_shown_in_every_plan(make: Make) -> None:
    world = make(machines=2, rebalance_suspended=False)
    step = world.tick()
    (warning,) = [e for e in step.report.events if e.kind == "nodes.warning"]
    assert "AZRebalance is active across 2 zones" in warning.message and "suspend-processes" in warning.message
    assert not step.nodes.failed
    world.advance(timedelta(minutes=20))
    step = world.tick()
    assert not [e for e in step.report.events if e.kind == "nodes.warning"]
    plan = world.tick(dry_run=True)
    assert any("AZRebalance" in a.message for a in plan.nodes.actions if a.kind == "warning")


def test_stopping_allocations_are_not_work_and_running_ones_never_move(make: Make) -> None:
    world = make(machines=1, job={"kill_timeout": 25, "shutdown_delay": 5}, pool_kw={"scale_in_cooldown": "0s"})
    world.rate(40.0)
    world.tick()
    world.advance(BOOT + timedelta(minutes=1))
    assert len(world.running()) == 5
    world.rate(20.0)  # 3 wanted: Nomad stops two allocations; they read running for 30 s
    keep = None
    step = world.tick()
    keep = world.running()
    drained = step.done("drain")
    assert len(drained) == 2 and all("0 live allocations, 1 stopping" in a.message for a in drained)
    assert {a.node_id for a in drained}.isdisjoint(keep) and len(keep) == 3
    world.advance(timedelta(minutes=1))
    step = world.tick()
    assert len(step.done("terminate")) == 2 and world.running() == keep


def test_a_busy_drain_follows_max_parallel_and_terminates_only_when_done(make: Make) -> None:
    world = make(machines=5)
    world.rate(40.0)  # 5 nodes, each running one allocation of the pool's job
    world.tick()
    world.advance(BOOT + timedelta(minutes=1))
    assert len(world.running()) == 5
    # Every node also runs one allocation of an API service that migrates one at a time (1m to stop); its
    # replacements cannot be placed (distinct hosts, one node left), so Nomad's drainer waits for the deadline.
    world.fake.add_job(
        "api", groups={"web": 5}, node_pool="gpu", distinct_hosts=True, migrate_max_parallel=1, kill_timeout=30,
        shutdown_delay=30,
    )  # fmt: skip
    world.fake.progress()
    world.rate(5.0)  # 1 wanted: four nodes to drain together
    step = world.tick()
    drains = step.done("drain")
    assert len(drains) == 4
    expected = 4 * 60 + 3 * 300 + 60  # four batches of one, each 1m to stop, 5m healthy deadline between
    assert {a.deadline_s for a in drains} == {expected}
    assert all("4 allocation(s) of api/web draining, 1 at a time: 4 × 1m stop + 3 × 5m healthy" in a.message
               for a in drains)  # fmt: skip
    terminated: set[str] = set()
    for _ in range(30):
        world.advance(timedelta(minutes=1))
        step = world.tick()
        for action in step.done("terminate"):
            node = world.fake.node(action.node_id or "")
            assert node is not None and node["LastDrain"]["Status"] == "complete"
            assert not [a for a in world.fake.allocations("api") if a["NodeID"] == action.node_id
                        and a["ClientStatus"] not in ("complete", "failed", "lost")]  # fmt: skip
            terminated.add(action.machine or "")
        assert len(world.running()) == 1  # the pool's one wanted allocation never moved
        if len(terminated) == 4:
            break
    assert len(terminated) == 4 and len(world.instances()) >= 1


def test_a_wrong_machine_attribute_never_reaps_the_pool(make: Make) -> None:
    # nodes.instance_attribute set to the hostname by mistake: no node names an instance of the group, so every
    # machine looks like it never registered. Reaping them after boot_timeout would take the pool to zero.
    world = make(machines=3, instance_attribute="unique.hostname")
    world.rate(20.0)
    world.tick()
    world.advance(timedelta(minutes=30))
    step = world.tick()
    assert not step.done("reap") and not step.done("drain") and len(world.instances()) == 3
    assert len(world.running()) == 3
    kept = [a for a in step.nodes.actions if a.kind == "problem" and "mapping may be wrong" in a.message]
    assert len(kept) == 3
