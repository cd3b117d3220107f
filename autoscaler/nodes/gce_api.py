"""The Compute Engine calls of the ``gce_mig`` provider, on google-cloud-compute (imported only here, lazily).

One ``MigApi`` per group, zonal (``instanceGroupManagers`` + ``zoneOperations``) or regional
(``regionInstanceGroupManagers`` + ``regionOperations``): the same five calls either way. Credentials are
Application Default Credentials only (``google.auth.default``). The SDK's own retries are switched off
(``retry=None``: their backoff sleeps); ``Pacer`` retries throttling (429 honouring ``Retry-After``, 403
``rateLimitExceeded``) and 5xx up to ``nodes.gce.max_attempts`` attempts, and follows a long-running
``Operation`` to ``DONE`` within ``nodes.gce.operation_timeout`` (docs/gce-facts.md §2).

Every failure becomes a ``NodeProviderError`` naming the call, Google's reason and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from autoscaler import __version__
from autoscaler.core.deadline import budget
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.clouds import GceMigSettings
from autoscaler.nodes.cloud_calls import EXTRAS, OperationTimeout, Pacer, retry_after_s

log = logging.getLogger("forescale.nodes.gce")

SCOPE = "https://www.googleapis.com/auth/compute"
THROTTLE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
STOCKOUT_CODES = frozenset(
    {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_POOL_EXHAUSTED"}
)
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "quotaExceeded"})
PERMISSIONS = {
    "get": "compute.instanceGroupManagers.get",
    "listManagedInstances": "compute.instanceGroupManagers.get",
    "resize": "compute.instanceGroupManagers.update",
    "deleteInstances": "compute.instanceGroupManagers.update",
    "operations.get": "compute.zoneOperations.get / compute.regionOperations.get",
    "instances.list": "compute.instances.list",
}


class MigApi:
    """The group's calls; ``Pacer`` paces retries and operation polling (injectable for tests)."""

    def __init__(self, settings: GceMigSettings, where: str, pacer: Pacer) -> None:
        self.settings, self.where, self.pacer = settings, where, pacer
        self._clients: tuple[Any, Any] | None = None
        self._instances: Any = None
        self.compute: Any = None  # the google.cloud.compute_v1 module, once imported

    # ------------------------------------------------------------------ clients

    def _connect(self) -> tuple[Any, Any]:
        if self._clients is not None:
            return self._clients
        missing = EXTRAS["gce_mig"].missing()
        if missing:
            raise NodeProviderError(f"{self.where}: nodes.provider gce_mig {missing}", code="MissingSDK")
        import google.auth
        import google.auth.exceptions
        from google.api_core.gapic_v1.client_info import ClientInfo
        from google.cloud import compute_v1

        self.compute = compute_v1
        try:
            credentials, _project = google.auth.default(scopes=[SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise NodeProviderError(
                f"{self.where}: no Application Default Credentials ({exc}); give forescale the attached service "
                "account (on Google Cloud), workload identity federation, GOOGLE_APPLICATION_CREDENTIALS, or "
                "`gcloud auth application-default login` — forescale.yaml never holds them",
                code="NoCredentials",
            ) from None
        options: dict[str, Any] = {}
        if self.settings.endpoint:
            options["api_endpoint"] = self.settings.endpoint
        kw: dict[str, Any] = {
            "credentials": credentials,
            "transport": "rest",
            "client_options": options or None,
            "client_info": ClientInfo(user_agent=f"forescale/{__version__}"),
        }
        self._instances = compute_v1.InstancesClient(**kw)
        if self.settings.zone:
            self._clients = (compute_v1.InstanceGroupManagersClient(**kw), compute_v1.ZoneOperationsClient(**kw))
        else:
            self._clients = (
                compute_v1.RegionInstanceGroupManagersClient(**kw),
                compute_v1.RegionOperationsClient(**kw),
            )
        return self._clients

    def _where_kw(self) -> dict[str, str]:
        s = self.settings
        return {"project": s.project, "zone": s.zone} if s.zone else {"project": s.project, "region": str(s.region)}

    def _call(self, method: str, fn: Callable[[], Any]) -> Any:
        try:
            return self.pacer.retry(fn, self.settings.max_attempts, self._delay_for)
        except NodeProviderError:
            raise
        except Exception as exc:
            raise self.error(method, exc) from exc

    def _opts(self) -> dict[str, Any]:
        return {"retry": None, "timeout": max(budget(self.settings.timeout.total_seconds()), 1.0)}

    # ------------------------------------------------------------------ the five calls

    def get(self) -> Any:
        igm, _ = self._connect()
        return self._call(
            "get", lambda: igm.get(instance_group_manager=self.settings.name, **self._where_kw(), **self._opts())
        )

    def managed_instances(self) -> list[Any]:
        igm, _ = self._connect()

        def fetch() -> list[Any]:
            pager = igm.list_managed_instances(
                instance_group_manager=self.settings.name, **self._where_kw(), **self._opts()
            )
            return list(pager)

        return list(self._call("listManagedInstances", fetch))

    def resize(self, size: int) -> None:
        igm, _ = self._connect()
        op = self._call(
            "resize",
            lambda: igm.resize_unary(
                instance_group_manager=self.settings.name, size=size, **self._where_kw(), **self._opts()
            ),
        )
        failed = self.op_errors(self.wait(op, "resize"))
        if failed:
            raise self.op_error("resize", failed)

    def delete_instances(self, refs: Sequence[str]) -> list[tuple[str, str]]:
        """Delete exactly these instances (URLs, or names of queued ones); the group's target size drops by as many.
        Returns the operation's errors ((code, message) pairs; empty: all scheduled)."""
        igm, _ = self._connect()
        c = self.compute
        fields = {"instances": list(refs), "skip_instances_on_validation_error": True}
        if self.settings.zone:
            body = {
                "instance_group_managers_delete_instances_request_resource": (
                    c.InstanceGroupManagersDeleteInstancesRequest(**fields)
                )
            }
        else:
            body = {
                "region_instance_group_managers_delete_instances_request_resource": (
                    c.RegionInstanceGroupManagersDeleteInstancesRequest(**fields)
                )
            }
        op = self._call(
            "deleteInstances",
            lambda: igm.delete_instances_unary(
                instance_group_manager=self.settings.name, **body, **self._where_kw(), **self._opts()
            ),
        )
        return self.op_errors(self.wait(op, "deleteInstances"))

    def creation_times(self, zone: str, base_name: str) -> dict[str, str]:
        """Instance name → creationTimestamp (RFC 3339) of the group's VMs in one zone (``instances.list``
        filtered on the group's base instance name): when each VM was created, across forescale restarts."""
        self._connect()
        s = self.settings

        def fetch() -> dict[str, str]:
            request = {"project": s.project, "zone": zone, "filter": f'name eq "{base_name}-.*"'}
            pager = self._instances.list(request=request, **self._opts())
            return {str(i.name): str(i.creation_timestamp) for i in pager if i.creation_timestamp}

        return dict(self._call("instances.list", fetch))

    # ------------------------------------------------------------------ long-running operations

    def wait(self, op: Any, method: str) -> Any:
        """Poll the operation (``zoneOperations.get``/``regionOperations.get``) until DONE; the final Operation."""
        _, ops = self._connect()
        state = {"op": op}

        def poll() -> tuple[bool, float]:
            current = state["op"]
            if current.done:
                return True, 0.0
            fresh = self._call(
                "operations.get",
                lambda: ops.get(operation=current.name, **self._where_kw(), **self._opts()),
            )
            state["op"] = fresh
            return bool(fresh.done), 2.0

        try:
            self.pacer.follow(poll, self.settings.operation_timeout.total_seconds(), f"{method} operation")
        except OperationTimeout as exc:
            raise NodeProviderError(
                f"{self.where}: {method} operation {op.name} is not DONE after "
                f"{self.settings.operation_timeout}: {exc}; it may still finish — the next tick reads the group "
                "again (raise nodes.gce.operation_timeout if this is usual)",
                retryable=True,
                code="OperationTimeout",
            ) from None
        return state["op"]

    @staticmethod
    def op_errors(op: Any) -> list[tuple[str, str]]:
        errors = getattr(getattr(op, "error", None), "errors", None) or []
        out = [(str(e.code), str(e.message)) for e in errors]
        if not out and int(getattr(op, "http_error_status_code", 0) or 0) >= 400:
            out.append((str(op.http_error_status_code), str(op.http_error_message)))
        return out

    def op_error(self, method: str, errors: list[tuple[str, str]]) -> NodeProviderError:
        code = errors[0][0]
        text = "; ".join(f"{c}: {m}" for c, m in errors)[:400]
        if code in STOCKOUT_CODES:
            fix = (
                "the zone has no capacity for this machine type now (a GPU stockout): Compute Engine keeps retrying; "
                "spread the group over more zones (a regional group) or use another machine type"
            )
        elif code in QUOTA_CODES:
            fix = "a quota is exhausted: request more (IAM & Admin → Quotas) for the GPU type and region"
        else:
            fix = "nothing is assumed changed beyond what the group shows"
        return NodeProviderError(f"{self.where}: {method} failed ({text}); {fix}", code=code)

    # ------------------------------------------------------------------ errors

    def _delay_for(self, exc: Exception, attempt: int) -> float | None:
        from google.api_core import exceptions as gexc

        if isinstance(exc, gexc.TooManyRequests):
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            return retry_after_s(headers.get("Retry-After")) or self.pacer.backoff(attempt)
        if isinstance(exc, gexc.Forbidden) and _reasons(exc) & THROTTLE_REASONS:
            return self.pacer.backoff(attempt)
        if isinstance(exc, gexc.ServerError) or _unreachable(exc):
            return self.pacer.backoff(attempt)
        return None

    def error(self, method: str, exc: Exception) -> NodeProviderError:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc

        what = f"{self.where}: {method}"
        attempts = self.settings.max_attempts
        if isinstance(exc, gexc.GoogleAPICallError):
            message = " ".join(str(exc.message or "").split())[:300]
            reasons = _reasons(exc)
            if isinstance(exc, gexc.TooManyRequests) or reasons & THROTTLE_REASONS:
                return NodeProviderError(
                    f"{what} was throttled by Compute Engine after {attempts} attempts ({message}); nothing changed, "
                    "the next tick retries",
                    retryable=True,
                    code="RateLimited",
                )
            if isinstance(exc, gexc.Forbidden) and reasons & QUOTA_CODES:
                return NodeProviderError(f"{what}: quota exceeded ({message}); request more quota", code="Quota")
            if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
                return NodeProviderError(
                    f"{what} was denied ({exc.code}: {message}): the Application Default Credentials lack "
                    f"{PERMISSIONS.get(method, 'a permission')} on this group; grant the custom role in docs/nodes.md "
                    "(or roles/compute.instanceAdmin.v1) to forescale's service account",
                    code="PermissionDenied",
                )
            if isinstance(exc, gexc.NotFound):
                s = self.settings
                return NodeProviderError(
                    f"managed instance group '{s.name}' not found in project {s.project} {s.scope} ({message}): check "
                    "nodes.gce.project, nodes.gce.name and nodes.gce.zone/region (a regional group needs region:)",
                    code="NotFound",
                )
            if isinstance(exc, gexc.ServerError):
                return NodeProviderError(
                    f"{what} failed after {attempts} attempts ({exc.code}: {message}); the next tick retries",
                    retryable=True,
                    code=str(exc.code),
                )
            return NodeProviderError(f"{what} failed ({exc.code}: {message})", code=str(exc.code))
        if isinstance(exc, aexc.RefreshError | aexc.DefaultCredentialsError):
            return NodeProviderError(
                f"{what}: the Application Default Credentials could not get a token ({exc}); check the service "
                "account (or `gcloud auth application-default login`)",
                code="BadCredentials",
            )
        if _unreachable(exc) or isinstance(exc, aexc.TransportError):
            return NodeProviderError(
                f"{what}: cannot reach Compute Engine ({type(exc).__name__}: {exc}); the next tick retries",
                retryable=True,
                code="Unreachable",
            )
        from google.protobuf.json_format import ParseError

        if isinstance(exc, ParseError | ValueError | TypeError | KeyError):
            return NodeProviderError(
                f"{what}: Compute Engine answered with a body that is not the API's JSON ({type(exc).__name__}); "
                "nothing is assumed changed",
                retryable=True,
                code="Unreadable",
            )
        return NodeProviderError(f"{what} failed unexpectedly: {exc!r}", code=type(exc).__name__)


def _reasons(exc: Any) -> set[str]:
    out = {str(e.get("reason")) for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)}
    if getattr(exc, "reason", None):
        out.add(str(exc.reason))
    return out


def _unreachable(exc: Exception) -> bool:
    import requests

    return isinstance(exc, requests.ConnectionError | requests.Timeout)
