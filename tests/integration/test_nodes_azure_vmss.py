"""The azure_vmss provider on azure-mgmt-compute against the fake Azure Resource Manager over TLS
(tests/fakes/azure_server.py): capacity, exact deletes by instance id from VM names, allocation failures,
SkuNotAvailable, partial failures, throttling with Retry-After, long-running operations, stale lists, group state
and every error with its fix (docs/azure-facts.md). Time is the fake's ManualClock: no test sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.azure_vmss import AzureVmssProvider
from autoscaler.nodes.registry import build_node_provider
from tests.fakes.azure_server import AzureFake
from tests.fakes.azure_world import Vmss
from tests.fixtures.clouds import RESOURCE_GROUP, SUBSCRIPTION
from tests.helpers import make_config, pool_dict


def setup(azure: AzureFake, *, size: int = 2, **settings: Any) -> tuple[AzureVmssProvider, PoolConfig, Vmss]:
    vmss = azure.world.create(SUBSCRIPTION, RESOURCE_GROUP, "gpu-ocr", size=size)
    section = {
        "subscription_id": SUBSCRIPTION,
        "resource_group": RESOURCE_GROUP,
        "name": "gpu-ocr",
        "endpoint": azure.url,
        **settings,
    }
    nodes = {"provider": "azure_vmss", "node_pool": "gpu", "azure": section}
    pool = make_config(pool_dict("ocr", nodes=nodes)).pool("ocr")
    provider = build_node_provider(pool)
    assert isinstance(provider, AzureVmssProvider)
    return provider, pool, vmss


def later(azure: AzureFake, clock: ManualClock, minutes: float) -> None:
    clock.advance(timedelta(minutes=minutes))
    azure.tick()


def test_describe_pages_through_the_vms_and_reads_their_state(azure: AzureFake) -> None:
    prov, pool, vmss = setup(azure, size=7, max_size=9)
    vmss.vms["3"].protected = True
    vmss.vms["4"].health = "unhealthy"
    group = prov.describe(pool)
    assert (group.desired, group.min, group.max) == (7, 0, 9)
    assert [m.id for m in group.machines] == sorted(f"gpu-ocr_{i}" for i in range(7))  # 2 pages (nextLink)
    by_id = {m.id: m for m in group.machines}
    assert by_id["gpu-ocr_3"].protected and not by_id["gpu-ocr_4"].healthy
    assert {m.zone for m in group.machines} == {"1", "2", "3"} and all(m.launched_at for m in group.machines)
    assert len(azure.server.calls("/virtualMachines")) == 2 and not group.state.warnings


def test_scale_out_sets_the_capacity_without_waiting_for_the_vms(azure: AzureFake, cloud_clock: ManualClock) -> None:
    prov, pool, vmss = setup(azure, size=1)
    before = cloud_clock.now()
    note = prov.scale_out(pool, prov.describe(pool), 3)
    assert note.endswith("capacity 1 → 3") and vmss.capacity == 3 and cloud_clock.now() == before
    (patch,) = azure.server.calls("/virtualMachineScaleSets/gpu-ocr", "PATCH")
    assert patch.status == 200
    group = prov.describe(pool)
    assert group.state.launching and sorted(m.phase for m in group.machines) == ["booting", "booting", "in_service"]
    later(azure, cloud_clock, 2)
    assert all(m.phase == "in_service" for m in prov.describe(pool).machines)


def test_an_allocation_failure_is_a_failed_launch_and_cancelling_deletes_those_vms(
    azure: AzureFake, cloud_clock: ManualClock
) -> None:
    prov, pool, vmss = setup(azure, size=2)
    azure.world.allocation = "AllocationFailed"
    prov.scale_out(pool, prov.describe(pool), 4)
    later(azure, cloud_clock, 1)
    group = prov.describe(pool)
    assert group.desired == 4 and [m.id for m in group.machines] == ["gpu-ocr_0", "gpu-ocr_1"]
    assert [f.code for f in group.state.failures] == ["AllocationFailed", "AllocationFailed"]
    assert "sufficient capacity" in group.state.failures[0].message
    note = prov.cancel_launches(pool, group, 2)
    assert note.endswith("capacity 4 → 2") and vmss.capacity == 2
    (delete,) = azure.server.calls("/delete", "POST")
    assert delete.status == 202
    assert sorted(v.name for v in vmss.vms.values()) == ["gpu-ocr_0", "gpu-ocr_1"]  # exactly the failed VMs went
    with pytest.raises(NodeProviderError) as info:
        prov.cancel_launches(pool, prov.describe(pool), 1)
    assert info.value.code == "Appeared" and vmss.capacity == 2


@pytest.mark.parametrize(
    ("refusal", "code", "words"),
    [("SkuNotAvailable", "SkuNotAvailable", "not available in"), ("QuotaExceeded", "OperationNotAllowed", "quota")],
)
def test_a_refused_scale_out_changes_nothing_and_says_why(
    azure: AzureFake, refusal: str, code: str, words: str
) -> None:
    prov, pool, vmss = setup(azure, size=2)
    azure.world.refuse_update = refusal
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool, prov.describe(pool), 5)
    assert info.value.code == code and words in str(info.value) and vmss.capacity == 2


def test_terminate_translates_names_to_instance_ids_and_fails_each_alone(
    azure: AzureFake, cloud_clock: ManualClock
) -> None:
    prov, pool, vmss = setup(azure, size=4)
    vmss.vms["2"].undeletable = "a VM extension operation is in progress"
    before = cloud_clock.now()
    results = {r.machine: r for r in prov.terminate(pool, prov.describe(pool), ["gpu-ocr_1", "gpu-ocr_2", "nope_9"])}
    assert results["gpu-ocr_1"].ok and not results["gpu-ocr_2"].ok and not results["nope_9"].ok
    assert "extension operation" in (results["gpu-ocr_2"].error or "")
    assert "no VM named nope_9" in (results["nope_9"].error or "")
    (delete,) = azure.server.calls("/delete", "POST")
    assert delete.status == 202 and vmss.capacity == 3
    assert cloud_clock.now() - before >= azure.world.delete_delay  # the delete was followed to its end
    assert "1" not in vmss.vms and vmss.vms["2"].state == "Succeeded"
    (again,) = prov.terminate(pool, prov.describe(pool), ["gpu-ocr_1"])
    assert not again.ok and vmss.capacity == 3


def test_replace_deletes_then_raises_the_capacity_back(azure: AzureFake) -> None:
    prov, pool, vmss = setup(azure, size=2)
    (result,) = prov.terminate(pool, prov.describe(pool), ["gpu-ocr_0"], replace=True)
    assert result.ok and vmss.capacity == 2 and "0" not in vmss.vms and "2" in vmss.vms


def test_throttling_honours_retry_after_then_is_reported(azure: AzureFake, cloud_clock: ManualClock) -> None:
    prov, pool, _ = setup(azure, size=1)
    azure.fail_next("throttle", 2, verb="get")
    before = cloud_clock.now()
    assert prov.describe(pool).desired == 1
    assert cloud_clock.now() - before >= timedelta(seconds=6)  # Retry-After: 3, twice, on the fake's clock
    azure.fail_next("throttle", 10, verb="get")
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "TooManyRequests" and info.value.retryable


def test_denied_missing_and_unreadable_answers_say_what_to_do(azure: AzureFake) -> None:
    prov, pool, _ = setup(azure, size=1)
    azure.fail_next("deny", 1, verb="update")
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool, prov.describe(pool), 2)
    assert info.value.code == "AuthorizationFailed" and "Microsoft.Compute/virtualMachineScaleSets/write" in str(
        info.value
    )
    azure.fail_next("garbage", 1, verb="get")
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "Unreadable" and info.value.retryable
    missing = AzureVmssProvider(pool.nodes.azure.model_copy(update={"name": "gpu-missing"}))  # type: ignore[union-attr]
    with pytest.raises(NodeProviderError) as info:
        missing.describe(pool)
    assert info.value.code == "NotFound" and "nodes.azure.name" in str(info.value)


def test_a_delete_that_never_finishes_is_reported_within_its_deadline(
    azure: AzureFake, cloud_clock: ManualClock
) -> None:
    prov, pool, vmss = setup(azure, size=2, operation_timeout="1m")
    azure.world.delete_delay = timedelta(hours=1)
    before = cloud_clock.now()
    (result,) = prov.terminate(pool, prov.describe(pool), ["gpu-ocr_0"])
    assert timedelta(0) < cloud_clock.now() - before <= timedelta(minutes=1, seconds=15)
    # Unfinished is not failed: the VM is Deleting (the request was accepted), so it counts as gone.
    assert result.ok and vmss.vms["0"].state == "Deleting"


def test_group_state_rolling_upgrade_overprovisioning_and_zone_rebalancing(azure: AzureFake) -> None:
    prov, pool, vmss = setup(azure, size=2)
    vmss.upgrade_mode, vmss.rolling = "Rolling", "RollingForward"
    vmss.overprovision = True
    vmss.zone_rebalance = True
    state = prov.describe(pool).state
    assert state.scale_in_blocked and "rolling upgrade is RollingForward" in state.scale_in_blocked
    keys = [k for k, _ in state.warnings]
    assert keys == ["azure_overprovision:gpu-ocr", "azure_zone_rebalance:gpu-ocr"]
    vmss.rolling = "Completed"
    assert prov.describe(pool).state.scale_in_blocked is None
    azure.fail_next("deny", 1, verb="rolling")
    blocked = prov.describe(pool).state.scale_in_blocked
    assert blocked and "rollingUpgrades/read" in blocked  # cannot tell: removals paused


def test_a_stale_vm_list_shows_new_vms_late_as_launches_in_flight(azure: AzureFake, cloud_clock: ManualClock) -> None:
    prov, pool, _ = setup(azure, size=2)
    azure.world.stale_for = timedelta(minutes=2)
    prov.scale_out(pool, prov.describe(pool), 3)
    group = prov.describe(pool)
    assert group.desired == 3 and len(group.machines) == 2  # the new VM is not listed yet: a launch in flight
    later(azure, cloud_clock, 4)
    assert len(prov.describe(pool).machines) == 3


def test_no_credential_names_default_azure_credential(azure: AzureFake, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    import autoscaler.nodes.azure_api as azure_api

    def unavailable() -> Any:
        raise ClientAuthenticationError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials."
        )

    monkeypatch.setattr(azure_api, "default_credential", unavailable)
    prov, pool, _ = setup(azure, size=1)
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "NoCredentials" and "managed identity" in str(info.value)
