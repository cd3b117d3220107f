"""The state of the fake Compute Engine: managed instance groups, their managed instances and operations, on an
injectable clock (no threads of its own, no sleeps: time moves when the test's clock moves).

Every rule cites docs/gce-facts.md (§ numbers), which cites the Compute Engine v1 discovery document
(``discoveries/compute.v1.json``: resources ``instanceGroupManagers``, ``regionInstanceGroupManagers``,
``zoneOperations``, ``regionOperations``; schemas ``InstanceGroupManager``, ``ManagedInstance``, ``Operation``)
and Google's documentation. The HTTP side is tests/fakes/gce_server.py.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

STOCKOUT_MESSAGE = (
    "The zone '{zone}' does not have enough resources available to fulfill the request.  Try a different zone, "
    "or try again later."
)  # §4: the text Compute Engine returns with ZONE_RESOURCE_POOL_EXHAUSTED (Google's troubleshooting page)
QUOTA_MESSAGE = "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 4.0 in region {region}."


@dataclass
class ManagedVm:
    """One managed instance (§3): the entry exists from the resize; the VM only once it is created."""

    name: str
    zone: str
    id: int
    action: str = "CREATING"  # currentAction
    status: str | None = None  # instanceStatus: None while the VM does not exist (§3)
    asked_at: datetime | None = None
    created_at: datetime | None = None  # the VM exists from here
    next_try: datetime | None = None  # a failed creation is retried then (§4)
    errors: list[tuple[str, str]] = field(default_factory=list)  # lastAttempt.errors
    gone_at: datetime | None = None  # DELETING: removed then
    health: str | None = None  # instanceHealth[0].detailedHealthState
    undeletable: str | None = None  # partial failure (§5): deleteInstances cannot delete it, with this message

    @property
    def exists(self) -> bool:
        return self.status is not None


@dataclass
class Operation:
    """A zonal or regional Operation (§2): PENDING/RUNNING until ``done_at``, then DONE (with ``errors``)."""

    name: str
    scope: str  # zones/<zone> | regions/<region>
    kind: str  # resize | deleteInstances
    target: str
    inserted: datetime
    done_at: datetime
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    id: int = 0


@dataclass
class Mig:
    """One managed instance group (§1)."""

    project: str
    scope: str  # zones/<zone> | regions/<region>
    name: str
    zones: list[str]
    target_size: int = 0
    vms: dict[str, ManagedVm] = field(default_factory=dict)
    autoscaler: str | None = None
    redistribution: str = "PROACTIVE"  # updatePolicy.instanceRedistributionType (regional default, §7)
    updating: bool = False  # status.versionTarget.isReached == False (§7)
    id: int = 0

    @property
    def regional(self) -> bool:
        return self.scope.startswith("regions/")

    def live(self) -> list[ManagedVm]:
        return [v for v in self.vms.values() if v.action not in ("DELETING", "ABANDONING")]


class GceWorld:
    """Knobs: ``vm_delay`` (entry → VM exists, §3), ``running_delay`` (→ RUNNING, currentAction NONE),
    ``op_delay`` (Operation DONE, §2), ``delete_delay`` (DELETING → gone), ``retry_interval`` (a failed creation
    is retried, §4), ``stale_for`` (listManagedInstances answers as of that long ago, §6)."""

    def __init__(self, clock: Callable[[], datetime], seed: int = 24) -> None:
        self.clock = clock
        self.vm_delay = timedelta(seconds=20)
        self.running_delay = timedelta(seconds=60)
        self.op_delay = timedelta(seconds=4)
        self.delete_delay = timedelta(seconds=45)
        self.retry_interval = timedelta(minutes=1)
        self.stale_for = timedelta(0)
        self.migs: dict[tuple[str, str, str], Mig] = {}
        self.ops: dict[str, Operation] = {}
        self.stockout: str | None = None  # an error code every creation attempt fails with (§4), or None
        self.boot_delays: Callable[[], timedelta] | None = None  # per-VM running_delay (benchmarks)
        self._rng = random.Random(seed)
        self._ids = itertools.count(4_000_000_000_000_000_001)
        self._history: dict[tuple[str, str, str], list[tuple[datetime, list[dict[str, Any]]]]] = {}

    # ------------------------------------------------------------------ setup (test API)

    def create(
        self,
        project: str,
        scope: str,
        name: str,
        *,
        size: int = 0,
        zones: list[str] | None = None,
        running: bool = True,
    ) -> Mig:
        """A group that already exists with ``size`` VMs (RUNNING, currentAction NONE when ``running``)."""
        where = scope.split("/", 1)[1]
        zones = zones or ([where] if scope.startswith("zones/") else [f"{where}-a", f"{where}-b", f"{where}-c"])
        mig = Mig(project, scope, name, zones, id=next(self._ids))
        if scope.startswith("zones/"):
            mig.redistribution = "NONE"
        self.migs[(project, scope, name)] = mig
        now = self.clock()
        self._add(mig, size, now)
        for vm in mig.vms.values():
            if running:
                vm.status, vm.action, vm.created_at = "RUNNING", "NONE", now - timedelta(hours=1)
        self.snapshot(mig)
        return mig

    def mig(self, project: str, scope: str, name: str) -> Mig | None:
        return self.migs.get((project, scope, name))

    # ------------------------------------------------------------------ time

    def tick(self) -> None:
        """What Compute Engine does on its own up to now: creations, retries, deletions (§3, §4)."""
        now = self.clock()
        for mig in self.migs.values():
            changed = False
            for vm in list(mig.vms.values()):
                if vm.action == "DELETING" and vm.gone_at is not None and now >= vm.gone_at:
                    del mig.vms[vm.name]
                    changed = True
                elif vm.action in ("CREATING", "RECREATING") and not vm.exists:
                    changed |= self._try_create(mig, vm, now)
                elif vm.exists and vm.status != "RUNNING" and vm.created_at is not None:
                    if now >= vm.created_at + self._running_delay(vm):
                        vm.status, vm.action = "RUNNING", "NONE"
                        changed = True
                    elif vm.status == "PROVISIONING" and now >= vm.created_at + timedelta(seconds=10):
                        vm.status = "STAGING"
                        changed = True
            if changed:
                self.snapshot(mig)

    def _running_delay(self, vm: ManagedVm) -> timedelta:
        return self.running_delay

    def _try_create(self, mig: Mig, vm: ManagedVm, now: datetime) -> bool:
        due = vm.next_try or ((vm.asked_at or now) + self.vm_delay)
        if now < due:
            return False
        if self.stockout is not None:  # §4: the attempt fails; the group retries (CREATING, with lastAttempt)
            message = STOCKOUT_MESSAGE if "EXHAUSTED" in self.stockout else QUOTA_MESSAGE
            where = f"projects/{mig.project}/zones/{vm.zone}"
            vm.errors = [(self.stockout, message.format(zone=where, region=mig.scope.split("/", 1)[1]))]
            vm.next_try = now + self.retry_interval
            return True
        vm.errors, vm.next_try = [], None
        vm.status, vm.created_at = "PROVISIONING", due
        return True

    # ------------------------------------------------------------------ API semantics

    def resize(self, mig: Mig, size: int) -> None:
        """§1: targetSize := size; new entries CREATING (no VM yet); fewer: queued entries go first, then the
        newest VMs (the group chooses — forescale never lets it choose an existing VM)."""
        now = self.clock()
        live = mig.live()
        if size > len(live):
            self._add(mig, size - len(live), now)
        elif size < len(live):
            order = sorted(live, key=lambda v: (v.exists, v.asked_at or now, v.name), reverse=False)
            pending = [v for v in order if not v.exists]
            existing = sorted((v for v in order if v.exists), key=lambda v: v.created_at or now, reverse=True)
            for vm in (pending + existing)[: len(live) - size]:
                self._delete(vm, now)
        mig.target_size = size
        self.snapshot(mig)

    def delete_instances(self, mig: Mig, refs: list[str], skip: bool) -> tuple[list[tuple[str, str]], list[str]]:
        """§5: each named instance → DELETING and targetSize − 1. A name that is not a live member fails the
        whole operation unless ``skip`` (then it is skipped with a warning). A VM marked ``undeletable`` stays
        and the operation ends with an error naming it (the others are deleted). Returns (errors, warnings)."""
        now = self.clock()
        names = [r.rsplit("/", 1)[-1] for r in refs]
        bad = [n for n in names if n not in mig.vms or mig.vms[n].action in ("DELETING", "ABANDONING")]
        if bad and not skip:
            return [
                ("RESOURCE_NOT_FOUND", f"Instance '{bad[0]}' is not a member of the group or is being deleted.")
            ], []
        errors, warnings = [], []
        for name in names:
            if name in bad:
                warnings.append(("NOT_A_MEMBER", f"Instance '{name}' skipped: not a member or already being deleted."))
                continue
            vm = mig.vms[name]
            if vm.undeletable:
                errors.append(("CONDITION_NOT_MET", f"Instance '{name}': {vm.undeletable}"))
                continue
            self._delete(vm, now)
            mig.target_size -= 1
        self.snapshot(mig)
        return errors, warnings

    def operation(
        self,
        mig: Mig,
        kind: str,
        errors: list[tuple[str, str]] | None = None,
        warnings: list[tuple[str, str]] | None = None,
    ) -> Operation:
        now = self.clock()
        name = (
            "operation-"
            + "".join(self._rng.choices(string.digits, k=13))
            + "-"
            + "".join(self._rng.choices("0123456789abcdef", k=13))
        )
        op = Operation(
            name,
            mig.scope,
            kind,
            mig.name,
            now,
            now + self.op_delay,
            list(errors or []),
            list(warnings or []),
            next(self._ids),
        )
        self.ops[name] = op
        return op

    def settle(self, mig: Mig) -> None:
        """Test shortcut: every creation done (RUNNING), every deletion gone — as if minutes had passed."""
        now = self.clock()
        for vm in list(mig.vms.values()):
            if vm.action == "DELETING":
                del mig.vms[vm.name]
            elif not vm.exists or vm.status != "RUNNING":
                vm.status, vm.action, vm.errors = "RUNNING", "NONE", []
                vm.created_at = vm.created_at or now
        self.snapshot(mig)

    # ------------------------------------------------------------------ faults (test API)

    def fail_creations(self, code: str = "ZONE_RESOURCE_POOL_EXHAUSTED") -> None:
        """Every creation attempt fails with ``code`` until ``clear_failures()`` (§4)."""
        self.stockout = code

    def clear_failures(self) -> None:
        self.stockout = None

    def refuse_delete(self, mig: Mig, name: str, why: str = "the instance is being operated on") -> None:
        mig.vms[name].undeletable = why

    # ------------------------------------------------------------------ reads

    def snapshot(self, mig: Mig) -> None:
        key = (mig.project, mig.scope, mig.name)
        history = self._history.setdefault(key, [])
        history.append((self.clock(), [dict(vars(v), errors=list(v.errors)) for v in mig.vms.values()]))
        del history[:-200]

    def listed(self, mig: Mig) -> list[ManagedVm]:
        """What listManagedInstances shows: the truth, or with ``stale_for`` the state of that long ago (§6)."""
        if self.stale_for <= timedelta(0):
            return list(mig.vms.values())
        cutoff = self.clock() - self.stale_for
        history = self._history.get((mig.project, mig.scope, mig.name)) or []
        older = [entry for when, entry in history if when <= cutoff]
        rows = older[-1] if older else (history[0][1] if history else [])
        return [ManagedVm(**row) for row in rows]

    # ------------------------------------------------------------------ helpers

    def _add(self, mig: Mig, n: int, now: datetime) -> None:
        for i in range(n):
            zone = mig.zones[(len(mig.vms) + i) % len(mig.zones)]
            name = f"{mig.name}-{''.join(self._rng.choices(string.ascii_lowercase + string.digits, k=4))}"
            while name in mig.vms:
                name = f"{mig.name}-{''.join(self._rng.choices(string.ascii_lowercase + string.digits, k=4))}"
            mig.vms[name] = ManagedVm(name, zone, next(self._ids), asked_at=now)
        mig.target_size = len(mig.live())

    def _delete(self, vm: ManagedVm, now: datetime) -> None:
        vm.action = "DELETING"
        vm.gone_at = now + (self.delete_delay if vm.exists else timedelta(seconds=1))
