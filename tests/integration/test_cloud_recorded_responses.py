"""Contract fixtures: real responses from the clouds' public documentation (tests/fixtures/clouds/SOURCES.md),
answered by the fakes in place of their own JSON, through the official SDKs into the providers. The fakes follow
the specifications; these hold the providers to the clouds' own examples too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.errors import NodeProviderError
from autoscaler.nodes.azure_vmss import _machine, _phase
from tests.fakes.azure_server import AzureFake
from tests.fakes.cloud_http import Reply
from tests.fakes.gce_server import GceFake
from tests.integration.test_nodes_azure_vmss import setup as azure_setup
from tests.integration.test_nodes_gce_mig import setup as gce_setup

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "clouds"


def load(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def body(example: str) -> Any:
    return load(f"azure/{example}.json")["responses"]["200"]["body"]


def test_gce_the_documented_operation_is_followed_from_pending_to_done(gce: GceFake) -> None:
    prov, pool, _ = gce_setup(gce, size=1)
    pending, done = load("gce/operation_pending.json"), load("gce/operation_done.json")
    gce.canned = {"resize": [Reply(200, pending)], "operations": [Reply(200, done)]}
    note = prov.scale_out(pool, prov.describe(pool), 2)
    assert note.endswith("target size 1 → 2")
    (poll,) = gce.server.calls("/operations/")
    assert poll.path.endswith("/operations/operation-1458856416788-52ed27a803e22-1c3bd86a-9e95017b")
    assert not gce.canned["operations"]  # the documented DONE answer ended the wait


def test_gce_a_documented_done_operation_with_an_error_is_a_failure(gce: GceFake) -> None:
    prov, pool, _ = gce_setup(gce, size=1)
    done = load("gce/operation_done.json")
    done["error"] = {
        "errors": [
            {
                "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                "message": "The zone 'projects/p/zones/z' "
                "does not have enough resources available to fulfill the request.",
            }
        ]
    }
    gce.canned = {"resize": [Reply(200, done)]}
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool, prov.describe(pool), 2)
    assert info.value.code == "ZONE_RESOURCE_POOL_EXHAUSTED" and "GPU stockout" in str(info.value)


def test_azure_the_documented_scale_set_and_vm_are_read(azure: AzureFake) -> None:
    prov, pool, _ = azure_setup(azure, size=0)
    vm = body("VirtualMachineScaleSetVM_Get_WithUserData")
    azure.canned = {
        "get": [Reply(200, body("VirtualMachineScaleSet_Get_WithUserData"))],
        "list": [Reply(200, {"value": [vm]})],
    }
    group = prov.describe(pool)
    assert group.desired == 4  # sku.capacity of the example
    (machine,) = group.machines
    assert machine.id == "{vmss-vm-name}" and machine.phase == "in_service" and not machine.protected
    assert not group.state.failures and not group.state.warnings  # overprovision: false in the example


def test_azure_the_documented_instance_view_is_a_running_vm() -> None:
    view = body("VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup")
    vm = {
        "name": "myVirtualMachineScaleSet_0",
        "instanceId": "0",
        "properties": {"provisioningState": "Succeeded", "instanceView": view},
    }
    machine = _machine(vm)
    assert machine.phase == "in_service" and machine.state == "Succeeded/running" and machine.healthy
    assert _phase("creating", None) == "booting" and _phase("succeeded", "deallocated") == "standby"


def test_azure_delete_instances_sends_the_documented_request_body(azure: AzureFake) -> None:
    prov, pool, _ = azure_setup(azure, size=2)
    example = load("azure/VirtualMachineScaleSet_DeleteInstances_MaximumSet_Gen.json")
    (result,) = prov.terminate(pool, prov.describe(pool), ["gpu-ocr_1"])
    assert result.ok
    (sent,) = azure.server.calls("/delete", "POST")
    assert set(sent.sent) == set(example["parameters"]["vmInstanceIDs"]) and sent.sent["instanceIds"] == ["1"]
    assert sent.status in {int(code) for code in example["responses"]}
