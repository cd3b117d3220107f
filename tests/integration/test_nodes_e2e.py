"""End to end: forecast → ASG desired up → nodes register → queued allocations placed → traffic drops → drain →
exact instances terminated → ASG desired down, on the strict stand-ins (tests/node_world.py): launches take
minutes, stopped allocations take their kill_timeout, drains follow Nomad's drainer, a gone machine's node goes
down through missed heartbeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from autoscaler.core.clock import ManualClock
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws
from tests.node_world import BOOT, GROUP, JOB, World, aws_cloud


@pytest.fixture
def world(
    strict_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:  # fmt: skip
    yield World(strict_nomad, aws_cloud(aws, asg_proxy, asg_clock), tmp_path, monkeypatch)


def test_machines_follow_the_forecast_up_and_down(world: World) -> None:
    fake = world.fake
    # 1. 100 rps at 10 rps/node × 0.8 → 13 nodes: the count goes up and the ASG is asked for 12 machines.
    step = world.tick()
    assert step.outcome.status == "applied" and step.outcome.decision.desired == 13
    assert not step.nodes.failed, step.nodes.failures()
    (ask,) = step.done("scale_out")
    assert "capacity 1 → 13" in ask.message
    assert world.desired() == 13 and len(world.instances()) == 13
    assert step.events() == ["nodes.scale_out"]
    assert len(world.running()) == 1  # the other 12 allocations wait for nodes: queued in the job summary
    summary = requests.get(f"{fake.address}/v1/job/{JOB}/summary", timeout=5).json()
    assert summary["Summary"][GROUP]["Queued"] == 12
    # The next tick sees the machines Pending (AWS launches take minutes): booting, nothing asked again.
    world.advance(timedelta(minutes=1))
    step = world.tick()
    assert step.nodes.counts.booting == 12 and not step.nodes.of_kind("scale_out")

    # 2. Six minutes after launch the machines' clients register and Nomad places the queued work.
    world.advance(BOOT)
    running = world.running()
    assert len(running) == 13 and sorted(running.values()) == world.instances()

    # 3. The next tick holds, and has measured 12 boots (launch → allocation running) for lead_time: auto.
    world.advance(timedelta(minutes=13))
    step = world.tick()
    assert step.outcome.status == "unchanged"
    boots = step.nodes.boots
    assert len(boots) == 12 and all(360 <= b.seconds <= 400 for b in boots)
    lead = step.nodes.lead_time
    assert lead is not None and lead.source == "learned" and 360 <= lead.seconds <= 400
    assert step.events() == ["nodes.boot"]

    # 4. Traffic drops to 15 rps → 2 nodes. The count goes down first (Nomad stops 11 allocations: they take their
    #    kill_timeout), then the node step drains exactly the 11 emptying nodes — never one whose allocation is
    #    still wanted — and, once their drains complete, terminates exactly their instances.
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    keep = world.running()
    step = world.tick()
    assert step.outcome.status == "applied" and step.outcome.decision.desired == 2
    assert not step.nodes.failed, step.nodes.failures()
    drained = step.done("drain")
    assert len(drained) == 11 and all("least busy (0 live allocations, 1 stopping)" in a.message for a in drained)
    survivors = world.running()
    assert len(survivors) == 2 and set(survivors) <= set(keep)
    assert {a.node_id for a in drained}.isdisjoint(survivors)
    world.advance(timedelta(minutes=2))  # the daemon's follow-up tick: the stopped allocations are complete now
    step = world.tick()
    terminated = step.done("terminate")
    assert len(terminated) == 11 and not step.nodes.failed
    world.advance(timedelta(minutes=2))
    assert world.instances() == sorted(survivors.values())  # exactly the drained instances went
    assert world.desired() == 2
    gone = {a.machine for a in terminated}
    assert gone == set(keep.values()) - set(survivors.values())  # the machines of the emptied nodes, no other
    for action in drained:
        node = fake.node(action.node_id or "")
        assert node is not None and node["SchedulingEligibility"] == "ineligible"
        assert node["LastDrain"]["Status"] == "complete" and node["LastDrain"]["Meta"]["drained_by"] == "forescale"
    world.advance(timedelta(minutes=1))  # the instances are gone: their clients missed their heartbeats
    assert all(fake.node(a.node_id or "")["Status"] == "down" for a in drained)  # type: ignore[index]
    assert (step.nodes.capacity_before, step.nodes.capacity_after) == (13, 2)
    assert step.nodes.counts.machines == 2 and step.nodes.counts.draining == 0  # the gauges right after the step

    # 5. A restarted forescale finds nothing left to do and has kept the boots (audit log).
    world.deps = world.new_forescale()
    world.advance(timedelta(minutes=20))
    step = world.tick()
    assert step.outcome.status == "unchanged" and not step.nodes.failed
    assert not [a for a in step.nodes.actions if a.status in ("done", "failed")]
    assert step.nodes.lead_time is not None and step.nodes.lead_time.source == "learned"
    assert world.desired() == 2


def test_an_aws_failure_never_shrinks_the_fleet(world: World) -> None:
    world.tick()
    world.advance(timedelta(minutes=20))
    world.tick()
    before = world.instances()
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    world.tick()  # drains the 11 emptying nodes
    world.advance(timedelta(minutes=2))
    world.proxy.fail_next("deny", 11, action="TerminateInstanceInAutoScalingGroup")
    step = world.tick()
    failed = [a for a in step.nodes.actions if a.status == "failed"]
    assert failed and all(a.kind == "terminate" for a in failed) and len(failed) == 11
    assert "TerminateInstanceInAutoScalingGroup was denied" in (failed[0].error or "")
    world.advance(timedelta(minutes=2))
    assert world.instances() == before and world.desired() == 13
    # The drained nodes stay drained; the next tick terminates them.
    world.advance(timedelta(minutes=20))
    step = world.tick()
    assert not step.nodes.failed and len(step.done("terminate")) == 11
    assert world.desired() == 2


def test_busy_drains_resume_after_a_restart_and_a_stuck_one_fails_once(
    strict_nomad: FakeNomad, aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cloud = aws_cloud(aws, asg_proxy, asg_clock)
    world = World(strict_nomad, cloud, tmp_path, monkeypatch, drain_deadline="10m", drain_grace="5m")
    fake = world.fake
    world.tick()
    world.advance(BOOT + timedelta(minutes=1))
    # Every GPU node also runs an exporter service (its tasks take 30s to stop, all may migrate at once): scale-in
    # drains are busy for a while.
    fake.add_job(
        "exporter", groups={"metrics": 13}, distinct_hosts=True, node_pool="gpu", kill_timeout=30,
        migrate_max_parallel=13,
    )  # fmt: skip
    fake.progress()
    assert len({a["NodeID"] for a in fake.allocations("exporter")}) == 13
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    step = world.tick()
    assert not step.nodes.failed, step.nodes.failures()
    drained = step.done("drain")
    assert len(drained) == 11 and all("least busy (1 live allocation" in a.message for a in drained)
    assert not step.nodes.of_kind("terminate") and step.nodes.draining == 11
    assert world.desired() == 13  # nothing is terminated before its node is drained
    stuck_node = drained[0].node_id
    stuck = next(a["ID"] for a in fake.allocations("exporter") if a["NodeID"] == stuck_node)
    fake.stuck_allocs.add(stuck)  # this one ignores its kill signal

    # forescale restarts; the drains are read back from Nomad (LastDrain.Meta) and finished.
    world.deps = world.new_forescale()
    world.advance(timedelta(minutes=6))
    step = world.tick()
    assert not step.nodes.failed
    terminated = {a.machine for a in step.done("terminate")}
    assert len(terminated) == 10 and drained[0].machine not in terminated
    assert terminated == {a.machine for a in drained[1:]}
    world.advance(timedelta(minutes=2))
    assert world.desired() == 3
    (waiting,) = step.nodes.of_kind("waiting")
    assert waiting.node_id == stuck_node and "1 live allocation(s) left" in waiting.message

    # Nomad forces the drain at its deadline (10m) but the allocation keeps running: after the grace (5m) the
    # drain is a failure, reported once, and the machine is kept.
    world.advance(timedelta(minutes=10))
    step = world.tick()
    problems = [e for e in step.report.events if e.kind == "nodes.problem"]
    assert len(problems) == 1 and "did not finish within 15m" in problems[0].message
    assert drained[0].machine in world.instances() and step.nodes.failed
    world.advance(timedelta(minutes=20))
    step = world.tick()
    assert not [e for e in step.report.events if e.kind == "nodes.problem"] and not step.nodes.failed
    assert drained[0].machine in world.instances() and world.desired() == 3
