"""The ASG → Nomad link on the strict stand-ins: machines register after their boot, a terminated machine's node
goes down through missed heartbeats (even when AZ rebalancing terminated it), foreign and never-registering
machines; and on plain moto with the default fake, the old behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.core.clock import ManualClock
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.cloud import AsgNomadLink
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws

G = "gpu-ocr"


def strict_link(nomad: FakeNomad, proxy: AsgProxy, clock: ManualClock, **kw: object) -> AsgNomadLink:
    nomad.wall_clock = lambda: clock.now().timestamp()
    nomad.auto_nodes = False
    return AsgNomadLink(nomad, None, G, clock.now, proxy=proxy, **kw)  # type: ignore[arg-type]


def test_machines_register_boot_delay_after_their_launch_in_their_zone(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, strict_nomad: FakeNomad
) -> None:
    aws.create_asg(G, desired=1)
    link = strict_link(strict_nomad, asg_proxy, asg_clock)
    (seed,) = link.sync(booted=True)
    assert strict_nomad.node(seed)["Attributes"]["unique.platform.aws.instance-id"] == aws.instance_ids(G)[0]
    asg_proxy.client("autoscaling").set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3)
    asg_clock.advance(timedelta(minutes=5, seconds=59))
    assert link.sync() == []
    asg_clock.advance(timedelta(seconds=1))
    new = link.sync()
    assert len(new) == 2
    zones = {i.id: i.az for i in asg_proxy.instances(G)}
    for node_id in new:
        node = strict_nomad.node(node_id)
        assert node is not None and node["NodePool"] == "gpu"
        iid = node["Attributes"]["unique.platform.aws.instance-id"]
        assert node["Attributes"]["platform.aws.placement.availability-zone"] == zones[iid]


def test_a_terminated_machine_takes_its_node_down_through_missed_heartbeats(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, strict_nomad: FakeNomad
) -> None:
    aws.create_asg(G, desired=2)
    link = strict_link(strict_nomad, asg_proxy, asg_clock)
    link.sync(booted=True)
    victim = aws.instance_ids(G)[0]
    node_id = link.registered[victim]
    asg_proxy.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=victim, ShouldDecrementDesiredCapacity=True
    )
    link.sync()
    assert strict_nomad.node(node_id)["Status"] == "ready"  # type: ignore[index]  # not instantly
    asg_clock.advance(timedelta(seconds=29))
    link.sync()
    assert strict_nomad.node(node_id)["Status"] == "ready"  # type: ignore[index]
    asg_clock.advance(timedelta(seconds=1))
    link.sync()
    assert strict_nomad.node(node_id)["Status"] == "down"  # type: ignore[index]


@pytest.mark.parametrize("asg_proxy", [{"az_rebalance": True}], indirect=True)
def test_az_rebalancing_terminates_a_busy_undrained_node_elsewhere(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, strict_nomad: FakeNomad
) -> None:
    aws.create_asg(G, desired=4, max_size=4)
    link = strict_link(strict_nomad, asg_proxy, asg_clock, boot_delay=timedelta(minutes=2))
    link.sync(booted=True)
    strict_nomad.add_job("ml-ocr", groups={"workers": 4}, gpus=1, distinct_hosts=True, node_pool="gpu")
    zone = {i.id: i.az for i in asg_proxy.instances(G)}
    drained = sorted(i for i, z in zone.items() if z == "eu-west-1a")
    for iid in drained:  # as forescale scales in: exact instances, decrement (their nodes drained first)
        asg_proxy.client("autoscaling").terminate_instance_in_auto_scaling_group(
            InstanceId=iid, ShouldDecrementDesiredCapacity=True
        )
    asg_clock.advance(timedelta(minutes=2))  # the rebalancing launch is in service: one in eu-west-1b goes
    link.sync()
    (killed,) = [i.id for i in asg_proxy.instances(G) if i.lifecycle == "Terminating" and i.id not in drained]
    node_id = link.registered[killed]
    busy = [a for a in strict_nomad.allocations("ml-ocr") if a["NodeID"] == node_id]
    assert [a["ClientStatus"] for a in busy] == ["running"]  # nobody drained it
    asg_clock.advance(timedelta(seconds=30))
    link.sync()
    assert strict_nomad.node(node_id)["Status"] == "down"  # type: ignore[index]
    (lost,) = [a for a in strict_nomad.allocations("ml-ocr") if a["NodeID"] == node_id]
    assert lost["ClientStatus"] == "lost"


def test_foreign_and_never_registering_machines(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock, strict_nomad: FakeNomad
) -> None:
    aws.create_asg(G, desired=5)
    ids = aws.instance_ids(G)
    link = strict_link(strict_nomad, asg_proxy, asg_clock, foreign={ids[0]}, foreign_next=1, never_register={ids[4]})
    link.sync(booted=True)
    pools = {iid: strict_nomad.node(nid)["NodePool"] for iid, nid in link.registered.items()}  # type: ignore[index]
    assert ids[4] not in pools
    assert sorted(pools.values()) == ["gpu", "gpu", "other", "other"]
    assert pools[ids[0]] == "other" and link.foreign_next == 0


def test_on_plain_moto_and_the_default_fake_a_gone_machine_is_down_at_once(aws: Aws, fake_nomad: FakeNomad) -> None:
    aws.create_asg(G, desired=2)
    clock = ManualClock(datetime.now(UTC))
    link = AsgNomadLink(fake_nomad, aws.client("autoscaling"), G, clock.now)
    link.sync(booted=True)
    victim = aws.instance_ids(G)[0]
    aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=victim, ShouldDecrementDesiredCapacity=True
    )
    link.sync()
    node = fake_nomad.node(link.registered[victim])
    assert node is not None and node["Status"] == "down" and node["Events"][-1]["Message"] == "Node heartbeat missed"
