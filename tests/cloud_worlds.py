"""One adapter per cloud stand-in, so the end-to-end node world (tests/node_world.py) runs on any of them.

A ``Cloud`` creates the pool's group, gives the ``nodes:`` section that points forescale's real provider at
the stand-in, tells the truth from outside (machines, desired size), runs the cloud's own progress on the
shared clock, registers a machine's Nomad client with that cloud's fingerprint (Nomad's
client/fingerprint/env_aws.go, env_gce.go, env_azure.go) and makes launches fail the way that cloud does (a
GPU stockout). Adding a provider's end-to-end stories means adding one adapter here.
"""

from __future__ import annotations

from typing import Any, Protocol

from autoscaler.core.clock import ManualClock
from tests.fakes.cloud import Machine
from tests.fixtures.clouds import PROJECT, RESOURCE_GROUP, SUBSCRIPTION, ZONE

GROUP = "gpu-ocr"


class Cloud(Protocol):
    kind: str
    attribute: str  # the Nomad attribute naming a machine
    clock: ManualClock
    failure_code: str  # what a GPU stockout is called there

    def create(self, machines: int, max_size: int) -> None: ...

    def nodes_section(self) -> dict[str, Any]: ...

    def truth(self) -> list[Machine]: ...

    def desired(self) -> int: ...

    def tick(self) -> None: ...

    def register(self, m: Machine) -> dict[str, Any]: ...

    def machine_of(self, value: str) -> str: ...

    def fail_launches(self) -> None: ...

    def clear_launch_failures(self) -> None: ...


class AwsCloud:
    """The strict Auto Scaling proxy in front of moto (tests/fakes/aws_asg_proxy.py)."""

    kind, attribute, failure_code = "aws_asg", "unique.platform.aws.instance-id", "InsufficientInstanceCapacity"

    def __init__(self, aws: Any, proxy: Any, clock: ManualClock) -> None:
        self.aws, self.proxy, self.clock = aws, proxy, clock
        self.asg: Any = None

    def create(self, machines: int, max_size: int) -> None:
        self.aws.create_asg(GROUP, desired=machines, max_size=max_size)
        self.asg = self.proxy.client("autoscaling")

    def nodes_section(self) -> dict[str, Any]:
        return {
            "provider": "aws_asg",
            "aws": {"asg_name": GROUP, "region": self.aws.region, "endpoint_url": self.proxy.url, "max_attempts": 2},
        }

    def truth(self) -> list[Machine]:
        return [
            Machine(i.id, i.lifecycle != "Terminating" and not i.ec2_dead, i.az, i.launched_at)
            for i in self.proxy.instances(GROUP)
        ]

    def desired(self) -> int:
        return int(self.proxy.group(GROUP).desired)

    def tick(self) -> None:
        self.proxy.tick()

    def register(self, m: Machine) -> dict[str, Any]:
        kw: dict[str, Any] = {"name": f"gpu-{m.id[2:10]}", "instance_id": m.id}
        if m.az:
            kw["availability_zone"] = m.az
        return kw

    def machine_of(self, value: str) -> str:
        return value

    def fail_launches(self) -> None:
        self.proxy.fail_launches("InsufficientInstanceCapacity")

    def clear_launch_failures(self) -> None:
        self.proxy.clear_launch_failures()


