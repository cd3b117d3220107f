"""The NodeProvider contract (autoscaler/core/ports.py), held over every implementation.

A new provider's author adds one ``Lab`` here (how to build the provider against a local stand-in of its API and
how to read the group's truth from outside) and every promise below runs over it:

* describe: the capacity, bounds within each other, unique machine ids, each machine with a phase;
* the provider maps a Nomad node's attributes to its machine (and says which attribute, for messages);
* scale-out raises the capacity; above the group's max it is refused before any call;
* cancel_launches lowers the capacity only to cancel machines that have not appeared — refused when more exist;
* terminate removes exactly the machines named, one result per machine (an unknown one fails, alone), lowering
  the capacity by as many; ``replace=True`` keeps the capacity;
* retries are idempotent: the same scale-out twice changes nothing more, a machine already gone fails alone;
* every failure is a NodeProviderError whose message says what to do, with a code.

Implementations: ``aws_asg`` (boto3) against moto behind the strict Auto Scaling proxy, ``gce_mig``
(google-cloud-compute, Application Default Credentials) against the fake Compute Engine, ``azure_vmss``
(azure-mgmt-compute) against the fake Azure Resource Manager over TLS (tests/fixtures/clouds.py), ``command``
with the shipped ``scripts/nodes/inventory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import MachineGroup
from autoscaler.core.ports import NodeProvider
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.registry import BUILDERS, build_node_provider
from tests.helpers import make_config, pool_dict

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "scripts" / "nodes" / "inventory"


@dataclass
class Lab:
    """One provider under test: the pool that selects it, and the group's truth read from outside."""

    kind: str
    pool: PoolConfig
    capacity: Callable[[], int]  # the group's desired capacity, as the provider's own API stores it
    machines: Callable[[], list[str]]  # the machines that exist, as the API stores them
    attribute: str  # the Nomad node attribute that names a machine
    seed: Callable[[int], None]  # make the group hold n machines already in service

    @property
    def provider(self) -> NodeProvider:
        built = build_node_provider(self.pool)
        assert built is not None
        return built


def _aws_lab(request: pytest.FixtureRequest) -> Lab:
    aws = request.getfixturevalue("aws")
    proxy = request.getfixturevalue("asg_proxy") if "asg_proxy" in request.fixturenames else None
    url = proxy.url if proxy is not None else aws.url
    aws.create_asg("gpu-ocr", desired=0, max_size=6)
    nodes = {
        "provider": "aws_asg",
        "node_pool": "gpu",
        "aws": {"asg_name": "gpu-ocr", "region": aws.region, "endpoint_url": url},
    }
    pool = make_config(pool_dict("ocr", nodes=nodes)).pool("ocr")
    client = aws.client("autoscaling") if proxy is None else proxy.client("autoscaling")

    def group() -> dict[str, Any]:
        (asg,) = client.describe_auto_scaling_groups(AutoScalingGroupNames=["gpu-ocr"])["AutoScalingGroups"]
        return dict(asg)

    def seed(n: int) -> None:
        client.set_desired_capacity(AutoScalingGroupName="gpu-ocr", DesiredCapacity=n)
        if proxy is not None:
            proxy.settle()

    return Lab(
        "aws_asg",
        pool,
        lambda: int(group()["DesiredCapacity"]),
        lambda: sorted(
            str(i["InstanceId"]) for i in group()["Instances"] if not str(i["LifecycleState"]).startswith("Termin")
        ),
        "unique.platform.aws.instance-id",
        seed,
    )


def _command_lab(request: pytest.FixtureRequest) -> Lab:
    tmp: Path = request.getfixturevalue("tmp_path")
    inventory = tmp / "hosts.txt"
    hosts = [f"gpu-{i}" for i in range(1, 7)]
    inventory.write_text("".join(f"{h} standby\n" for h in hosts))
    nodes = {
        "provider": "command",
        "node_pool": "gpu",
        "command": {"path": str(INVENTORY), "args": ["--file", str(inventory)]},
    }
    pool = make_config(pool_dict("ocr", nodes=nodes)).pool("ocr")

    def active() -> list[str]:
        return sorted(line.split()[0] for line in inventory.read_text().splitlines() if line.endswith(" active"))

    def seed(n: int) -> None:
        inventory.write_text("".join(f"{h} {'active' if i < n else 'standby'}\n" for i, h in enumerate(hosts)))

    return Lab("command", pool, lambda: len(active()), active, "unique.hostname", seed)


def _gce_lab(request: pytest.FixtureRequest) -> Lab:
    from tests.fixtures.clouds import PROJECT, ZONE

    gce = request.getfixturevalue("gce")
    mig = gce.world.create(PROJECT, f"zones/{ZONE}", "gpu-ocr", size=0)
    nodes = {
        "provider": "gce_mig",
        "node_pool": "gpu",
        "gce": {"project": PROJECT, "zone": ZONE, "name": "gpu-ocr", "endpoint": gce.url, "max_size": 6},
    }
    pool = make_config(pool_dict("ocr", nodes=nodes)).pool("ocr")

    def seed(n: int) -> None:
        gce.world.resize(mig, n)
        gce.world.settle(mig)

    def machines() -> list[str]:
        return sorted(v.name for v in mig.vms.values() if v.exists and v.action != "DELETING")

    return Lab("gce_mig", pool, lambda: mig.target_size, machines, "unique.platform.gce.hostname", seed)


