"""Smoke tests of gce_mig and azure_vmss against the real clouds: opt-in, skipped unless their variables are set
(as the real-Nomad tests are with NOMAD_ADDR). Credentials come from the environment only, as in production:
Application Default Credentials for Google Cloud, DefaultAzureCredential for Azure. docs/nodes.md lists the
exact roles ("Real-cloud smoke tests").

Read-only by default: describe the group (capacity, VMs, their phases, group state). With
``FORESCALE_SMOKE_WRITE=1`` also one round trip that costs a few minutes of one VM: raise the capacity by one,
wait (bounded, real time) until the new VM exists, then delete exactly that VM, and check the capacity is back.

    Google Cloud:  FORESCALE_GCE_PROJECT, FORESCALE_GCE_MIG and FORESCALE_GCE_ZONE or FORESCALE_GCE_REGION
    Azure:         FORESCALE_AZURE_SUBSCRIPTION, FORESCALE_AZURE_RESOURCE_GROUP, FORESCALE_AZURE_VMSS
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from autoscaler.core.ports import NodeProvider
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.registry import build_node_provider
from tests.helpers import make_config, pool_dict

pytestmark = pytest.mark.cloud
WRITE = os.environ.get("FORESCALE_SMOKE_WRITE") == "1"
WAIT_S = 600.0


def _pool(provider: str, key: str, section: dict[str, Any]) -> PoolConfig:
    nodes = {"provider": provider, "node_pool": "gpu", key: section}
    return make_config(pool_dict("smoke", max=1000, nodes=nodes)).pool("smoke")


def _round_trip(prov: NodeProvider, pool: PoolConfig) -> None:
    group = prov.describe(pool)
    before = {m.id for m in group.present}
    prov.scale_out(pool, group, group.desired + 1)
    deadline = time.monotonic() + WAIT_S
    new: set[str] = set()
    while time.monotonic() < deadline and not new:
        time.sleep(15)  # a real cloud: a real wait, bounded (opt-in test, never in CI)
        new = {m.id for m in prov.describe(pool).present} - before
    assert new, f"no new VM within {WAIT_S:g}s"
    (result,) = prov.terminate(pool, prov.describe(pool), sorted(new)[:1])
    assert result.ok, result.error
    assert prov.describe(pool).desired == group.desired


@pytest.mark.skipif(
    not (os.environ.get("FORESCALE_GCE_PROJECT") and os.environ.get("FORESCALE_GCE_MIG")),
    reason="needs a real managed instance group: set FORESCALE_GCE_PROJECT, FORESCALE_GCE_MIG and "
    "FORESCALE_GCE_ZONE or FORESCALE_GCE_REGION (credentials: Application Default Credentials)",
)
def test_gce_mig_real() -> None:
    section = {"project": os.environ["FORESCALE_GCE_PROJECT"], "name": os.environ["FORESCALE_GCE_MIG"]}
    for key in ("zone", "region"):
        if os.environ.get(f"FORESCALE_GCE_{key.upper()}"):
            section[key] = os.environ[f"FORESCALE_GCE_{key.upper()}"]
    pool = _pool("gce_mig", "gce", section)
    prov = build_node_provider(pool)
    assert prov is not None
    group = prov.describe(pool)
    assert group.desired >= 0 and all(
        m.phase in ("booting", "in_service", "standby", "leaving") for m in group.machines
    )
    if WRITE:
        _round_trip(prov, pool)


@pytest.mark.skipif(
    not all(os.environ.get(f"FORESCALE_AZURE_{k}") for k in ("SUBSCRIPTION", "RESOURCE_GROUP", "VMSS")),
    reason="needs a real scale set: set FORESCALE_AZURE_SUBSCRIPTION, FORESCALE_AZURE_RESOURCE_GROUP and "
    "FORESCALE_AZURE_VMSS (credentials: DefaultAzureCredential)",
)
def test_azure_vmss_real() -> None:
    section = {
        "subscription_id": os.environ["FORESCALE_AZURE_SUBSCRIPTION"],
        "resource_group": os.environ["FORESCALE_AZURE_RESOURCE_GROUP"],
        "name": os.environ["FORESCALE_AZURE_VMSS"],
    }
    pool = _pool("azure_vmss", "azure", section)
    prov = build_node_provider(pool)
    assert prov is not None
    group = prov.describe(pool)
    assert group.desired >= 0 and all(
        m.phase in ("booting", "in_service", "standby", "leaving") for m in group.machines
    )
    if WRITE:
        _round_trip(prov, pool)
