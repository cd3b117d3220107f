"""The node stories, end to end, on every cloud: forescale's real wiring and each provider on its official SDK
(boto3 → the strict Auto Scaling proxy in front of moto; google-cloud-compute → the fake Compute Engine;
azure-mgmt-compute → the fake Azure Resource Manager over TLS) with the strict fake Nomad, on one clock
(tests/node_world.py, tests/cloud_worlds.py). The same assertions hold for all three: the provider must not
change the policy.

* forecast → capacity up → nodes register (with that cloud's fingerprint) → queued allocations placed → boots
  measured → traffic drops → count down → the emptied nodes drained → exactly their machines deleted → the
  group's size down;
* a GPU stockout (InsufficientInstanceCapacity / ZONE_RESOURCE_POOL_EXHAUSTED / AllocationFailed): reported
  once, capacity lowered to the machines that exist (never an existing one removed), scale-out backed off;
* machines whose node never registers: reaped after boot_timeout, never the working one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cloud_worlds import AwsCloud, AzureCloud, Cloud, GceCloud
from tests.fakes.nomad import FakeNomad
from tests.node_world import BOOT, World

CLOUDS = ["aws_asg", "gce_mig", "azure_vmss"]
Make = Callable[..., World]


def make_cloud(request: pytest.FixtureRequest, kind: str) -> Cloud:
    if kind == "aws_asg":
        return AwsCloud(
            request.getfixturevalue("aws"), request.getfixturevalue("asg_proxy"), request.getfixturevalue("asg_clock")
        )
    if kind == "gce_mig":
        return GceCloud(request.getfixturevalue("gce"), request.getfixturevalue("cloud_clock"))
    return AzureCloud(request.getfixturevalue("azure"), request.getfixturevalue("cloud_clock"))


@pytest.fixture(params=CLOUDS)
def make(
    request: pytest.FixtureRequest, strict_nomad: FakeNomad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Make]:
    cloud = make_cloud(request, request.param)

    def build(**kw: Any) -> World:
        kw.setdefault("pool_kw", {"scale_in_cooldown": "0s"})
        return World(strict_nomad, cloud, tmp_path, monkeypatch, **kw)

    yield build


def test_machines_follow_the_forecast_up_and_down(make: Make) -> None:
    world = make(machines=1)
    fake = world.fake
    # 100 rps at 10 rps/node × 0.8 → 13 nodes: the group is asked for 12 more machines.
    step = world.tick()
    assert step.outcome.status == "applied" and step.outcome.decision.desired == 13
    assert not step.nodes.failed, step.nodes.failures()
    (ask,) = step.done("scale_out")
    assert "capacity 1 → 13" in ask.message and world.desired() == 13
    assert len(world.running()) == 1  # the other 12 allocations wait for nodes
    world.advance(timedelta(minutes=1))
    step = world.tick()
    assert step.nodes.counts.booting == 12 and not step.nodes.of_kind("scale_out")

    # The machines' Nomad clients register (each with its cloud's fingerprint) and Nomad places the queued work.
    world.advance(BOOT)
    running = world.running()
    assert len(running) == 13 and sorted(running.values()) == world.instances()

    world.advance(timedelta(minutes=13))
    step = world.tick()
    assert step.outcome.status == "unchanged"
    assert len(step.nodes.boots) == 12 and all(360 <= b.seconds <= 420 for b in step.nodes.boots)
    lead = step.nodes.lead_time
    assert lead is not None and lead.source == "learned" and 360 <= lead.seconds <= 420

    # Traffic drops to 15 rps → 2 nodes: the 11 emptied nodes are drained, then exactly their machines go.
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    keep = world.running()
    step = world.tick()
    assert step.outcome.decision.desired == 2 and not step.nodes.failed, step.nodes.failures()
    drained = step.done("drain")
    assert len(drained) == 11
    survivors = world.running()
    assert len(survivors) == 2 and set(survivors) <= set(keep) and {a.node_id for a in drained}.isdisjoint(survivors)
    world.advance(timedelta(minutes=2))
    step = world.tick()
    terminated = step.done("terminate")
    assert len(terminated) == 11 and not step.nodes.failed, step.nodes.failures()
    assert {a.machine for a in terminated} == set(keep.values()) - set(survivors.values())
    world.advance(timedelta(minutes=2))
    assert world.instances() == sorted(survivors.values()) and world.desired() == 2
    world.advance(timedelta(minutes=1))  # the machines are gone: their clients missed their heartbeats
    assert all(fake.node(a.node_id or "")["Status"] == "down" for a in drained)  # type: ignore[index]
    assert (step.nodes.capacity_before, step.nodes.capacity_after) == (13, 2)


def test_a_gpu_stockout_is_reported_once_corrected_and_never_drained(make: Make) -> None:
    world = make(machines=3)
    cloud = world.cloud
    world.rate(20.0)
    world.tick()
    assert len(world.running()) == 3
    cloud.fail_launches()
    world.rate(100.0)  # 13 wanted
    step = world.tick()
    assert [a.capacity for a in step.done("scale_out")] == [13] and world.desired() == 13
    world.advance(timedelta(minutes=2))  # the cloud tried and failed, and retries (or gave up on those VMs)
    world.rate(40.0)  # 5 wanted, 3 machines exist: nothing to drain
    step = world.tick()
    assert step.outcome.decision.desired == 5
    assert len(world.running()) == 3 and not step.done("drain") and not step.done("terminate")
    (cancel,) = step.done("cancel")
    assert cancel.capacity == 3 and world.desired() == 3 and len(world.instances()) == 3
    problems = [e for e in step.report.events if e.kind == "nodes.problem"]
    assert len(problems) == 1 and cloud.failure_code in problems[0].message and "backs off until" in problems[0].message
    world.advance(timedelta(minutes=2))
    step = world.tick()  # backing off: nothing asked again, no alarm repeated
    assert not step.done("scale_out") and not [e for e in step.report.events if e.kind == "nodes.problem"]
    cloud.clear_launch_failures()
    world.advance(timedelta(minutes=4))
    step = world.tick()
    assert [a.capacity for a in step.done("scale_out")] == [5]
    world.advance(BOOT + timedelta(minutes=1))
    assert len(world.running()) == 5 and len(world.instances()) == 5


def test_machines_that_never_register_are_reaped_never_the_working_node(make: Make) -> None:
    world = make(machines=1)
    world.tick()  # 13 wanted: 12 launched, every one with a broken image
    (working,) = world.link.registered  # the one machine the pool started with
    world.link.never_register.update(m.id for m in world.cloud.truth() if m.id != working)
    assert len(world.link.never_register) == 12
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
    assert step.nodes.backoff is not None
    world.advance(timedelta(minutes=2))
    assert world.instances() == [working] and world.desired() == 1 and len(world.running()) == 1
