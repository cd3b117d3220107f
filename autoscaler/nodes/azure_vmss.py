"""The ``azure_vmss`` node provider: an Azure virtual machine scale set (Uniform or Flexible orchestration).

* Machines are the scale set's VMs by **name** — what a Nomad client fingerprints as
  ``unique.platform.azure.name`` (IMDS ``compute/name``; Nomad's env_azure.go): ``<scale set>_<instance id>``
  in Uniform mode. The scale set deletes by **instance id**: the provider translates names to ids from a fresh
  VM list right before every delete (never from memory).
* Scale-out: PATCH ``sku.capacity``, the long-running operation followed to its end. Scale-in:
  ``deleteInstances`` of exactly the drained VMs (capacity drops by as many), verified on failure. A VM whose
  provisioning failed (``AllocationFailed``, ``ZonalAllocationFailed``, …) is a failed launch, not a machine;
  cancelling launches deletes exactly those VMs. ``replace``: delete, then capacity back up.
* Group state (docs/azure-facts.md): a rolling upgrade in progress pauses removals; overprovisioning and
  automatic zone rebalancing are warned once (both create and delete VMs without a Nomad drain); scale-in
  protection (``protectionPolicy.protectFromScaleIn``) and the VM health extension's state are read.
* ``DefaultAzureCredential`` only; forescale.yaml holds none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import GroupState, LaunchFailure, Machine, MachineGroup, MachinePhase, TerminateResult
from autoscaler.core.settings.clouds import AzureVmssSettings
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.azure_api import CredentialFactory, VmssApi
from autoscaler.nodes.cloud_calls import Pacer, refuse_above_max

log = logging.getLogger("forescale.nodes.azure")

NAME_ATTRIBUTE = "unique.platform.azure.name"  # Nomad client/fingerprint/env_azure.go (IMDS compute/name)
GROUP_LIMIT = 1000  # VMs per scale set (platform images; Azure's documented maximum)
STANDBY_POWER = frozenset({"stopping", "stopped", "deallocating", "deallocated"})
ROLLING = frozenset({"RollingForward"})


class AzureVmssProvider:
    """Implements ``NodeProvider`` for one virtual machine scale set (one provider per pool)."""

    kind = "azure_vmss"

    def __init__(
        self,
        settings: AzureVmssSettings,
        *,
        credential: CredentialFactory | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.settings = settings
        self.api = VmssApi(settings, self.where, pacer or Pacer(), credential)

    @property
    def where(self) -> str:
        return f"VMSS {self.settings.name} (resource group {self.settings.resource_group})"

    def node_key(self, pool: PoolConfig) -> str:
        return pool.nodes.instance_attribute or NAME_ATTRIBUTE

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        return attributes.get(self.node_key(pool)) or None

    # ------------------------------------------------------------------ describe

    def describe(self, pool: PoolConfig) -> MachineGroup:
        vmss = self.api.get()
        capacity = _int((vmss.get("sku") or {}).get("capacity"))
        if capacity is None:
            raise NodeProviderError(
                f"{self.where}: the scale set answered without sku.capacity; nothing assumed",
                retryable=True,
                code="Unreadable",
            )
        vms = self.api.vms()
        machines, failed = _split(vms)
        maximum = min(self.settings.max_size or pool.max + pool.nodes.spare, GROUP_LIMIT)
        return MachineGroup(
            name=self.where,
            desired=capacity,
            machines=tuple(_machine(vm) for vm in sorted(machines, key=lambda vm: str(vm.get("name")))),
            min=self.settings.min_size,
            max=maximum,
            state=self._state(vmss, machines, failed),
        )

    def _state(self, vmss: dict[str, Any], machines: list[dict[str, Any]], failed: list[dict[str, Any]]) -> GroupState:
        props = vmss.get("properties") or {}
        name = self.settings.name
        rg = self.settings.resource_group
        notes: list[str] = []
        warnings: list[tuple[str, str]] = []
        in_blocked = None
        state = str(props.get("provisioningState") or "")
        if state and state.lower() != "succeeded":
            notes.append(f"scale set provisioning state {state}")
        if str((props.get("upgradePolicy") or {}).get("mode") or "").lower() == "rolling":
            try:
                upgrade = self.api.rolling_upgrade()
            except NodeProviderError as exc:
                in_blocked = (
                    f"cannot tell whether a rolling upgrade is in progress ({exc}); grant "
                    "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades/read — no machine is removed meanwhile"
                )
            else:
                status = ((upgrade or {}).get("properties") or {}).get("runningStatus") or {}
                if str(status.get("code") or "") in ROLLING:
                    in_blocked = (
                        f"a rolling upgrade is {status.get('code')}: Azure replaces VMs itself; forescale removes none "
                        "until it ends"
                    )
        if props.get("overprovision") is not False and str(props.get("orchestrationMode") or "Uniform") == "Uniform":
            warnings.append(
                (
                    f"azure_overprovision:{name}",
                    f"{self.where}: overprovisioning is on: Azure starts extra VMs on scale-out and deletes them "
                    "once enough have succeeded — their Nomad clients may register and then vanish. Turn it off: "
                    f"az vmss update -g {rg} -n {name} --set overprovision=false (docs/nodes.md)",
                )
            )
        rebalance = ((props.get("resiliencyPolicy") or {}).get("automaticZoneRebalancingPolicy") or {}).get("enabled")
        if rebalance:
            warnings.append(
                (
                    f"azure_zone_rebalance:{name}",
                    f"{self.where}: automatic zone rebalancing is on: after forescale deletes exact VMs, Azure may "
                    "create and delete VMs in other zones to even them out — without a Nomad drain. Turn it off "
                    f"(az vmss update -g {rg} -n {name} --enable-automatic-zone-balancing false; docs/nodes.md)",
                )
            )
        failures = []
        for vm in failed:
            code, message = _failure(vm)
            failures.append(LaunchFailure(f"{vm.get('name')}:{code}", message, _time(vm), code))
        launching = any(_provisioning(vm) == "creating" for vm in machines)
        return GroupState(None, in_blocked, launching, tuple(failures), tuple(warnings), tuple(notes))

    # ------------------------------------------------------------------ changes

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        refuse_above_max(self.where, group, desired, "max (nodes.azure.max_size)")
        self.api.set_capacity(desired)
        log.info("%s: capacity %d → %d (pool %s)", self.where, group.desired, desired, pool.name)
        return f"{self.where}: capacity {group.desired} → {desired}"

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        capacity = _int((self.api.get().get("sku") or {}).get("capacity")) or 0
        vms = self.api.vms()
        machines, failed = _split(vms)
        live = [vm for vm in machines if _provisioning(vm) != "deleting"]
        if len(live) > desired:
            raise NodeProviderError(
                f"{self.where}: {len(live)} VMs exist now, more than {desired}: capacity not lowered (the scale set "
                "would pick VMs to delete itself, undrained); the next tick looks again",
                code="Appeared",
            )
        excess = capacity - desired
        if excess <= 0:
            return f"{self.where}: capacity {capacity} (nothing to cancel)"
        cancel = [str(vm.get("instanceId")) for vm in failed[:excess]]
        if cancel:
            self.api.delete_instances(cancel)
        left = capacity - len(cancel)
        if left > desired and len(live) + len(failed) - len(cancel) <= desired:
            self.api.set_capacity(desired)  # VMs not listed yet (a stale list): none exists beyond ``desired``
            left = desired
        log.info(
            "%s: capacity %d → %d: launches that never came cancelled (pool %s)", self.where, capacity, left, pool.name
        )
        return f"{self.where}: capacity {capacity} → {left}"

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        try:
            by_name = {str(vm.get("name")): vm for vm in self.api.vms()}
        except NodeProviderError as exc:
            return [TerminateResult(m, False, str(exc)) for m in machines]
        results: dict[str, TerminateResult] = {}
        ids: dict[str, str] = {}  # VM name → instance id (what deleteInstances takes)
        for name in machines:
            vm = by_name.get(name)
            if vm is None or not vm.get("instanceId"):
                results[name] = TerminateResult(name, False, f"{self.where}: no VM named {name} in the scale set")
            elif _provisioning(vm) == "deleting":
                results[name] = TerminateResult(name, False, f"{self.where}: {name} is already being deleted")
            else:
                ids[name] = str(vm["instanceId"])
        if ids:
            results.update(self._delete(ids))
        done = [r for r in results.values() if r.ok]
        if replace and done:
            try:
                capacity = _int((self.api.get().get("sku") or {}).get("capacity")) or 0
                self.api.set_capacity(capacity + len(done))
            except NodeProviderError as exc:
                log.error(
                    "%s: deleted %d VM(s) to replace them, but raising the capacity back failed: %s",
                    self.where,
                    len(done),
                    exc,
                )
        for r in done:
            log.info(
                "%s: deleted %s (instance %s)%s (pool %s)",
                self.where,
                r.machine,
                ids.get(r.machine),
                " (replaced)" if replace else ", capacity lowered",
                pool.name,
            )
        return [results[m] for m in machines]

    def _delete(self, ids: dict[str, str]) -> dict[str, TerminateResult]:
        try:
            self.api.delete_instances(list(ids.values()))
        except NodeProviderError as exc:
            # Partial failure: some VMs may be gone or deleting; the others were not deleted.
            try:
                after = {str(vm.get("name")): vm for vm in self.api.vms()}
            except NodeProviderError:
                return {n: TerminateResult(n, False, str(exc)) for n in ids}
            out = {}
            for n in ids:
                vm = after.get(n)
                gone = vm is None or _provisioning(vm) == "deleting"
                out[n] = TerminateResult(n, True) if gone else TerminateResult(n, False, f"{n} was not deleted: {exc}")
            return out
        return {n: TerminateResult(n, True) for n in ids}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _statuses(vm: dict[str, Any]) -> list[dict[str, Any]]:
    view = (vm.get("properties") or {}).get("instanceView") or {}
    return [s for s in view.get("statuses") or [] if isinstance(s, dict)]


def _provisioning(vm: dict[str, Any]) -> str:
    return str((vm.get("properties") or {}).get("provisioningState") or "").lower()


def _power(vm: dict[str, Any]) -> str | None:
    for s in _statuses(vm):
        code = str(s.get("code") or "")
        if code.startswith("PowerState/"):
            return code.split("/", 1)[1].lower()
    return None


def _failed(vm: dict[str, Any]) -> bool:
    """Provisioning failed and the VM is not running: a launch that did not happen (an allocation failure)."""
    return _provisioning(vm) == "failed" and _power(vm) != "running"


def _split(vms: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    machines: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for vm in vms:
        (failed if _failed(vm) else machines).append(vm)
    return machines, failed


def _failure(vm: dict[str, Any]) -> tuple[str, str]:
    """(code, message) of a failed provisioning: ``ProvisioningState/failed/AllocationFailed`` → AllocationFailed."""
    for s in _statuses(vm):
        code = str(s.get("code") or "")
        if code.lower().startswith("provisioningstate/failed"):
            name = code.split("/", 2)[2] if code.count("/") >= 2 else "ProvisioningFailed"
            message = " ".join(str(s.get("message") or s.get("displayStatus") or name).split())[:300]
            return name, message
    return "ProvisioningFailed", f"VM {vm.get('name')} failed to provision"


def _time(vm: dict[str, Any]) -> datetime | None:
    raw = (vm.get("properties") or {}).get("timeCreated")
    if isinstance(raw, datetime):
        return raw
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None
    except ValueError:
        return None


def _machine(vm: dict[str, Any]) -> Machine:
    props = vm.get("properties") or {}
    state, power = _provisioning(vm), _power(vm)
    view = props.get("instanceView") or {}
    health = str(((view.get("vmHealth") or {}).get("status") or {}).get("code") or "")
    zones = vm.get("zones") or []
    return Machine(
        id=str(vm.get("name")),
        state=f"{props.get('provisioningState') or '?'}/{power or '?'}",
        launched_at=_time(vm),
        phase=_phase(state, power),
        healthy=health.lower() != "healthstate/unhealthy",
        protected=bool((props.get("protectionPolicy") or {}).get("protectFromScaleIn")),
        zone=str(zones[0]) if zones else None,
    )


def _phase(state: str, power: str | None) -> MachinePhase:
    """provisioningState + PowerState → the node step's phase (docs/azure-facts.md §3)."""
    if state == "deleting":
        return "leaving"
    if power in STANDBY_POWER:
        return "standby"
    if state == "creating" or power == "starting" or (power is None and state not in ("succeeded", "updating")):
        return "booting"
    return "in_service"
