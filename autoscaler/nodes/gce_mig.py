"""The ``gce_mig`` node provider: a Compute Engine managed instance group (zonal or regional).

* Machines are the group's managed instances whose VM exists (``instanceStatus`` set; docs/gce-facts.md §3), by
  instance **name** — what a Nomad client's ``unique.platform.gce.hostname`` starts with (Nomad's env_gce
  fingerprint). An entry without a VM is a launch in flight; its ``lastAttempt.errors`` (a stockout:
  ``ZONE_RESOURCE_POOL_EXHAUSTED``; a quota) are failed launches. A VM's creation time comes from
  ``instances.list`` (read once per VM; optional: without it boots count from forescale's own ask).
* Scale-out: ``resize`` to the new size, the Operation followed to DONE. Scale-in: ``deleteInstances`` of
  exactly the drained instances (the group's target size drops by as many), verified afterwards. A launch that
  never came is cancelled by deleting exactly that queued entry — never by a resize that would let the group
  pick which VMs go. ``replace``: delete, then resize back up (a new VM with a new name).
* Group state: an update rolling out (``status.versionTarget.isReached`` false) pauses removals; a regional
  group's proactive instance redistribution and an attached autoscaler are warned once (both remove VMs
  without a Nomad drain); the group has no min/max of its own: ``nodes.gce.min_size``/``max_size`` (default
  the pool's max + spare).
* Application Default Credentials only; forescale.yaml holds none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import GroupState, LaunchFailure, Machine, MachineGroup, MachinePhase, TerminateResult
from autoscaler.core.settings.clouds import GceMigSettings
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.nodes.cloud_calls import Pacer, refuse_above_max
from autoscaler.nodes.gce_api import STOCKOUT_CODES, MigApi

log = logging.getLogger("forescale.nodes.gce")

HOSTNAME_ATTRIBUTE = "unique.platform.gce.hostname"  # Nomad client/fingerprint/env_gce.go
ID_ATTRIBUTE = "unique.platform.gce.id"
GROUP_LIMIT = {"zones": 1000, "regions": 2000}  # instances per zonal / regional group (Compute Engine limits)
BOOTING_ACTIONS = frozenset(
    {"CREATING", "CREATING_WITHOUT_RETRIES", "VERIFYING", "RECREATING", "RESTARTING", "STARTING", "RESUMING"}
)
LEAVING_ACTIONS = frozenset({"DELETING", "ABANDONING"})
STANDBY_STATUSES = frozenset({"STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED", "TERMINATED"})
UNHEALTHY = frozenset({"UNHEALTHY", "TIMEOUT"})


class GceMigProvider:
    """Implements ``NodeProvider`` for one managed instance group (one provider per pool)."""

    kind = "gce_mig"

    def __init__(
        self,
        settings: GceMigSettings,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.settings = settings
        self.api = MigApi(settings, self.where, pacer or Pacer())
        self._by_id: dict[str, str] = {}  # numeric instance id → name, from the last describe
        self._created: dict[tuple[str, str], datetime] = {}  # (name, id) → the VM's creationTimestamp

    @property
    def where(self) -> str:
        s = self.settings
        return f"MIG {s.name} ({s.zone or s.region})"

    # ------------------------------------------------------------------ mapping

    def node_key(self, pool: PoolConfig) -> str:
        return pool.nodes.instance_attribute or HOSTNAME_ATTRIBUTE

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        """The instance name: the first label of the fingerprinted hostname (``gpu-x7k2.us-central1-a.c.p.internal``)
        — or, when the node also has the instance's numeric id and the group lists it, that instance's name (a
        custom hostname cannot mislead it)."""
        by_id = self._by_id.get(attributes.get(ID_ATTRIBUTE, ""))
        if by_id and self.node_key(pool) == HOSTNAME_ATTRIBUTE:
            return by_id
        value = attributes.get(self.node_key(pool)) or ""
        if value in self._by_id:
            return self._by_id[value]
        return value.split(".", 1)[0] or None

    # ------------------------------------------------------------------ describe

    def describe(self, pool: PoolConfig) -> MachineGroup:
        igm = self.api.get()
        entries = self.api.managed_instances()
        machines, pending = _split(entries)
        self._by_id = {str(mi.id): str(mi.name) for mi in entries if mi.id}
        self._read_creation_times(machines, str(igm.base_instance_name or self.settings.name))
        limit = GROUP_LIMIT["zones" if self.settings.zone else "regions"]
        maximum = min(self.settings.max_size or pool.max + pool.nodes.spare, limit)
        return MachineGroup(
            name=self.where,
            desired=int(igm.target_size),
            machines=tuple(
                _machine(mi, self._created.get((str(mi.name), str(mi.id))))
                for mi in sorted(machines, key=lambda mi: str(mi.name))
            ),
            min=self.settings.min_size,
            max=maximum,
            state=self._state(igm, pending),
        )

    def _read_creation_times(self, machines: list[Any], base: str) -> None:
        """When each VM was created (boots and boot_timeout count from there, across restarts): read once per VM
        from ``instances.list`` of its zone; unreadable → measured from forescale's own ask (a warning)."""
        keys = {(str(mi.name), str(mi.id)): _zone(mi) for mi in machines}
        self._created = {k: v for k, v in self._created.items() if k in keys}
        for zone in sorted({z for k, z in keys.items() if k not in self._created and z}):
            try:
                times = self.api.creation_times(zone, base)
            except NodeProviderError as exc:
                log.warning("%s: cannot read VM creation times (boots count from forescale's ask): %s", self.where, exc)
                return
            for (name, iid), z in keys.items():
                stamp = times.get(name)
                if z == zone and stamp:
                    try:
                        self._created[(name, iid)] = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                    except ValueError:
                        continue

    def _state(self, igm: Any, pending: list[Any]) -> GroupState:
        s = self.settings
        notes: list[str] = []
        warnings: list[tuple[str, str]] = []
        in_blocked = None
        status = igm.status
        actions = igm.current_actions
        if not status.is_stable:
            busy = {
                k: int(getattr(actions, k, 0) or 0)
                for k in ("creating", "creating_without_retries", "recreating", "deleting", "restarting", "verifying")
            }
            doing = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in busy.items() if v)
            notes.append(f"group not stable yet ({doing or 'working'})")
        if "version_target" in status and not status.version_target.is_reached:
            in_blocked = (
                "an update is rolling out (status.versionTarget not reached): Compute Engine replaces instances "
                "itself; forescale removes none until it ends"
            )
        if status.autoscaler:
            warnings.append(
                (
                    f"gce_autoscaler:{s.name}",
                    f"{self.where}: an autoscaler is attached ({status.autoscaler.rsplit('/', 1)[-1]}): it resizes the "
                    "group too and deletes VMs without a Nomad drain — delete it or set its mode to off: gcloud "
                    f"compute instance-groups managed set-autoscaling {s.name} --mode=off "
                    + (f"--zone={s.zone}" if s.zone else f"--region={s.region}"),
                )
            )
        redistribution = str(igm.update_policy.instance_redistribution_type or "PROACTIVE")
        if s.region and redistribution != "NONE":
            warnings.append(
                (
                    f"gce_redistribution:{s.name}",
                    f"{self.where}: proactive instance redistribution is on: after forescale deletes exact instances, "
                    "Compute Engine may delete and create VMs in other zones to even them out — without a Nomad "
                    f"drain. Turn it off: gcloud compute instance-groups managed update {s.name} --region={s.region} "
                    "--instance-redistribution-type=NONE (docs/nodes.md)",
                )
            )
        for field, what in (("target_stopped_size", "stopped"), ("target_suspended_size", "suspended")):
            if int(getattr(igm, field, 0) or 0):
                notes.append(f"standby pool of {getattr(igm, field)} {what} VM(s): not capacity until resumed")
        failures = []
        launching = False
        for mi in pending:
            errors = list(mi.last_attempt.errors.errors) if "last_attempt" in mi else []
            if not errors:
                launching = True
                continue
            first = errors[0]
            message = " ".join(str(first.message).split())[:300]
            failures.append(LaunchFailure(f"{mi.name}:{first.code}", message, None, str(first.code)))
        failures.sort(key=lambda f: (f.code not in STOCKOUT_CODES, f.id))
        return GroupState(None, in_blocked, launching, tuple(failures), tuple(warnings), tuple(notes))

    # ------------------------------------------------------------------ changes

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        refuse_above_max(self.where, group, desired, "max (nodes.gce.max_size)")
        self.api.resize(desired)
        log.info("%s: target size %d → %d (pool %s)", self.where, group.desired, desired, pool.name)
        return f"{self.where}: target size {group.desired} → {desired}"

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        igm = self.api.get()
        entries = self.api.managed_instances()
        machines, pending = _split(entries)
        live = [mi for mi in machines if str(mi.current_action) not in LEAVING_ACTIONS]
        target = int(igm.target_size)
        if len(live) > desired:
            raise NodeProviderError(
                f"{self.where}: {len(live)} VMs exist now, more than {desired}: target size not lowered (the group "
                "would pick VMs to delete itself, undrained); the next tick looks again",
                code="Appeared",
            )
        excess = target - desired
        if excess <= 0:
            return f"{self.where}: target size {target} (nothing to cancel)"
        # Failing entries first (a stockout), then the other queued ones: each is deleted by its own URL or name.
        pending.sort(key=lambda mi: ("last_attempt" not in mi or not mi.last_attempt.errors.errors, str(mi.name)))
        cancel = pending[:excess]
        if cancel:
            errors = self.api.delete_instances([_ref(mi) for mi in cancel])
            if errors:
                raise self.api.op_error("deleteInstances", errors)
        left = target - len(cancel)
        if left > desired and len(live) + len(pending) - len(cancel) <= desired:
            self.api.resize(desired)  # entries not listed yet (a stale list): nothing exists beyond ``desired``
            left = desired
        log.info(
            "%s: target size %d → %d: launches that never came cancelled (pool %s)", self.where, target, left, pool.name
        )
        return f"{self.where}: target size {target} → {left}"

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        try:
            by_name = {str(mi.name): mi for mi in self.api.managed_instances()}
        except NodeProviderError as exc:
            return [TerminateResult(m, False, str(exc)) for m in machines]
        results: dict[str, TerminateResult] = {}
        todo = []
        for name in machines:
            mi = by_name.get(name)
            if mi is None:
                results[name] = TerminateResult(name, False, f"{self.where}: {name} is not an instance of the group")
            elif str(mi.current_action) in LEAVING_ACTIONS:
                results[name] = TerminateResult(
                    name, False, f"{self.where}: {name} is already {str(mi.current_action).lower()}"
                )
            else:
                todo.append(mi)
        if todo:
            results.update(self._delete(todo))
        done = [r for r in results.values() if r.ok]
        if replace and done:
            try:
                size = int(self.api.get().target_size) + len(done)
                self.api.resize(size)
            except NodeProviderError as exc:
                log.error(
                    "%s: deleted %d instance(s) to replace them, but the resize back up failed: %s",
                    self.where,
                    len(done),
                    exc,
                )
        for r in done:
            log.info(
                "%s: deleted %s%s (pool %s)",
                self.where,
                r.machine,
                " (replaced)" if replace else ", target size lowered",
                pool.name,
            )
        return [results[m] for m in machines]

    def _delete(self, todo: list[Any]) -> dict[str, TerminateResult]:
        names = [str(mi.name) for mi in todo]
        try:
            errors = self.api.delete_instances([_ref(mi) for mi in todo])
        except NodeProviderError as exc:
            return {n: TerminateResult(n, False, str(exc)) for n in names}
        if not errors:
            return {n: TerminateResult(n, True) for n in names}
        # Partial failure: the operation has errors. Whatever is deleting (or gone) went; the rest did not.
        why = "; ".join(f"{c}: {m}" for c, m in errors)[:300]
        try:
            after = {str(mi.name): mi for mi in self.api.managed_instances()}
        except NodeProviderError as exc:
            return {
                n: TerminateResult(n, False, f"{self.where}: deleteInstances reported errors ({why}); {exc}")
                for n in names
            }
        out = {}
        for n in names:
            mi = after.get(n)
            if mi is None or str(mi.current_action) in LEAVING_ACTIONS:
                out[n] = TerminateResult(n, True)
            else:
                out[n] = TerminateResult(n, False, f"{self.where}: {n} was not deleted ({why})")
        return out


