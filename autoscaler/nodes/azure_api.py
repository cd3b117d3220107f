"""The Azure Resource Manager calls of the ``azure_vmss`` provider, on azure-mgmt-compute (imported only here).

``DefaultAzureCredential`` only (managed identity, workload identity, environment, Azure CLI); the client's
``base_url`` is ``nodes.azure.endpoint`` (default Azure's). azure-core's retry policy retries throttling (429
honouring ``Retry-After``) and 5xx, up to ``nodes.azure.max_attempts`` attempts; its sleeps and the pollers'
go through ``Pacer`` (tests move a manual clock), and a poller gives up after ``nodes.azure.operation_timeout``
(docs/azure-facts.md §2). Responses are read as the REST API's JSON (``as_dict()``), as the specification
and its examples write them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from autoscaler import __version__
from autoscaler.core.deadline import budget
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.clouds import AzureVmssSettings
from autoscaler.nodes.cloud_calls import EXTRAS, OperationTimeout, Pacer

log = logging.getLogger("forescale.nodes.azure")

THROTTLED = frozenset({"TooManyRequests", "Throttled", "SubscriptionRequestsThrottled", "ResourceRequestsThrottled"})
DENIED = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed", "Forbidden"})
ALLOCATION = frozenset(
    {
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
        "SkuNotAvailable",
    }
)
QUOTA = frozenset({"QuotaExceeded", "OperationNotAllowed"})
ACTIONS = {
    "get": "Microsoft.Compute/virtualMachineScaleSets/read",
    "list": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "update": "Microsoft.Compute/virtualMachineScaleSets/write",
    "deleteInstances": "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    "rollingUpgrades": "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades/read",
}
CredentialFactory = Callable[[], Any]


def default_credential() -> Any:
    """``DefaultAzureCredential`` (the only credential forescale uses outside its tests)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class VmssApi:
    """One scale set's calls."""

    def __init__(
        self, settings: AzureVmssSettings, where: str, pacer: Pacer, credential: CredentialFactory | None = None
    ) -> None:
        self.settings, self.where, self.pacer = settings, where, pacer
        self._credential = credential or default_credential
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        missing = EXTRAS["azure_vmss"].missing()
        if missing:
            raise NodeProviderError(f"{self.where}: nodes.provider azure_vmss {missing}", code="MissingSDK")
        from azure.core.pipeline.policies import RetryPolicy
        from azure.mgmt.compute import ComputeManagementClient

        pacer = self.pacer

        class _Retry(RetryPolicy):  # azure-core's policy, sleeping on forescale's clock
            def _sleep_for_retry(self, response: Any, transport: Any) -> bool:
                delay = self.get_retry_after(response)
                if delay:
                    pacer.sleep(min(float(delay), 60.0))
                    return True
                return False

            def _sleep_backoff(self, settings: Any, transport: Any) -> None:
                backoff = self.get_backoff_time(settings)
                if backoff > 0:
                    pacer.sleep(backoff)

        timeout = self.settings.timeout.total_seconds()
        kw: dict[str, Any] = {
            "retry_policy": _Retry(retry_total=self.settings.max_attempts - 1, retry_backoff_factor=1.0),
            "connection_timeout": timeout,
            "read_timeout": timeout,
            "user_agent": f"forescale/{__version__}",
        }
        endpoint = self.settings.endpoint
        if endpoint:
            kw["base_url"] = endpoint
            # A sovereign cloud's tokens are for its own Resource Manager; a local test server takes Azure's.
            audience = endpoint if endpoint.startswith("https://management.") else "https://management.azure.com"
            kw["credential_scopes"] = [f"{audience}/.default"]
        try:
            credential = self._credential()
        except Exception as exc:
            raise self.error("credential", exc) from exc
        self._client = ComputeManagementClient(credential, self.settings.subscription_id, **kw)
        return self._client

    def _call(self, action: str, fn: Callable[[Any], Any]) -> Any:
        client = self._connect()
        try:
            return fn(client)
        except NodeProviderError:
            raise
        except OperationTimeout as exc:
            raise NodeProviderError(
                f"{self.where}: {action} is still running after {self.settings.operation_timeout} ({exc}); it may "
                "still finish — the next tick reads the scale set again (raise nodes.azure.operation_timeout if this "
                "is usual)",
                retryable=True,
                code="OperationTimeout",
            ) from None
        except Exception as exc:
            raise self.error(action, exc) from exc

    # ------------------------------------------------------------------ calls

    def get(self) -> dict[str, Any]:
        s = self.settings
        return dict(self._call("get", lambda c: c.virtual_machine_scale_sets.get(s.resource_group, s.name)).as_dict())

    def vms(self) -> list[dict[str, Any]]:
        s = self.settings

        def fetch(c: Any) -> list[dict[str, Any]]:
            pages = c.virtual_machine_scale_set_vms.list(s.resource_group, s.name, expand="instanceView")
            return [dict(vm.as_dict()) for vm in pages]

        return list(self._call("list", fetch))

    def rolling_upgrade(self) -> dict[str, Any] | None:
        """The latest rolling upgrade (None when the scale set never had one: 404)."""
        from azure.core.exceptions import ResourceNotFoundError

        s = self.settings
        try:
            reply = self._call(
                "rollingUpgrades",
                lambda c: c.virtual_machine_scale_set_rolling_upgrades.get_latest(s.resource_group, s.name),
            )
        except NodeProviderError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError) or exc.code == "NotFound":
                return None
            raise
        return dict(reply.as_dict())

    def set_capacity(self, capacity: int) -> None:
        """PATCH ``sku.capacity``. Accepted is enough (the scale set's model changes at once and the new VMs show
        ``Creating``); their provisioning — minutes for GPU VMs — is followed by describe, never awaited here. A
        refusal (``SkuNotAvailable``, a quota) comes in the answer itself (docs/azure-facts.md §1, §4)."""
        s = self.settings

        def update(c: Any) -> Any:
            return c.virtual_machine_scale_sets.begin_update(
                s.resource_group, s.name, {"sku": {"capacity": capacity}}, polling=False
            )

        self._call("update", update)

    def delete_instances(self, instance_ids: list[str]) -> None:
        s = self.settings

        def delete(c: Any) -> Any:
            poller = c.virtual_machine_scale_sets.begin_delete_instances(
                s.resource_group, s.name, {"instanceIds": instance_ids}, polling=self._polling(c, "deleteInstances")
            )
            return poller.result()

        self._call("deleteInstances", delete)

    def _polling(self, client: Any, what: str) -> Any:
        """azure-mgmt-core's ARM poller (Azure-AsyncOperation / Location, Retry-After), sleeping on the pacer's
        clock and giving up at ``operation_timeout``."""
        from azure.mgmt.core.polling.arm_polling import ARMPolling

        pacer = self.pacer
        limit = min(self.settings.operation_timeout.total_seconds(), max(budget(1e9), 0.0))
        end = pacer.clock() + limit

        class _Polling(ARMPolling):
            def _sleep(self, delay: float) -> None:
                if pacer.clock() + delay > end:
                    raise OperationTimeout(f"{what} did not finish within {limit:g}s")
                pacer.sleep(delay)

        base = self.settings.endpoint or "https://management.azure.com"
        return _Polling(timeout=10, path_format_arguments={"endpoint": base})

    # ------------------------------------------------------------------ errors

    def error(self, action: str, exc: Exception) -> NodeProviderError:
        from azure.core import exceptions as aex

        what = f"{self.where}: {action}"
        if isinstance(exc, aex.ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError":
            return NodeProviderError(
                f"{what}: DefaultAzureCredential found no usable credential ({_first_line(exc)}); give forescale a "
                "managed identity or workload identity (or AZURE_CLIENT_ID/AZURE_TENANT_ID/… in its environment, or "
                "`az login`) — forescale.yaml never holds them",
                code="NoCredentials",
            )
        if isinstance(exc, aex.HttpResponseError):
            code = str(getattr(exc.error, "code", None) or exc.reason or exc.status_code or "Unknown")
            message = " ".join(str(getattr(exc.error, "message", None) or exc.message or "").split())[:400]
            status = int(exc.status_code or 0)
            if status == 429 or code in THROTTLED:
                return NodeProviderError(
                    f"{what} was throttled by Azure after {self.settings.max_attempts} attempts ({code}: {message}); "
                    "nothing changed, the next tick retries",
                    retryable=True,
                    code="TooManyRequests",
                )
            if code in DENIED or status == 403:
                return NodeProviderError(
                    f"{what} was denied ({code}: {message}): the identity lacks {ACTIONS.get(action, 'an action')} on "
                    "this scale set; assign the role definition in docs/nodes.md (or Virtual Machine Contributor) "
                    "scoped to the scale set",
                    code=code,
                )
            if status == 404 or isinstance(exc, aex.ResourceNotFoundError):
                s = self.settings
                return NodeProviderError(
                    f"virtual machine scale set '{s.name}' not found in resource group {s.resource_group} of "
                    f"subscription {s.subscription_id} ({code}: {message}): check nodes.azure.name, resource_group "
                    "and subscription_id",
                    code="NotFound",
                )
            if code in ALLOCATION:
                return NodeProviderError(
                    f"{what}: Azure could not allocate the VMs ({code}: {message}); the size is out of capacity in "
                    "this region/zone now — allow more zones or sizes",
                    code=code,
                )
            if code in QUOTA:
                return NodeProviderError(
                    f"{what}: {code}: {message} — request a quota increase for the VM family in this region",
                    code=code,
                )
            return NodeProviderError(f"{what} failed ({code}: {message})", retryable=status >= 500, code=code)
        if isinstance(exc, aex.ServiceRequestError | aex.ServiceResponseError):
            return NodeProviderError(
                f"{what}: cannot reach Azure Resource Manager ({_first_line(exc)}); the next tick retries",
                retryable=True,
                code="Unreachable",
            )
        if isinstance(exc, aex.DecodeError | ValueError | TypeError | KeyError):
            return NodeProviderError(
                f"{what}: Azure answered with a body that is not the API's JSON ({type(exc).__name__}); nothing is "
                "assumed changed",
                retryable=True,
                code="Unreadable",
            )
        return NodeProviderError(f"{what} failed unexpectedly: {exc!r}", code=type(exc).__name__)


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n", 1)[0].split())[:300]