class GceCloud:
    """The fake Compute Engine (tests/fakes/gce_server.py): a zonal managed instance group."""

    kind, attribute, failure_code = "gce_mig", "unique.platform.gce.hostname", "ZONE_RESOURCE_POOL_EXHAUSTED"

    def __init__(self, gce: Any, clock: ManualClock) -> None:
        self.gce, self.clock = gce, clock
        self.mig: Any = None

    def create(self, machines: int, max_size: int) -> None:
        self.mig = self.gce.world.create(PROJECT, f"zones/{ZONE}", GROUP, size=machines)
        self.max_size = max_size

    def nodes_section(self) -> dict[str, Any]:
        gce = {"project": PROJECT, "zone": ZONE, "name": GROUP, "endpoint": self.gce.url, "max_size": self.max_size}
        return {"provider": "gce_mig", "gce": gce}

    def truth(self) -> list[Machine]:
        return [
            Machine(v.name, v.exists and v.action != "DELETING", v.zone, v.created_at)
            for v in sorted(self.mig.vms.values(), key=lambda v: v.name)
        ]

    def desired(self) -> int:
        return int(self.mig.target_size)

    def tick(self) -> None:
        self.gce.tick()

    def register(self, m: Machine) -> dict[str, Any]:
        vm = self.mig.vms[m.id]
        attrs = {  # env_gce.go: hostname/id unique; zone and machine-type the last path element
            "unique.platform.gce.id": str(vm.id),
            "unique.platform.gce.hostname": f"{vm.name}.{vm.zone}.c.{PROJECT}.internal",
            "platform.gce.zone": vm.zone,
            "platform.gce.machine-type": "g2-standard-8",
            "platform.gce.cpu-platform": "Intel Cascade Lake",
            "platform.gce.scheduling.automatic-restart": "TRUE",
            "platform.gce.scheduling.on-host-maintenance": "TERMINATE",
            "platform.gce.scheduling.preemptible": "FALSE",
            "unique.platform.gce.network.default.ip": f"10.128.0.{vm.id % 250 + 2}",
        }
        return {"name": vm.name, "platform": "gce", "attributes": attrs}

    def machine_of(self, value: str) -> str:
        return value.split(".", 1)[0]

    def fail_launches(self) -> None:
        self.gce.world.fail_creations("ZONE_RESOURCE_POOL_EXHAUSTED")

    def clear_launch_failures(self) -> None:
        self.gce.world.clear_failures()


class AzureCloud:
    """The fake Azure Resource Manager (tests/fakes/azure_server.py): a Uniform scale set."""

    kind, attribute, failure_code = "azure_vmss", "unique.platform.azure.name", "AllocationFailed"

    def __init__(self, azure: Any, clock: ManualClock) -> None:
        self.azure, self.clock = azure, clock
        self.vmss: Any = None

    def create(self, machines: int, max_size: int) -> None:
        self.vmss = self.azure.world.create(SUBSCRIPTION, RESOURCE_GROUP, GROUP, size=machines)
        self.max_size = max_size

    def nodes_section(self) -> dict[str, Any]:
        azure = {
            "subscription_id": SUBSCRIPTION,
            "resource_group": RESOURCE_GROUP,
            "name": GROUP,
            "endpoint": self.azure.url,
            "max_size": self.max_size,
        }
        return {"provider": "azure_vmss", "azure": azure}

    def truth(self) -> list[Machine]:
        return [
            Machine(v.name, v.state not in ("Deleting", "Failed"), v.zone, v.created_at)
            for v in sorted(self.vmss.vms.values(), key=lambda v: int(v.instance_id))
        ]

    def desired(self) -> int:
        return int(self.vmss.capacity)

    def tick(self) -> None:
        self.azure.tick()

    def register(self, m: Machine) -> dict[str, Any]:
        vm = next(v for v in self.vmss.vms.values() if v.name == m.id)
        attrs = {  # env_azure.go: IMDS compute/name, vmId, scale set, zone …
            "unique.platform.azure.id": vm.vm_id,
            "unique.platform.azure.name": vm.name,
            "platform.azure.location": self.vmss.location,
            "platform.azure.resource-group": RESOURCE_GROUP,
            "platform.azure.scale-set": self.vmss.name,
            "platform.azure.vm-size": self.vmss.sku,
            "platform.azure.zone": vm.zone,
            "unique.platform.azure.local-ipv4": f"10.1.0.{int(vm.instance_id) % 250 + 4}",
        }
        return {"name": f"{self.vmss.name[:9]}{int(vm.instance_id):06x}", "platform": "azure", "attributes": attrs}

    def machine_of(self, value: str) -> str:
        return value

    def fail_launches(self) -> None:
        self.azure.world.allocation = "AllocationFailed"

    def clear_launch_failures(self) -> None:
        self.azure.world.allocation = None
