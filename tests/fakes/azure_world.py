"""The state of the fake Azure Compute resource provider: virtual machine scale sets, their VMs and async
operations, on an injectable clock (no threads, no sleeps: time moves when the test's clock moves).

Every rule cites docs/azure-facts.md (§ numbers), which cites the Azure REST API specification for
Microsoft.Compute (``virtualMachineScaleSet.json``, ``virtualMachineScaleSetVM.json`` and their ``examples/``)
and Azure's documentation. The HTTP side is tests/fakes/azure_server.py.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ALLOCATION_MESSAGE = (
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more "
    "about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
)  # §4 (Azure's allocation-failure troubleshooting page)
SKU_MESSAGE = (
    "The requested size for resource '{id}' is currently not available in location '{location}' zones '{zones}' "
    "for subscription '{subscription}'. Please try another size or deploy to a different location or zones. See "
    "https://aka.ms/azureskunotavailable for details."
)  # §4 (Resolve errors for SKU not available)
QUOTA_MESSAGE = (
    "Operation could not be completed as it results in exceeding approved standardNCASv3_T4Family Cores quota. "
    "Additional details - Deployment Model: Resource Manager, Location: {location}, Current Limit: 16, Current "
    "Usage: 16, Additional Required: 4, (Minimum) New Limit Required: 20."
)  # §4 (Resolve errors for resource quotas)


@dataclass
class Vm:
    """One VM of a Uniform scale set (§3): named ``<scale set>_<instance id>``."""

    instance_id: str
    name: str
    zone: str
    created_at: datetime
    state: str = "Creating"  # properties.provisioningState
    power: str | None = None  # PowerState/<power> in the instance view; None before the VM starts
    running_at: datetime | None = None
    fail: tuple[str, str] | None = None  # ProvisioningState/failed/<code>, message
    gone_at: datetime | None = None
    protected: bool = False
    health: str | None = None  # HealthState/<health> (the application health extension)
    undeletable: str | None = None  # partial failure (§5)
    vm_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class AsyncOp:
    """An Azure-AsyncOperation (§2): InProgress until ``done_at``, then Succeeded or Failed (``error``)."""

    id: str
    started: datetime
    done_at: datetime
    error: tuple[str, str] | None = None
    on_done: Callable[[], None] | None = None
    finished: bool = False


@dataclass
class Vmss:
    subscription: str
    resource_group: str
    name: str
    location: str = "westeurope"
    sku: str = "Standard_NC4as_T4_v3"
    capacity: int = 0
    zones: list[str] = field(default_factory=lambda: ["1", "2", "3"])
    vms: dict[str, Vm] = field(default_factory=dict)
    overprovision: bool = False
    upgrade_mode: str = "Manual"
    rolling: str | None = None  # the latest rolling upgrade's runningStatus.code (None: never had one)
    zone_rebalance: bool = False
    next_id: int = 0

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{self.name}"
        )


class AzureWorld:
    """Knobs: ``vm_delay`` (Creating → Succeeded, §3), ``running_delay`` (→ PowerState/running), ``delete_delay``
    (Deleting → gone, §5), ``stale_for`` (the VM list answers as of that long ago, §6)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.vm_delay = timedelta(seconds=50)
        self.running_delay = timedelta(seconds=70)
        self.delete_delay = timedelta(seconds=45)
        self.stale_for = timedelta(0)
        self.sets: dict[tuple[str, str, str], Vmss] = {}
        self.ops: dict[str, AsyncOp] = {}
        self.allocation: str | None = None  # AllocationFailed / ZonalAllocationFailed: new VMs fail (§4)
        self.refuse_update: str | None = None  # SkuNotAvailable / QuotaExceeded: capacity changes refused (§4)
        self._ops = itertools.count(1)
        self._history: dict[str, list[tuple[datetime, list[dict[str, Any]]]]] = {}

    def create(self, subscription: str, resource_group: str, name: str, *, size: int = 0, **kw: Any) -> Vmss:
        """A scale set that already exists with ``size`` VMs running."""
        vmss = Vmss(subscription, resource_group, name, **kw)
        self.sets[(subscription.lower(), resource_group.lower(), name.lower())] = vmss
        now = self.clock()
        for vm in self._add(vmss, size, now - timedelta(hours=1)):
            vm.state, vm.power, vm.running_at = "Succeeded", "running", now - timedelta(minutes=50)
        self.snapshot(vmss)
        return vmss

    def find(self, subscription: str, resource_group: str, name: str) -> Vmss | None:
        return self.sets.get((subscription.lower(), resource_group.lower(), name.lower()))

    # ------------------------------------------------------------------ time

    def tick(self) -> None:
        now = self.clock()
        for vmss in self.sets.values():
            changed = False
            for vm in list(vmss.vms.values()):
                if vm.state == "Deleting" and vm.gone_at is not None and now >= vm.gone_at:
                    del vmss.vms[vm.instance_id]
                    changed = True
                elif vm.state == "Creating" and now >= vm.created_at + self.vm_delay:
                    if vm.fail is not None:  # §4: the allocation failed; the VM stays, Failed, never running
                        vm.state = "Failed"
                    else:
                        vm.state, vm.power = "Succeeded", "starting"
                    changed = True
                elif vm.state == "Succeeded" and vm.power == "starting" and now >= vm.created_at + self.running_delay:
                    vm.power, vm.running_at = "running", now
                    changed = True
            if changed:
                self.snapshot(vmss)
        for op in self.ops.values():
            if not op.finished and now >= op.done_at:
                op.finished = True
                if op.on_done is not None:
                    op.on_done()

    # ------------------------------------------------------------------ API semantics

    def set_capacity(self, vmss: Vmss, capacity: int) -> AsyncOp:
        """§1: sku.capacity := capacity. More: new VMs Creating (failing on an allocation stockout, §4). Fewer:
        the scale-in policy (Default: balance zones, then the highest instance ids) deletes VMs."""
        now = self.clock()
        live = [v for v in vmss.vms.values() if v.state != "Deleting"]
        error = None
        if capacity > len(live):
            added = self._add(vmss, capacity - len(live), now)
            if self.allocation is not None:
                for vm in added:
                    vm.fail = (self.allocation, ALLOCATION_MESSAGE)
                error = (self.allocation, ALLOCATION_MESSAGE)
        elif capacity < len(live):
            for vm in sorted(live, key=lambda v: (v.state != "Failed", -int(v.instance_id)))[: len(live) - capacity]:
                self._delete(vm, now)
        vmss.capacity = capacity
        self.snapshot(vmss)
        return self.operation(self.vm_delay, error)

    def delete_instances(self, vmss: Vmss, ids: list[str]) -> AsyncOp:
        """§5: the named VMs → Deleting, capacity − 1 each; an ``undeletable`` VM stays and fails the operation."""
        now = self.clock()
        error = None
        kept = []
        for iid in ids:
            vm = vmss.vms[iid]
            if vm.undeletable:
                error = ("InternalExecutionError", f"VM '{vm.name}' could not be deleted: {vm.undeletable}")
                kept.append(vm)
                continue
            self._delete(vm, now)
            vmss.capacity -= 1
        self.snapshot(vmss)
        return self.operation(self.delete_delay, error)

    def operation(self, takes: timedelta, error: tuple[str, str] | None = None) -> AsyncOp:
        now = self.clock()
        op = AsyncOp(str(uuid.UUID(int=next(self._ops) * 7919)), now, now + takes, error)
        self.ops[op.id] = op
        return op

    def settle(self, vmss: Vmss) -> None:
        """Test shortcut: every VM provisioned and running, every deletion gone — as if minutes had passed."""
        now = self.clock()
        for vm in list(vmss.vms.values()):
            if vm.state == "Deleting":
                del vmss.vms[vm.instance_id]
            elif vm.state != "Failed":
                vm.state, vm.power, vm.running_at = "Succeeded", "running", vm.running_at or now
        self.snapshot(vmss)

    # ------------------------------------------------------------------ reads

    def snapshot(self, vmss: Vmss) -> None:
        history = self._history.setdefault(vmss.id.lower(), [])
        history.append((self.clock(), [dict(vars(v)) for v in vmss.vms.values()]))
        del history[:-200]

    def listed(self, vmss: Vmss) -> list[Vm]:
        """The VM list: the truth, or with ``stale_for`` the state of that long ago (§6)."""
        if self.stale_for <= timedelta(0):
            return list(vmss.vms.values())
        cutoff = self.clock() - self.stale_for
        history = self._history.get(vmss.id.lower()) or []
        older = [rows for when, rows in history if when <= cutoff]
        rows = older[-1] if older else (history[0][1] if history else [])
        return [Vm(**row) for row in rows]

    # ------------------------------------------------------------------ helpers

    def _add(self, vmss: Vmss, n: int, now: datetime) -> list[Vm]:
        out = []
        for _ in range(n):
            iid = str(vmss.next_id)
            vmss.next_id += 1
            zone = vmss.zones[int(iid) % len(vmss.zones)] if vmss.zones else ""
            vm = Vm(iid, f"{vmss.name}_{iid}", zone, now)
            vmss.vms[iid] = vm
            out.append(vm)
        vmss.capacity = len([v for v in vmss.vms.values() if v.state != "Deleting"])
        return out

    def _delete(self, vm: Vm, now: datetime) -> None:
        vm.state = "Deleting"
        vm.gone_at = now + self.delete_delay
