"""A fake Compute Engine API on 127.0.0.1 that google-cloud-compute talks to (``client_options`` api_endpoint),
with the OAuth token endpoint its Application Default Credentials use. Rules: docs/gce-facts.md; state:
tests/fakes/gce_world.py.

Served (Compute Engine v1 REST, JSON, as the discovery document defines them), zonal and regional alike:

    GET  /compute/v1/projects/{p}/{zones|regions}/{loc}/instanceGroupManagers/{g}
    POST /compute/v1/projects/{p}/{zones|regions}/{loc}/instanceGroupManagers/{g}/resize?size=N
    POST /compute/v1/projects/{p}/{zones|regions}/{loc}/instanceGroupManagers/{g}/deleteInstances
    POST /compute/v1/projects/{p}/{zones|regions}/{loc}/instanceGroupManagers/{g}/listManagedInstances
    GET  /compute/v1/projects/{p}/{zones|regions}/{loc}/operations/{op}
    POST /token   (a signed service-account JWT → an access token; every API call needs one)

Faults for the next ``n`` matching requests (``fail_next(kind, n, verb=None)``): ``throttle`` (429 with
``Retry-After``), ``ratelimit`` (403 ``rateLimitExceeded``), ``deny`` (403 ``forbidden``: "Required '<permission>'
permission for '<resource>'"), ``unavailable`` (503), ``garbage`` (200 with an HTML page).

Example::

    gce = GceFake(clock.now).start()
    gce.world.create("forescale-test", "zones/us-central1-a", "gpu-ocr", size=2)
    client = compute_v1.InstanceGroupManagersClient(credentials=AnonymousCredentials(),
        transport="rest", client_options={"api_endpoint": gce.url})
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.cloud_http import CloudFake, CloudServer, Reply, Request
from tests.fakes.gce_world import GceWorld, ManagedVm, Mig, Operation

BASE = "https://www.googleapis.com/compute/v1/"
ROUTE = re.compile(
    r"^/compute/v1/projects/(?P<project>[^/]+)/(?P<kind>zones|regions)/(?P<loc>[^/]+)/"
    r"(?P<res>instanceGroupManagers|operations)/(?P<name>[^/]+)(?:/(?P<verb>[A-Za-z]+))?$"
)
INSTANCES = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances$")
FILTER = re.compile(r"""^name eq (["'])(?P<regex>.*)\1$""")
PERMISSION = {
    "instances": "compute.instances.list",
    None: "compute.instanceGroupManagers.get",
    "listManagedInstances": "compute.instanceGroupManagers.get",
    "resize": "compute.instanceGroupManagers.update",
    "deleteInstances": "compute.instanceGroupManagers.update",
}


def _error(code: int, message: str, reason: str, domain: str = "global") -> dict[str, Any]:
    """Google's JSON error envelope (§8)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }


def _rfc3339(when: datetime) -> str:
    return when.astimezone().isoformat(timespec="milliseconds")


class GceFake(CloudFake):
    """The world + its HTTP server. ``tick()`` runs Compute Engine's own progress (every request does it first)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.world = GceWorld(clock)
        self.server = CloudServer(self.handle)
        self.tokens: set[str] = set()
        self._keys: dict[str, Any] = {}

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ HTTP

    def handle(self, req: Request) -> Reply:
        with self._lock:
            if req.path == "/token" and req.method == "POST":
                return self._token(req)
            if not self._authorized(req.headers.get("authorization", "").removeprefix("Bearer ")):
                return Reply(
                    401,
                    {
                        "error": {
                            "code": 401,
                            "status": "UNAUTHENTICATED",
                            "message": "Request is missing "
                            "required authentication credential. Expected OAuth 2 access token, "
                            "login cookie or other valid authentication credential.",
                        }
                    },
                )
            listing = INSTANCES.match(req.path)
            if listing is not None and req.method == "GET":
                self.world.tick()
                fault = self._fault("instances")
                if fault is not None:
                    return self._faulty(
                        fault,
                        {
                            **listing.groupdict(),
                            "kind": "zones",
                            "loc": listing["zone"],
                            "res": "instances",
                            "name": "",
                            "verb": "instances",
                        },
                    )
                return self._instances(listing["project"], listing["zone"], req.query.get("filter", ""))
            match = ROUTE.match(req.path)
            if match is None:
                return Reply(404, _error(404, f"Not found: {req.path}", "notFound"))
            self.world.tick()
            m = match.groupdict()
            canned = self.canned.get(m["verb"] or ("operations" if m["res"] == "operations" else "get"))
            if canned:
                return canned.pop(0)
            fault = self._fault(m["verb"] if m["res"] == "instanceGroupManagers" else "operations")
            if fault is not None:
                return self._faulty(fault, m)
            scope = f"{m['kind']}/{m['loc']}"
            if m["res"] == "operations":
                op = self.world.ops.get(m["name"])
                if op is None or op.scope != scope or req.method != "GET":
                    return Reply(
                        404,
                        _error(
                            404,
                            f"The resource 'projects/{m['project']}/{scope}/operations/{m['name']}' was not found",
                            "notFound",
                        ),
                    )
                return Reply(200, self._op_json(op, m["project"]))
            mig = self.world.mig(m["project"], scope, m["name"])
            if mig is None:
                return Reply(
                    404,
                    _error(
                        404,
                        f"The resource 'projects/{m['project']}/{scope}/instanceGroupManagers/"
                        f"{m['name']}' was not found",
                        "notFound",
                    ),
                )
            verb = m["verb"]
            if verb is None and req.method == "GET":
                return Reply(200, self._mig_json(mig))
            if verb == "listManagedInstances" and req.method == "POST":
                return Reply(200, {"managedInstances": [self._vm_json(mig, v) for v in self.world.listed(mig)]})
            if verb == "resize" and req.method == "POST":
                size = req.query.get("size", "")
                if not re.fullmatch(r"\d+", size):
                    return Reply(
                        400,
                        _error(
                            400, "Invalid value for field 'size': ''. Must be greater than or equal to 0", "invalid"
                        ),
                    )
                self.world.resize(mig, int(size))
                return Reply(200, self._op_json(self.world.operation(mig, "resize"), mig.project))
            if verb == "deleteInstances" and req.method == "POST":
                body = req.json()
                refs = [str(r) for r in body.get("instances") or []]
                if not refs:
                    return Reply(400, _error(400, "Required field 'instances' not specified", "required"))
                bad = [r for r in refs if not self._in_scope(mig, r)]
                if bad:  # §5: a malformed URL or another zone/region always fails the request
                    return Reply(400, _error(400, f"Invalid value for field 'instances': '{bad[0]}'.", "invalid"))
                errors, warnings = self.world.delete_instances(
                    mig, refs, bool(body.get("skipInstancesOnValidationError"))
                )
                op = self.world.operation(mig, "deleteInstances", errors, warnings)
                return Reply(200, self._op_json(op, mig.project))
            return Reply(400, _error(400, f"Invalid request {req.method} {req.path}", "badRequest"))

    def trust(self, key_file: str) -> None:
        """Accept self-signed JWTs of this service-account key (google-auth's ``always_use_jwt_access``, §8)."""
        from cryptography.hazmat.primitives import serialization

        info = json.loads(Path(key_file).read_text())
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        self._keys[str(info["client_email"])] = key.public_key()

    def _authorized(self, token: str) -> bool:
        if token in self.tokens:
            return True
        if token.count(".") != 2:
            return False
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        head, body, sig = token.split(".")
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=="))
            key = self._keys[str(claims.get("iss"))]
            key.verify(
                base64.urlsafe_b64decode(sig + "=="), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (KeyError, ValueError, InvalidSignature):
            return False
        return claims.get("sub") == claims.get("iss") and float(claims.get("exp", 0)) > time.time()

    def _token(self, req: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode()).items()}
        assertion = form.get("assertion", "")
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or assertion.count(".") != 2:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT assertion."})
        claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
        if not str(claims.get("aud", "")).endswith("/token"):
            return Reply(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT: Token must be a short-lived "
                    "token (60 minutes) and in a reasonable timeframe.",
                },
            )
        token = "ya29.fake-" + secrets.token_hex(12)
        self.tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _instances(self, project: str, zone: str, text: str) -> Reply:
        """§3: ``instances.list`` of a zone (the VMs that exist), with the ``name eq "<RE2>"`` filter (full match)."""
        pattern = None
        if text:
            parsed = FILTER.match(text.strip())
            if parsed is None:
                return Reply(
                    400,
                    _error(
                        400, f"Invalid value for field 'filter': '{text}'. Invalid list filter expression.", "invalid"
                    ),
                )
            pattern = re.compile(parsed["regex"])
        items = []
        for mig in self.world.migs.values():
            for vm in mig.vms.values():
                if mig.project != project or vm.zone != zone or not vm.exists:
                    continue
                if pattern is not None and not pattern.fullmatch(vm.name):
                    continue
                items.append(
                    {
                        "kind": "compute#instance",
                        "id": str(vm.id),
                        "name": vm.name,
                        "creationTimestamp": _rfc3339(vm.created_at or self.world.clock()),
                        "zone": f"{BASE}projects/{project}/zones/{zone}",
                        "status": vm.status,
                        "machineType": f"{BASE}projects/{project}/zones/{zone}/machineTypes/g2-standard-8",
                    }
                )
        return Reply(200, {"kind": "compute#instanceList", "items": items})

    def _fault(self, verb: str | None) -> str | None:
        for fault in self._faults:
            kind, remaining, only = fault
            if remaining > 0 and (only is None or only == verb):
                fault[1] -= 1
                return str(kind)
        return None

    def _faulty(self, kind: str, m: dict[str, str]) -> Reply:
        resource = f"projects/{m['project']}/{m['kind']}/{m['loc']}/{m['res']}/{m['name']}"
        if kind == "throttle":  # §8: 429 with Retry-After
            return Reply(
                429,
                _error(
                    429,
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' "
                    "of service 'compute.googleapis.com'",
                    "rateLimitExceeded",
                    "usageLimits",
                ),
                {"Retry-After": "2"},
            )
        if kind == "ratelimit":
            return Reply(403, _error(403, "Rate Limit Exceeded", "rateLimitExceeded", "usageLimits"))
        if kind == "deny":
            permission = PERMISSION.get(m.get("verb"), "compute.zoneOperations.get")
            return Reply(403, _error(403, f"Required '{permission}' permission for '{resource}'", "forbidden"))
        if kind == "unavailable":
            return Reply(503, _error(503, "The service is currently unavailable.", "backendError"))
        if kind == "garbage":
            return Reply(200, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})
        raise ValueError(f"unknown fault {kind}")

    @staticmethod
    def _in_scope(mig: Mig, ref: str) -> bool:
        parts = ref.removeprefix(BASE).split("/")
        if len(parts) == 1:
            return bool(re.fullmatch(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?", parts[0]))  # a name (queued instance)
        try:
            zone = parts[parts.index("zones") + 1]
        except (ValueError, IndexError):
            return False
        return parts[-2] == "instances" and zone in mig.zones

    # ------------------------------------------------------------------ JSON (discovery document schemas)

    def _mig_json(self, mig: Mig) -> dict[str, Any]:
        loc_key = "region" if mig.regional else "zone"
        link = f"{BASE}projects/{mig.project}/{mig.scope}/instanceGroupManagers/{mig.name}"
        counts = {
            k: 0
            for k in (
                "none",
                "creating",
                "creatingWithoutRetries",
                "verifying",
                "recreating",
                "deleting",
                "abandoning",
                "restarting",
                "refreshing",
                "suspending",
                "resuming",
                "stopping",
                "starting",
            )
        }
        names = {"NONE": "none", "CREATING": "creating", "DELETING": "deleting", "RECREATING": "recreating"}
        for vm in mig.vms.values():
            counts[names.get(vm.action, "none")] += 1
        stable = all(v.action == "NONE" for v in mig.vms.values()) and not mig.updating
        status: dict[str, Any] = {
            "isStable": stable,
            "versionTarget": {"isReached": not mig.updating},
            "stateful": {"hasStatefulConfig": False},
        }
        if mig.autoscaler:
            status["autoscaler"] = f"{BASE}projects/{mig.project}/{mig.scope}/autoscalers/{mig.autoscaler}"
        out: dict[str, Any] = {
            "kind": "compute#instanceGroupManager",
            "id": str(mig.id),
            "creationTimestamp": "2026-01-05T09:12:31.123-08:00",
            "name": mig.name,
            loc_key: f"{BASE}projects/{mig.project}/{mig.scope}",
            "instanceTemplate": f"{BASE}projects/{mig.project}/global/instanceTemplates/{mig.name}-tpl",
            "versions": [
                {
                    "instanceTemplate": f"{BASE}projects/{mig.project}/global/instanceTemplates/{mig.name}-tpl",
                    "targetSize": {"calculated": mig.target_size},
                }
            ],
            "instanceGroup": f"{BASE}projects/{mig.project}/{mig.scope}/instanceGroups/{mig.name}",
            "baseInstanceName": mig.name,
            "fingerprint": "aAbBcCdDeE0=",
            "currentActions": counts,
            "status": status,
            "targetSize": mig.target_size,
            "listManagedInstancesResults": "PAGELESS",
            "selfLink": link,
            "updatePolicy": {
                "type": "OPPORTUNISTIC",
                "instanceRedistributionType": mig.redistribution,
                "minimalAction": "REPLACE",
                "replacementMethod": "SUBSTITUTE",
            },
        }
        if mig.regional:
            out["distributionPolicy"] = {
                "zones": [{"zone": f"{BASE}projects/{mig.project}/zones/{z}"} for z in mig.zones],
                "targetShape": "EVEN",
            }
        return out

    def _vm_json(self, mig: Mig, vm: ManagedVm) -> dict[str, Any]:
        out: dict[str, Any] = {
            "instance": f"{BASE}projects/{mig.project}/zones/{vm.zone}/instances/{vm.name}",
            "name": vm.name,
            "currentAction": vm.action,
            "version": {"instanceTemplate": f"{BASE}projects/{mig.project}/global/instanceTemplates/{mig.name}-tpl"},
        }
        if vm.exists:  # §3: id and instanceStatus are empty while the VM does not exist
            out["id"] = str(vm.id)
            out["instanceStatus"] = vm.status
            out["targetStatus"] = "RUNNING"
        if vm.errors:
            out["lastAttempt"] = {"errors": {"errors": [{"code": c, "message": msg} for c, msg in vm.errors]}}
        if vm.health:
            out["instanceHealth"] = [
                {
                    "healthCheck": f"{BASE}projects/{mig.project}/global/healthChecks/nomad",
                    "detailedHealthState": vm.health,
                }
            ]
        return out

    def _op_json(self, op: Operation, project: str) -> dict[str, Any]:
        now = self.world.clock()
        done = now >= op.done_at
        loc_key = "zone" if op.scope.startswith("zones/") else "region"
        out: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(op.id),
            "name": op.name,
            loc_key: f"{BASE}projects/{project}/{op.scope}",
            "operationType": f"compute.instanceGroupManagers.{op.kind}",
            "targetLink": f"{BASE}projects/{project}/{op.scope}/instanceGroupManagers/{op.target}",
            "targetId": "4132355614508179214",
            "status": "DONE" if done else ("RUNNING" if now > op.inserted else "PENDING"),
            "user": f"forescale@{project}.iam.gserviceaccount.com",
            "progress": 100 if done else 0,
            "insertTime": _rfc3339(op.inserted),
            "startTime": _rfc3339(op.inserted),
            "selfLink": f"{BASE}projects/{project}/{op.scope}/operations/{op.name}",
        }
        if done:
            out["endTime"] = _rfc3339(op.done_at)
            if op.errors:  # §2: an operation that failed (or partly failed) carries error.errors
                out["error"] = {"errors": [{"code": c, "message": msg} for c, msg in op.errors]}
                out["httpErrorStatusCode"] = 400
                out["httpErrorMessage"] = "BAD REQUEST"
            if op.warnings:
                out["warnings"] = [{"code": c, "message": msg} for c, msg in op.warnings]
        return out