def _split(entries: list[Any]) -> tuple[list[Any], list[Any]]:
    """(entries whose VM exists, entries without a VM yet: queued or failing creations). An entry without a VM that
    is being deleted (a cancelled launch) is neither."""
    machines: list[Any] = []
    pending: list[Any] = []
    for mi in entries:
        if mi.instance_status:
            machines.append(mi)
        elif str(mi.current_action) not in LEAVING_ACTIONS:
            pending.append(mi)
    return machines, pending


def _ref(mi: Any) -> str:
    """What deleteInstances takes: the instance URL, or the name of a queued instance (which has none)."""
    url = str(mi.instance or "")
    if "/projects/" in url:
        return url[url.index("/projects/") + 1 :]
    return url or str(mi.name)


def _zone(mi: Any) -> str | None:
    url = str(mi.instance or "")
    return url.split("/zones/", 1)[1].split("/", 1)[0] if "/zones/" in url else None


def _machine(mi: Any, created: datetime | None) -> Machine:
    action, status = str(mi.current_action or "NONE"), str(mi.instance_status)
    healthy = not any(str(h.detailed_health_state) in UNHEALTHY for h in mi.instance_health)
    return Machine(str(mi.name), f"{action}/{status}", created, _phase(action, status), healthy, False, _zone(mi))


def _phase(action: str, status: str) -> MachinePhase:
    """currentAction + instanceStatus → the node step's phase (docs/gce-facts.md §3)."""
    if action in LEAVING_ACTIONS:
        return "leaving"
    if action in ("STOPPING", "SUSPENDING") or status in STANDBY_STATUSES:
        return "standby"
    if action in BOOTING_ACTIONS or status != "RUNNING":
        return "booting"
    return "in_service"
