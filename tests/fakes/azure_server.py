"""A fake Azure Resource Manager (Microsoft.Compute scale sets) on 127.0.0.1 over TLS, that azure-mgmt-compute
talks to (the client's ``base_url``). Rules: docs/azure-facts.md; state: tests/fakes/azure_world.py.

Served (the REST API specification's paths; every call needs ``api-version`` and the test bearer token):

    GET   /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}
    PATCH /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}
    GET   …/virtualMachineScaleSets/{vmss}/virtualMachines[?$expand=instanceView]   (paged: nextLink)
    POST  …/virtualMachineScaleSets/{vmss}/delete                                     ({"instanceIds": […]})
    GET   …/virtualMachineScaleSets/{vmss}/rollingUpgrades/latest
    GET   /subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/operations/{id}   (Azure-AsyncOperation)

Faults for the next ``n`` matching requests (``fail_next(kind, n, verb=None)``; verbs: get, update, list,
delete, rolling, operation): ``throttle`` (429 + ``Retry-After``, Compute's throttling body), ``deny`` (403
``AuthorizationFailed``), ``unavailable`` (503), ``garbage`` (200 with an HTML page).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.fakes.azure_world import QUOTA_MESSAGE, SKU_MESSAGE, AzureWorld, Vm, Vmss
from tests.fakes.cloud_http import CloudFake, CloudServer, Reply, Request

SETS = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachineScaleSets/(?P<name>[^/]+)(?P<rest>/virtualMachines|/delete|/rollingUpgrades/latest)?$",
    re.IGNORECASE,
)
OPS = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/operations/"
    r"(?P<id>[^/]+)$",
    re.IGNORECASE,
)
ACTIONS = {
    "get": "Microsoft.Compute/virtualMachineScaleSets/read",
    "update": "Microsoft.Compute/virtualMachineScaleSets/write",
    "list": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "delete": "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    "rolling": "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades/read",
    "operation": "Microsoft.Compute/locations/operations/read",
}
PAGE = 5  # default VMs per page of the VM list (the service pages; clients follow nextLink)


def _err(status: int, code: str, message: str, **extra: Any) -> Reply:
    """ARM's error envelope (§8)."""
    return Reply(status, {"error": {"code": code, "message": message, **extra}})


def _time(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "+00:00") if when else None


