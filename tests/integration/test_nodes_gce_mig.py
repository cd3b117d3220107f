"""The gce_mig provider on google-cloud-compute against the fake Compute Engine (tests/fakes/gce_server.py):
zonal and regional groups, long-running operations, stockouts, partial failures, throttling, stale lists and
every error with its fix (docs/gce-facts.md). Time is the fake's ManualClock: no test sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.gce_mig import GceMigProvider
from autoscaler.nodes.registry import build_node_provider
from tests.fakes.gce_server import GceFake
from tests.fakes.gce_world import Mig
from tests.fixtures.clouds import PROJECT, REGION, ZONE
from tests.helpers import make_config, pool_dict


def setup(
    gce: GceFake, *, size: int = 2, regional: bool = False, **settings: Any
) -> tuple[GceMigProvider, PoolConfig, Mig]:
    scope = f"regions/{REGION}" if regional else f"zones/{ZONE}"
    mig = gce.world.create(PROJECT, scope, "gpu-ocr", size=size)
    where = {"region": REGION} if regional else {"zone": ZONE}
    section = {"project": PROJECT, "name": "gpu-ocr", "endpoint": gce.url, **where, **settings}
    pool = make_config(pool_dict("ocr", nodes={"provider": "gce_mig", "node_pool": "gpu", "gce": section})).pool("ocr")
    provider = build_node_provider(pool)
    assert isinstance(provider, GceMigProvider)
    return provider, pool, mig


def later(gce: GceFake, clock: ManualClock, minutes: float) -> None:
    clock.advance(timedelta(minutes=minutes))
    gce.tick()


def test_describe_reads_target_size_machines_zones_and_bounds(gce: GceFake) -> None:
    prov, pool, mig = setup(gce, size=3, max_size=8)
    group = prov.describe(pool)
    assert (group.desired, group.min, group.max) == (3, 0, 8)
    assert sorted(m.id for m in group.machines) == sorted(mig.vms)
    assert {m.zone for m in group.machines} == {ZONE} and all(m.phase == "in_service" for m in group.machines)
    assert group.name == f"MIG gpu-ocr ({ZONE})" and not group.state.warnings
    # Each VM's creationTimestamp (instances.list): boots and boot_timeout count from it, across restarts.
    assert all(m.launched_at == mig.vms[m.id].created_at for m in group.machines)
    # Without compute.instances.list the group is still read; boots then count from forescale's own ask.
    gce.fail_next("deny", 1, verb="instances")
    assert all(m.launched_at is None for m in GceMigProvider(prov.settings).describe(pool).machines)
    # No max_size: the pool's max + spare (50 here) — the group itself has no bounds.
    prov, pool, _ = setup(gce, size=0)
    assert prov.describe(pool).max == 50


def test_scale_out_resizes_and_follows_the_operation_then_vms_boot(gce: GceFake, cloud_clock: ManualClock) -> None:
    prov, pool, mig = setup(gce, size=1)
    before = cloud_clock.now()
    note = prov.scale_out(pool, prov.describe(pool), 3)
    assert note == f"MIG gpu-ocr ({ZONE}): target size 1 → 3" and mig.target_size == 3
    (resize,) = gce.server.calls("/resize")
    assert resize.query["size"] == "3"
    assert gce.server.calls("/operations/")  # the Operation was followed to DONE (op_delay 4s) …
    assert cloud_clock.now() - before >= gce.world.op_delay  # … on the fake's clock, not by sleeping
    group = prov.describe(pool)
    # The two new entries have no VM yet (no instanceStatus): launches in flight, not machines.
    assert group.desired == 3 and len(group.machines) == 1 and group.state.launching
    later(gce, cloud_clock, 0.5)
    group = prov.describe(pool)
    assert len(group.machines) == 3 and sorted(m.phase for m in group.machines) == ["booting", "booting", "in_service"]
    later(gce, cloud_clock, 1)
    assert all(m.phase == "in_service" for m in prov.describe(pool).machines)


def test_regional_group_warns_about_proactive_redistribution(gce: GceFake) -> None:
    prov, pool, mig = setup(gce, size=3, regional=True)
    group = prov.describe(pool)
    assert group.name == f"MIG gpu-ocr ({REGION})" and len({m.zone for m in group.machines}) == 3
    ((key, warning),) = group.state.warnings
    assert key == "gce_redistribution:gpu-ocr" and "--instance-redistribution-type=NONE" in warning
    assert f"--region={REGION}" in warning
    mig.redistribution = "NONE"
    assert not prov.describe(pool).state.warnings
    prov.scale_out(pool, prov.describe(pool), 4)
    assert gce.server.calls(f"/regions/{REGION}/operations/")


def test_a_stockout_is_a_failed_launch_and_cancelling_deletes_only_the_queued_entries(
    gce: GceFake, cloud_clock: ManualClock
) -> None:
    prov, pool, mig = setup(gce, size=2)
    existing = set(mig.vms)
    gce.world.fail_creations("ZONE_RESOURCE_POOL_EXHAUSTED")
    prov.scale_out(pool, prov.describe(pool), 5)
    later(gce, cloud_clock, 1)
    group = prov.describe(pool)
    assert group.desired == 5 and {m.id for m in group.machines} == existing  # desired ≠ machines
    failures = group.state.failures
    assert len(failures) == 3 and {f.code for f in failures} == {"ZONE_RESOURCE_POOL_EXHAUSTED"}
    assert "does not have enough resources available" in failures[0].message and not group.state.launching
    note = prov.cancel_launches(pool, group, 2)
    assert note.endswith("target size 5 → 2") and mig.target_size == 2
    (delete,) = gce.server.calls("/deleteInstances")
    assert delete.status == 200
    assert set(mig.vms) - existing == {v.name for v in mig.vms.values() if v.action == "DELETING"}
    assert all(mig.vms[n].action == "NONE" for n in existing)  # no existing VM was touched
    # More VMs than asked: refused, nothing changed.
    with pytest.raises(NodeProviderError) as info:
        prov.cancel_launches(pool, prov.describe(pool), 1)
    assert info.value.code == "Appeared" and mig.target_size == 2


def test_terminate_deletes_exactly_the_named_instances_each_failing_alone(
    gce: GceFake, cloud_clock: ManualClock
) -> None:
    prov, pool, mig = setup(gce, size=4)
    a, b, c, d = sorted(mig.vms)
    gce.world.refuse_delete(mig, c, "the instance is being repaired")
    results = {r.machine: r for r in prov.terminate(pool, prov.describe(pool), [a, c, "gpu-ocr-none"])}
    assert results[a].ok and not results[c].ok and not results["gpu-ocr-none"].ok
    assert "was not deleted" in (results[c].error or "") and "being repaired" in (results[c].error or "")
    assert "not an instance of the group" in (results["gpu-ocr-none"].error or "")
    assert mig.vms[a].action == "DELETING" and mig.vms[c].action == "NONE" and mig.target_size == 3
    # A retry of a deletion in progress fails for that machine alone; nothing more is lowered.
    (again,) = prov.terminate(pool, prov.describe(pool), [a])
    assert not again.ok and "already deleting" in (again.error or "") and mig.target_size == 3
    later(gce, cloud_clock, 1)
    assert a not in mig.vms and {b, c, d} <= set(mig.vms)


def test_replace_deletes_and_resizes_back(gce: GceFake) -> None:
    prov, pool, mig = setup(gce, size=2)
    dead = sorted(mig.vms)[0]
    (result,) = prov.terminate(pool, prov.describe(pool), [dead], replace=True)
    assert result.ok and mig.target_size == 2 and mig.vms[dead].action == "DELETING"
    assert len([v for v in mig.vms.values() if v.action == "CREATING"]) == 1


def test_throttling_is_retried_after_retry_after_then_reported(gce: GceFake, cloud_clock: ManualClock) -> None:
    prov, pool, _ = setup(gce, size=1)
    gce.fail_next("throttle", 2)
    before = cloud_clock.now()
    assert prov.describe(pool).desired == 1  # two 429s absorbed
    assert cloud_clock.now() - before >= timedelta(seconds=4)  # Retry-After: 2, twice, on the fake's clock
    gce.fail_next("ratelimit", 1)  # Compute Engine's older 403 rateLimitExceeded is throttling too
    assert prov.describe(pool).desired == 1
    gce.fail_next("throttle", 10)
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "RateLimited" and info.value.retryable and "after 4 attempts" in str(info.value)


def test_permission_not_found_and_unavailable_errors_say_what_to_do(gce: GceFake) -> None:
    prov, pool, _ = setup(gce, size=1)
    gce.fail_next("deny", 1, verb="resize")
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool, prov.describe(pool), 2)
    assert info.value.code == "PermissionDenied" and "compute.instanceGroupManagers.update" in str(info.value)
    assert "docs/nodes.md" in str(info.value)
    gce.fail_next("unavailable", 4)
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.retryable and "503" in str(info.value)
    gce.fail_next("garbage", 1)
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "Unreadable" and info.value.retryable and "not the API's JSON" in str(info.value)
    prov, pool, _ = setup(gce, size=0)
    pool.nodes.gce.name = "gpu-missing"  # type: ignore[union-attr]
    missing = GceMigProvider(pool.nodes.gce)  # type: ignore[arg-type]
    with pytest.raises(NodeProviderError) as info:
        missing.describe(pool)
    assert info.value.code == "NotFound" and "nodes.gce.zone/region" in str(info.value)


def test_an_operation_that_never_finishes_is_reported_within_its_deadline(
    gce: GceFake, cloud_clock: ManualClock
) -> None:
    prov, pool, mig = setup(gce, size=1, operation_timeout="1m")
    gce.world.op_delay = timedelta(hours=1)
    before = cloud_clock.now()
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool, prov.describe(pool), 2)
    assert info.value.code == "OperationTimeout" and info.value.retryable
    assert timedelta(0) < cloud_clock.now() - before <= timedelta(minutes=1, seconds=5)
    assert mig.target_size == 2  # the resize was accepted: the next tick reads the group, never assumes


def test_a_stale_list_after_a_deletion_does_not_make_it_a_failure(gce: GceFake, cloud_clock: ManualClock) -> None:
    prov, pool, mig = setup(gce, size=3)
    victim = sorted(mig.vms)[0]
    gce.world.stale_for = timedelta(minutes=2)
    later(gce, cloud_clock, 3)
    (result,) = prov.terminate(pool, prov.describe(pool), [victim])
    assert result.ok  # the operation is DONE without errors: trusted, though the list still shows the VM
    assert victim in {m.id for m in prov.describe(pool).present}  # stale: still listed as running
    later(gce, cloud_clock, 3)
    assert victim not in {m.id for m in prov.describe(pool).present}  # the list caught up (deleting, then gone)


def test_missing_application_default_credentials(gce: GceFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    prov, pool, _ = setup(gce, size=1)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nowhere.json"))
    with pytest.raises(NodeProviderError) as info:
        prov.describe(pool)
    assert info.value.code == "NoCredentials" and "forescale.yaml never holds them" in str(info.value)


def test_unreachable_endpoint_is_retryable(gce: GceFake) -> None:
    from tests.helpers import free_port

    _, pool, _ = setup(gce, size=1, max_attempts=2)
    pool.nodes.gce.endpoint = f"http://127.0.0.1:{free_port()}"  # type: ignore[union-attr]
    with pytest.raises(NodeProviderError) as info:
        GceMigProvider(pool.nodes.gce).describe(pool)  # type: ignore[arg-type]
    assert info.value.code == "Unreachable" and info.value.retryable


def test_the_node_maps_to_its_instance_by_hostname_or_numeric_id(gce: GceFake) -> None:
    prov, pool, mig = setup(gce, size=1)
    (vm,) = mig.vms.values()
    host = f"{vm.name}.{ZONE}.c.{PROJECT}.internal"
    assert prov.machine_id(pool, {"unique.platform.gce.hostname": host}) == vm.name
    prov.describe(pool)
    custom = {"unique.platform.gce.hostname": "gpu-worker-custom.example", "unique.platform.gce.id": str(vm.id)}
    assert prov.machine_id(pool, custom) == vm.name  # a custom hostname cannot mislead the mapping
    assert prov.machine_id(pool, {}) is None
