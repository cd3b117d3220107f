"""The link between a moto Auto Scaling group and the fake Nomad: machines the group launches become Nomad clients.

In a real account an instance boots, its Nomad client fingerprints ``unique.platform.aws.instance-id`` and
registers; when the instance is terminated the client stops heartbeating and Nomad marks the node ``down``.
``AsgNomadLink.sync()`` does the same on the test's clock (no threads, no sleeps): an instance first seen at t
registers as a node at t + ``boot_delay``; an instance gone from the group takes its node down. Instances listed
in ``never_register`` never register (a broken AMI), to test the "node never registers" outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.fakes.nomad import FakeNomad


@dataclass
class AsgNomadLink:
    fake: FakeNomad
    autoscaling: Any  # a boto3 autoscaling client on the moto server
    asg_name: str
    clock: Callable[[], datetime]
    boot_delay: timedelta = timedelta(minutes=6)
    node_kw: dict[str, Any] = field(default_factory=lambda: {"node_pool": "gpu"})
    never_register: set[str] = field(default_factory=set)
    first_seen: dict[str, datetime] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)  # instance id → node id

    def instances(self) -> list[str]:
        reply = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.asg_name])
        (group,) = reply["AutoScalingGroups"]
        return sorted(str(i["InstanceId"]) for i in group["Instances"])

    def sync(self, *, booted: bool = False) -> list[str]:
        """Register the instances whose boot is over (all of them with ``booted``); take down the gone ones.

        Returns the node IDs registered by this call."""
        now = self.clock()
        live = self.instances()
        new_nodes = []
        for iid in live:
            seen = self.first_seen.setdefault(iid, now)
            if iid in self.registered or iid in self.never_register:
                continue
            if booted or now - seen >= self.boot_delay:
                node = self.fake.add_node(f"gpu-{iid[2:10]}", instance_id=iid, **self.node_kw)
                self.registered[iid] = node["ID"]
                new_nodes.append(node["ID"])
        for iid, node_id in self.registered.items():
            node = self.fake.node(node_id)
            if iid not in live and node is not None and node["Status"] != "down":
                self.fake.set_node_status(node_id, "down", "node heartbeat missed (instance terminated)")
        return new_nodes