class AzureFake(CloudFake):
    def __init__(self, clock: Callable[[], datetime], *, token: str, tls: tuple[Path, Path]) -> None:
        super().__init__()
        self.world = AzureWorld(clock)
        self.token = token
        self.server = CloudServer(self.handle, tls=tls)
        self.retry_after = 10  # seconds the async-operation status asks pollers to wait (§2)
        self.page_size = PAGE

    # ------------------------------------------------------------------ HTTP

    def handle(self, req: Request) -> Reply:
        with self._lock:
            if req.headers.get("authorization") != f"Bearer {self.token}":
                return Reply(
                    401,
                    {
                        "error": {
                            "code": "AuthenticationFailed",
                            "message": "Authentication failed. The 'Authorization' header is missing or invalid.",
                        }
                    },
                    {
                        "WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                        'error="invalid_token"'
                    },
                )
            if "api-version" not in req.query:
                return _err(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            self.world.tick()
            ops = OPS.match(req.path)
            if ops is not None:
                return self._fault("operation", req, ops.groupdict()) or self._operation(ops["id"], req)
            m = SETS.match(req.path)
            if m is None:
                return _err(404, "InvalidResourceType", f"The resource type could not be found: {req.path}")
            rest = (m["rest"] or "").lower()
            verb = {
                "": "update" if req.method == "PATCH" else "get",
                "/virtualmachines": "list",
                "/delete": "delete",
                "/rollingupgrades/latest": "rolling",
            }[rest]
            canned = self.canned.get(verb)
            if canned:
                return canned.pop(0)
            fault = self._fault(verb, req, m.groupdict())
            if fault is not None:
                return fault
            vmss = self.world.find(m["sub"], m["rg"], m["name"])
            if vmss is None:
                return _err(
                    404,
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/"
                    f"{m['name']}' under resource group '{m['rg']}' was not found. For more details please go "
                    "to https://aka.ms/ARMResourceNotFoundFix",
                )
            if verb == "get" and req.method == "GET":
                return Reply(200, self._vmss_json(vmss))
            if verb == "update" and req.method == "PATCH":
                return self._update(vmss, req)
            if verb == "list" and req.method == "GET":
                return self._list(vmss, req)
            if verb == "delete" and req.method == "POST":
                return self._delete(vmss, req)
            if verb == "rolling" and req.method == "GET":
                if vmss.rolling is None:
                    return _err(404, "NotFound", "The entity was not found in this Azure location.")
                return Reply(
                    200,
                    {
                        "properties": {
                            "policy": {"maxBatchInstancePercent": 20},
                            "runningStatus": {"code": vmss.rolling, "startTime": _time(self.world.clock())},
                            "progress": {},
                        },
                        "location": vmss.location,
                    },
                )
            return _err(405, "MethodNotAllowed", f"{req.method} is not allowed here")

    def _fault(self, verb: str, req: Request, m: dict[str, str]) -> Reply | None:
        for fault in self._faults:
            kind, remaining, only = fault
            if remaining <= 0 or (only is not None and only != verb):
                continue
            fault[1] -= 1
            if kind == "throttle":  # §8 (Troubleshooting API throttling errors)
                return Reply(
                    429,
                    {
                        "error": {
                            "code": "OperationNotAllowed",
                            "message": "The server rejected the request because too "
                            "many requests have been received for this subscription.",
                            "details": [
                                {
                                    "code": "TooManyRequests",
                                    "target": "HighCostGet30Min",
                                    "message": '{"operationGroup":"HighCostGet30Min","allowedRequestCount":800,'
                                    '"measuredRequestCount":1238}',
                                }
                            ],
                        }
                    },
                    {"Retry-After": "3", "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/HighCostGet30Min;0"},
                )
            if kind == "deny":
                scope = req.path
                return _err(
                    403,
                    "AuthorizationFailed",
                    "The client '5f0c8bd6-4e59-4b8b-b1de-8c6b7e0ae8a1' with object "
                    "id '5f0c8bd6-4e59-4b8b-b1de-8c6b7e0ae8a1' does not have authorization to perform action "
                    f"'{ACTIONS[verb]}' over scope '{scope}' or the scope is invalid. If access was recently "
                    "granted, please refresh your credentials.",
                )
            if kind == "unavailable":
                return _err(503, "ServiceUnavailable", "The service is temporarily unavailable.")
            if kind == "garbage":
                return Reply(200, b"<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"})
            raise ValueError(f"unknown fault {kind}")
        return None

    def _async_headers(self, vmss: Vmss, op_id: str, req: Request) -> dict[str, str]:
        base = f"{self.url}/subscriptions/{vmss.subscription}/providers/Microsoft.Compute/locations/{vmss.location}"
        version = req.query["api-version"]
        return {
            "Azure-AsyncOperation": f"{base}/operations/{op_id}?api-version={version}",
            "Location": f"{base}/operations/{op_id}?monitor=true&api-version={version}",
            "Retry-After": str(self.retry_after),
        }

    def _update(self, vmss: Vmss, req: Request) -> Reply:
        body = req.json()
        capacity = (body.get("sku") or {}).get("capacity")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            return _err(
                400, "InvalidParameter", "The value of parameter sku.capacity is invalid.", target="sku.capacity"
            )
        if self.world.refuse_update and capacity > vmss.capacity:  # §4: refused at once, capacity unchanged
            code = self.world.refuse_update
            message = (SKU_MESSAGE if code == "SkuNotAvailable" else QUOTA_MESSAGE).format(
                id=vmss.id, location=vmss.location, zones=",".join(vmss.zones), subscription=vmss.subscription
            )
            return _err(409, "OperationNotAllowed" if code == "QuotaExceeded" else code, message)
        op = self.world.set_capacity(vmss, capacity)
        out = self._vmss_json(vmss)
        out["properties"]["provisioningState"] = "Updating"
        return Reply(200, out, self._async_headers(vmss, op.id, req))

    def _delete(self, vmss: Vmss, req: Request) -> Reply:
        ids = [str(i) for i in (req.json().get("instanceIds") or [])]
        unknown = [i for i in ids if i not in vmss.vms or vmss.vms[i].state == "Deleting"]
        if not ids or unknown:  # §5 (ours): the whole request is refused, nothing deleted
            return _err(
                400,
                "InvalidParameter",
                f"The provided instanceId {unknown[0] if unknown else ''} is not an "
                "active Virtual Machine Scale Set VM instanceId.",
                target="instanceIds",
            )
        op = self.world.delete_instances(vmss, ids)
        return Reply(202, None, self._async_headers(vmss, op.id, req))

    def _operation(self, op_id: str, req: Request) -> Reply:
        op = self.world.ops.get(op_id)
        if op is None:
            return _err(404, "NotFound", "The entity was not found in this Azure location.")
        if "monitor" in req.query:  # the Location URL: 202 while running, then the final result
            if not op.finished:
                return Reply(202, None, {"Retry-After": str(self.retry_after)})
            if op.error is not None:
                return _err(400 if op.error[0] != "InternalExecutionError" else 500, op.error[0], op.error[1])
            return Reply(200, None)
        status: dict[str, Any] = {"startTime": _time(op.started), "name": op.id}
        if not op.finished:
            return Reply(200, {**status, "status": "InProgress"}, {"Retry-After": str(self.retry_after)})
        status["endTime"] = _time(op.done_at)
        if op.error is not None:
            return Reply(200, {**status, "status": "Failed", "error": {"code": op.error[0], "message": op.error[1]}})
        return Reply(200, {**status, "status": "Succeeded"})

    def _list(self, vmss: Vmss, req: Request) -> Reply:
        vms = sorted(self.world.listed(vmss), key=lambda v: int(v.instance_id))
        start = int(req.query.get("$skiptoken") or 0)
        page = vms[start : start + self.page_size]
        out: dict[str, Any] = {
            "value": [self._vm_json(vmss, v, "instanceView" in req.query.get("$expand", "")) for v in page]
        }
        if start + self.page_size < len(vms):
            out["nextLink"] = (
                f"{self.url}{req.path}?api-version={req.query['api-version']}"
                + (f"&$expand={req.query['$expand']}" if "$expand" in req.query else "")
                + f"&$skiptoken={start + self.page_size}"
            )
        return Reply(200, out)

    # ------------------------------------------------------------------ JSON (the specification's shapes)

    def _vmss_json(self, vmss: Vmss) -> dict[str, Any]:
        props: dict[str, Any] = {
            "singlePlacementGroup": False,
            "orchestrationMode": "Uniform",
            "upgradePolicy": {"mode": vmss.upgrade_mode},
            "provisioningState": "Succeeded",
            "overprovision": vmss.overprovision,
            "doNotRunExtensionsOnOverprovisionedVMs": False,
            "uniqueId": "d053ec5a-8da6-495f-ab13-38216503c6d7",
            "platformFaultDomainCount": 1,
            "timeCreated": "2026-01-05T09:12:31.1234567+00:00",
            "scaleInPolicy": {"rules": ["Default"], "forceDeletion": False},
            "virtualMachineProfile": {"osProfile": {"computerNamePrefix": vmss.name[:9], "adminUsername": "nomad"}},
        }
        if vmss.zone_rebalance:
            props["resiliencyPolicy"] = {
                "automaticZoneRebalancingPolicy": {
                    "enabled": True,
                    "rebalanceStrategy": "Recreate",
                    "rebalanceBehavior": "CreateBeforeDelete",
                }
            }
        return {
            "name": vmss.name,
            "id": vmss.id,
            "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": vmss.location,
            "tags": {"forescale-managed": "true"},
            "sku": {"name": vmss.sku, "tier": "Standard", "capacity": vmss.capacity},
            "zones": list(vmss.zones),
            "properties": props,
        }

    def _vm_json(self, vmss: Vmss, vm: Vm, expand: bool) -> dict[str, Any]:
        props: dict[str, Any] = {
            "latestModelApplied": True,
            "modelDefinitionApplied": "VirtualMachineScaleSet",
            "vmId": vm.vm_id,
            "provisioningState": vm.state,
            "timeCreated": _time(vm.created_at),
            "osProfile": {"computerName": f"{vmss.name[:9]}{int(vm.instance_id):06x}", "adminUsername": "nomad"},
            "protectionPolicy": {"protectFromScaleIn": vm.protected, "protectFromScaleSetActions": False},
        }
        if expand:
            statuses = []
            if vm.state == "Failed" and vm.fail is not None:
                statuses.append(
                    {
                        "code": f"ProvisioningState/failed/{vm.fail[0]}",
                        "level": "Error",
                        "displayStatus": "Provisioning failed",
                        "message": vm.fail[1],
                        "time": _time(vm.created_at),
                    }
                )
            else:
                statuses.append(
                    {
                        "code": f"ProvisioningState/{vm.state.lower()}",
                        "level": "Info",
                        "displayStatus": f"Provisioning {vm.state.lower()}",
                    }
                )
            if vm.power:
                statuses.append({"code": f"PowerState/{vm.power}", "level": "Info", "displayStatus": f"VM {vm.power}"})
            view: dict[str, Any] = {"platformUpdateDomain": 0, "platformFaultDomain": 0, "statuses": statuses}
            if vm.health:
                view["vmHealth"] = {
                    "status": {
                        "code": f"HealthState/{vm.health}",
                        "level": "Info",
                        "displayStatus": f"The VM is reporting itself as {vm.health}",
                    }
                }
            props["instanceView"] = view
        return {
            "name": vm.name,
            "id": f"{vmss.id}/virtualMachines/{vm.instance_id}",
            "type": "Microsoft.Compute/virtualMachines",
            "location": vmss.location,
            "instanceId": vm.instance_id,
            "zones": [vm.zone] if vm.zone else [],
            "sku": {"name": vmss.sku, "tier": "Standard"},
            "properties": props,
        }