def _azure_lab(request: pytest.FixtureRequest) -> Lab:
    from tests.fixtures.clouds import RESOURCE_GROUP, SUBSCRIPTION

    azure = request.getfixturevalue("azure")
    vmss = azure.world.create(SUBSCRIPTION, RESOURCE_GROUP, "gpu-ocr", size=0)
    nodes = {
        "provider": "azure_vmss",
        "node_pool": "gpu",
        "azure": {
            "subscription_id": SUBSCRIPTION,
            "resource_group": RESOURCE_GROUP,
            "name": "gpu-ocr",
            "endpoint": azure.url,
            "max_size": 6,
        },
    }
    pool = make_config(pool_dict("ocr", nodes=nodes)).pool("ocr")

    def seed(n: int) -> None:
        azure.world.set_capacity(vmss, n)
        azure.world.settle(vmss)

    def machines() -> list[str]:
        return sorted(v.name for v in vmss.vms.values() if v.state != "Deleting")

    return Lab("azure_vmss", pool, lambda: vmss.capacity, machines, "unique.platform.azure.name", seed)


LABS: dict[str, Callable[[pytest.FixtureRequest], Lab]] = {
    "aws_asg": _aws_lab,
    "gce_mig": _gce_lab,
    "azure_vmss": _azure_lab,
    "command": _command_lab,
}


def test_every_provider_kind_has_a_lab() -> None:
    assert set(LABS) == set(BUILDERS), "a new provider needs a Lab in this contract suite"


@pytest.fixture(params=sorted(LABS))
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    yield LABS[request.param](request)


def describe(lab: Lab) -> MachineGroup:
    return lab.provider.describe(lab.pool)


def test_describe_is_within_bounds(lab: Lab) -> None:
    lab.seed(2)
    group = describe(lab)
    assert group.desired == lab.capacity() == 2
    assert group.min is None or group.max is None or group.min <= group.max
    ids = [m.id for m in group.machines]
    assert len(ids) == len(set(ids)) and sorted(ids) == lab.machines()
    assert all(m.phase in ("booting", "in_service", "standby", "leaving") for m in group.machines)
    assert group.name == lab.provider.where and lab.provider.kind == lab.kind


def test_the_provider_maps_a_node_to_its_machine(lab: Lab) -> None:
    prov = lab.provider
    assert prov.node_key(lab.pool) == lab.attribute
    assert prov.machine_id(lab.pool, {lab.attribute: "m-1", "unique.hostname-x": "y"}) == "m-1"
    assert prov.machine_id(lab.pool, {}) is None


def test_scale_out_raises_and_above_max_is_refused_before_any_call(lab: Lab) -> None:
    lab.seed(1)
    group = describe(lab)
    note = lab.provider.scale_out(lab.pool, group, 3)
    assert note and lab.capacity() == 3
    again = describe(lab)
    lab.provider.scale_out(lab.pool, again, 3)  # a retry of the same ask changes nothing more
    assert lab.capacity() == 3
    assert again.max is not None
    before = lab.capacity()
    with pytest.raises(NodeProviderError) as info:
        lab.provider.scale_out(lab.pool, again, again.max + 1)
    assert info.value.code == "AboveMax" and "max" in str(info.value).lower()
    assert lab.capacity() == before


def test_terminate_removes_exactly_the_named_machines(lab: Lab) -> None:
    lab.seed(3)
    group = describe(lab)
    gone, *kept = sorted(m.id for m in group.machines)
    results = lab.provider.terminate(lab.pool, group, [gone, "no-such-machine"])
    by_machine = {r.machine: r for r in results}
    assert set(by_machine) == {gone, "no-such-machine"}  # one result per machine asked
    assert by_machine[gone].ok and not by_machine["no-such-machine"].ok and by_machine["no-such-machine"].error
    assert lab.machines() == kept and lab.capacity() == 2
    # A retry of the same termination fails for that machine alone and lowers nothing more.
    (retry,) = lab.provider.terminate(lab.pool, describe(lab), [gone])
    assert not retry.ok and lab.capacity() == 2 and lab.machines() == kept


def test_terminate_with_replace_keeps_the_capacity(lab: Lab) -> None:
    lab.seed(2)
    group = describe(lab)
    dead = sorted(m.id for m in group.machines)[0]
    (result,) = lab.provider.terminate(lab.pool, group, [dead], replace=True)
    assert result.ok and lab.capacity() == 2 and dead not in lab.machines()


def test_cancel_launches_never_removes_an_existing_machine(lab: Lab) -> None:
    lab.seed(3)
    group = describe(lab)
    with pytest.raises(NodeProviderError) as info:
        lab.provider.cancel_launches(lab.pool, group, 1)  # 3 machines exist: lowering to 1 would remove two
    assert info.value.code and lab.capacity() == 3 and len(lab.machines()) == 3
    assert lab.provider.cancel_launches(lab.pool, group, 3)  # to what exists: allowed, nothing removed
    assert lab.capacity() == 3 and len(lab.machines()) == 3
