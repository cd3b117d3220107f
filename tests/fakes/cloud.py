"""The link between an Auto Scaling group and the fake Nomad: machines the group launches become Nomad clients.

In a real account an instance boots, its Nomad client fingerprints ``unique.platform.aws.instance-id`` and
registers; when the instance is terminated — by forescale, by AZ rebalancing, by a Spot interruption — the client
stops heartbeating and Nomad marks the node ``down`` (or ``disconnected``) once the heartbeat TTL and grace have
passed (docs/nomad-facts.md §11.4). ``AsgNomadLink.sync()`` does the same on the test's clock (no threads, no
sleeps):

* an instance launched at t registers as a node at t + ``boot_delay`` (with the strict proxy, t is the launch
  time on the proxy's clock; otherwise the first time ``sync`` saw it), in the instance's zone;
* an instance that is terminating or gone takes its node down through ``fake.stop_heartbeats``: with a strict
  fake the node goes down after the TTL + grace, with the default fake at once (the old behaviour);
* instances in ``never_register`` never register (a broken AMI); instances in ``foreign``, and the next
  ``foreign_next`` machines to register, join ``foreign_pool`` instead of ``node_kw["node_pool"]`` (a group shared
  with another Nomad node pool).

``sync`` ends with ``fake.progress()``, so the fake's clients, heartbeats and drains are at the test's time too.

Example with the strict stand-ins (fixtures ``aws``, ``asg_proxy``, ``asg_clock``, ``strict_nomad``)::

    strict_nomad.wall_clock = lambda: asg_clock.now().timestamp()
    aws.create_asg("gpu-ocr", desired=2)
    link = AsgNomadLink(strict_nomad, None, "gpu-ocr", asg_clock.now, proxy=asg_proxy, foreign_next=1)
    link.sync(booted=True)          # the two seeded machines are clients already (one in pool "other")
    asg_proxy.kill_instance(iid)    # or forescale terminates it, or AZ rebalancing does
    asg_clock.advance(timedelta(seconds=30)); link.sync()   # its node is down now, its allocations lost
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.nomad import FakeNomad


@dataclass(frozen=True)
class Machine:
    """An instance as the link sees it: alive or not, where, and since when it boots."""

    id: str
    alive: bool
    az: str | None = None
    launched_at: datetime | None = None


@dataclass
class AsgNomadLink:
    fake: FakeNomad
    autoscaling: Any  # a boto3 autoscaling client (moto, or the proxy); not used when ``proxy`` is given
    asg_name: str
    clock: Callable[[], datetime]
    boot_delay: timedelta = timedelta(minutes=6)
    node_kw: dict[str, Any] = field(default_factory=lambda: {"node_pool": "gpu"})
    never_register: set[str] = field(default_factory=set)
    first_seen: dict[str, datetime] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)  # instance id → node id
    proxy: AsgProxy | None = None  # the strict proxy: read the truth (launch times, zones; never stale)
    foreign: set[str] = field(default_factory=set)  # instance IDs whose client joins ``foreign_pool``
    foreign_next: int = 0  # the next N machines to register join ``foreign_pool``
    foreign_pool: str = "other"
    silenced: set[str] = field(default_factory=set)  # node IDs whose heartbeats the link stopped
    # Another cloud (tests/cloud_worlds.py): its machines, and the add_node keywords of a machine's client (its
    # name, ``platform`` and that cloud's fingerprint ``attributes``) — instead of the Auto Scaling group's.
    source: Callable[[], list[Machine]] | None = None
    register: Callable[[Machine], dict[str, Any]] | None = None

    def machines(self) -> list[Machine]:
        if self.source is not None:
            return self.source()
        if self.proxy is not None:
            return [
                Machine(i.id, i.lifecycle != "Terminating" and not i.ec2_dead, i.az, i.launched_at)
                for i in self.proxy.instances(self.asg_name)
            ]
        reply = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.asg_name])
        (group,) = reply["AutoScalingGroups"]
        return [
            Machine(
                str(i["InstanceId"]),
                not str(i.get("LifecycleState", "")).startswith("Terminat"),
                i.get("AvailabilityZone"),
            )
            for i in sorted(group["Instances"], key=lambda i: str(i["InstanceId"]))
        ]

    def instances(self) -> list[str]:
        """IDs of the group's live instances."""
        return sorted(m.id for m in self.machines() if m.alive)

    def sync(self, *, booted: bool = False) -> list[str]:
        """Register the machines whose boot is over (all of them with ``booted``); stop the heartbeats of the nodes
        whose machine is gone. Returns the node IDs registered by this call."""
        now = self.clock()
        machines = self.machines()
        alive = {m.id for m in machines if m.alive}
        new_nodes = []
        for m in machines:
            if not m.alive:
                continue
            seen = self.first_seen.setdefault(m.id, m.launched_at or now)
            if m.id in self.registered or m.id in self.never_register:
                continue
            if booted or now - seen >= self.boot_delay:
                kw = dict(self.node_kw)
                if self.register is not None:
                    kw.update(self.register(m))
                else:
                    kw.update(name=f"gpu-{m.id[2:10]}", instance_id=m.id)
                    if m.az:
                        kw.setdefault("availability_zone", m.az)
                if m.id in self.foreign or self.foreign_next > 0:
                    if m.id not in self.foreign:
                        self.foreign_next -= 1
                        self.foreign.add(m.id)
                    kw["node_pool"] = self.foreign_pool
                node = self.fake.add_node(**kw)
                self.registered[m.id] = node["ID"]
                new_nodes.append(node["ID"])
        for iid, node_id in self.registered.items():
            if iid in alive or node_id in self.silenced or self.fake.node(node_id) is None:
                continue
            self.fake.stop_heartbeats(node_id)  # the machine is gone: its client says nothing more
            self.silenced.add(node_id)
        self.fake.progress()
        return new_nodes
