"""The real node providers on their local stand-ins, for benchmarks/nodes.py: the same replay, through boto3 →
the strict Auto Scaling proxy in front of moto, google-cloud-compute → the fake Compute Engine, azure-mgmt-compute
→ the fake Azure Resource Manager (TLS). Every launch succeeds at once here (as in the simulated group): the
benchmark measures the policy through each provider's real calls and mapping, not the clouds' weather.

``CloudFleet`` is the simulation's fleet (Nomad's nodes and the pool's allocations, in memory) whose machines are
whatever the stand-in's group holds; each machine's boot (ask → its Nomad node ready) is drawn from the same
seeded lognormal, in the order machines appear, so every provider sees the same boots.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from autoscaler.core.clock import ManualClock
from autoscaler.core.nodes import MachineGroup, TerminateResult
from autoscaler.core.ports import NodeProvider
from autoscaler.core.settings.forescale import PoolConfig

GROUP, PROJECT, ZONE, SUB, RG = (
    "gpu-bench",
    "forescale-bench",
    "us-central1-a",
    "00000000-0000-4000-8000-0000000000be",
    "ml",
)
MAX = 1000


@dataclass
class Stand:
    """One cloud stand-in with forescale's provider section for it."""

    kind: str
    section: dict[str, Any]  # the nodes: keys for the provider (provider + its section)
    truth: Callable[[], list[str]]  # machines that exist (not leaving), as the cloud holds them
    seed: Callable[[int], None]  # the group holds n machines, in service
    tick: Callable[[], None]  # the cloud's own progress
    attribute_value: Callable[[str], str]  # what the machine's Nomad client fingerprints
    stop: Callable[[], None]
    keep: list[Any] = field(default_factory=list)


def start(kind: str, clock: ManualClock) -> Stand:
    import autoscaler.nodes.cloud_calls as calls

    calls.SLEEP = lambda s: None  # every operation is done at once here: no wait may take real time
    tmp = Path(tempfile.mkdtemp(prefix=f"forescale-bench-{kind}-"))
    return {"aws_asg": _aws, "gce_mig": _gce, "azure_vmss": _azure}[kind](clock, tmp)


def _aws(clock: ManualClock, tmp: Path) -> Stand:
    from tests.fakes.aws_asg_proxy import AsgProxy
    from tests.fixtures.moto import REGION, Aws, _start, _stop

    for var in [v for v in os.environ if v.startswith("AWS_")]:
        del os.environ[var]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    server = _start(tmp)
    zero = timedelta(0)
    proxy = AsgProxy(server.url, clock=clock.now, launch_delay=zero, terminate_delay=zero).start()
    aws = Aws(server)
    aws.create_asg(GROUP, desired=0, max_size=MAX)
    proxy.client("autoscaling").suspend_processes(AutoScalingGroupName=GROUP, ScalingProcesses=["AZRebalance"])

    def seed(n: int) -> None:
        proxy.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=n)
        proxy.tick()

    def stop() -> None:
        proxy.stop()
        _stop(server.process)

    return Stand(
        "aws_asg",
        {"provider": "aws_asg", "aws": {"asg_name": GROUP, "region": REGION, "endpoint_url": proxy.url}},
        lambda: [i.id for i in proxy.instances(GROUP) if i.lifecycle != "Terminating"],
        seed,
        proxy.tick,
        lambda mid: mid,
        stop,
    )


def _gce(clock: ManualClock, tmp: Path) -> Stand:
    from tests.fakes.cloud_http import google_key_file
    from tests.fakes.gce_server import GceFake

    fake = GceFake(clock.now).start()
    world = fake.world
    world.vm_delay = world.running_delay = world.op_delay = world.delete_delay = timedelta(0)
    key = google_key_file(tmp, fake.url + "/token", PROJECT)
    fake.trust(str(key))
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    os.environ["NO_GCE_CHECK"] = "True"
    mig = world.create(PROJECT, f"zones/{ZONE}", GROUP, size=0)

    def seed(n: int) -> None:
        world.resize(mig, n)
        world.settle(mig)

    return Stand(
        "gce_mig",
        {
            "provider": "gce_mig",
            "gce": {"project": PROJECT, "zone": ZONE, "name": GROUP, "endpoint": fake.url, "max_size": MAX},
        },
        lambda: [v.name for v in mig.vms.values() if v.action != "DELETING"],
        seed,
        fake.tick,
        lambda name: f"{name}.{ZONE}.c.{PROJECT}.internal",
        fake.stop,
    )


def _azure(clock: ManualClock, tmp: Path) -> Stand:
    import autoscaler.nodes.azure_api as azure_api
    from tests.fakes.azure_server import AzureFake
    from tests.fakes.cloud_http import StaticAzureCredential, self_signed

    tls = self_signed(tmp)
    fake = AzureFake(clock.now, token="bench-token", tls=tls).start()
    fake.page_size = 200
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls[0])
    credential = StaticAzureCredential("bench-token")
    azure_api.default_credential = lambda: credential  # a test credential: DefaultAzureCredential in production
    world = fake.world
    world.vm_delay = world.running_delay = world.delete_delay = timedelta(0)
    vmss = world.create(SUB, RG, GROUP, size=0)

    def seed(n: int) -> None:
        world.set_capacity(vmss, n)
        world.settle(vmss)

    return Stand(
        "azure_vmss",
        {
            "provider": "azure_vmss",
            "azure": {
                "subscription_id": SUB,
                "resource_group": RG,
                "name": GROUP,
                "endpoint": fake.url,
                "max_size": MAX,
            },
        },
        lambda: [v.name for v in vmss.vms.values() if v.state not in ("Deleting", "Failed")],
        seed,
        fake.tick,
        lambda name: name,
        fake.stop,
    )


class CloudProvider:
    """The real provider, with the fleet simulation told after every change (new machines start booting)."""

    def __init__(self, provider: NodeProvider, on_change: Callable[[], None]) -> None:
        self.provider, self.on_change = provider, on_change
        self.kind = provider.kind

    @property
    def where(self) -> str:
        return self.provider.where

    def describe(self, pool: PoolConfig) -> MachineGroup:
        return self.provider.describe(pool)

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        return self.provider.machine_id(pool, attributes)

    def node_key(self, pool: PoolConfig) -> str:
        return self.provider.node_key(pool)

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        note = self.provider.scale_out(pool, group, desired)
        self.on_change()
        return note

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        note = self.provider.cancel_launches(pool, group, desired)
        self.on_change()
        return note

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> Sequence[TerminateResult]:
        results = self.provider.terminate(pool, group, machines, replace=replace)
        self.on_change()
        return results
