"""Settings of the Google Cloud and Azure node providers (``nodes.gce`` and ``nodes.azure``; docs/nodes.md).

Neither holds a secret: ``gce_mig`` authenticates with Application Default Credentials only (the attached
service account, workload identity federation, ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth
application-default login``) and ``azure_vmss`` with ``DefaultAzureCredential`` only (managed identity,
workload identity, ``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/… in the environment, ``az login``).
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.base import StrictModel, UrlWithCredentials

# Compute Engine names (RFC 1035: the discovery document's `pattern` of instanceGroupManager/zone/region) and
# project ids (6–30 characters; an older domain-scoped "example.com:project" too).
GCE_NAME_RE = r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$"
GCP_PROJECT_RE = r"^(?:[-a-z0-9.]{1,63}:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$"
# Azure: a subscription is a GUID; resource group names 1–90 of letters, digits, _ - . ( ) not ending in '.';
# scale set names 1–64 (Windows computer-name prefixes are shorter; Azure checks that itself).
AZURE_SUBSCRIPTION_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
AZURE_RG_RE = r"^[-\w._()]{0,89}[-\w_()]$"
AZURE_VMSS_RE = r"^[A-Za-z0-9][-A-Za-z0-9._]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$"


def _url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^/\s]+/?$", value):
        raise ValueError("write a base URL such as https://host:port (no path), or leave it out")
    return value.rstrip("/") if value else value


class _CloudSettings(StrictModel):
    min_size: int = Field(0, ge=0, le=2000, description="fewest machines forescale leaves in the group")
    max_size: int | None = Field(
        None, ge=1, le=2000, description="most machines forescale asks the group for (default: the pool's max + spare)"
    )
    max_attempts: int = Field(
        4, ge=1, le=10, description="total attempts of one call (throttling 429 honouring Retry-After, 5xx)"
    )
    timeout: Duration = Field(timedelta(seconds=30), description="connect and read timeout of one API call")
    operation_timeout: Duration = Field(
        timedelta(minutes=5),
        description="how long to follow a long-running operation (resize, delete) before reporting it unfinished",
    )

    @model_validator(mode="after")
    def _sizes(self) -> _CloudSettings:
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError("max_size must be at least min_size")
        return self

    @field_validator("timeout", "operation_timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("must be between 1s and 1h")
        return value


class GceMigSettings(_CloudSettings):
    """A Compute Engine managed instance group, zonal (``zone``) or regional (``region``)."""

    project: str = Field(..., pattern=GCP_PROJECT_RE, description="Google Cloud project id of the group")
    name: str = Field(..., pattern=GCE_NAME_RE, description="name of the managed instance group")
    zone: str | None = Field(None, pattern=GCE_NAME_RE, description="zone of a zonal group (e.g. us-central1-a)")
    region: str | None = Field(None, pattern=GCE_NAME_RE, description="region of a regional group (e.g. us-central1)")
    endpoint: UrlWithCredentials | None = Field(
        None, description="Compute Engine API endpoint override (client_options api_endpoint), for local tests only"
    )

    @property
    def scope(self) -> str:
        """'zones/us-central1-a' or 'regions/us-central1' (the group's path in the API)."""
        return f"zones/{self.zone}" if self.zone else f"regions/{self.region}"

    def group_key(self) -> tuple[str, ...]:
        return ("MIG", f"{self.project}/{self.scope}/{self.name}")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _url(value)

    @model_validator(mode="after")
    def _one_location(self) -> GceMigSettings:
        if (self.zone is None) == (self.region is None):
            raise ValueError("set exactly one of zone (a zonal group) or region (a regional group)")
        return self


class AzureVmssSettings(_CloudSettings):
    """An Azure virtual machine scale set (Uniform or Flexible orchestration)."""

    subscription_id: str = Field(..., pattern=AZURE_SUBSCRIPTION_RE, description="subscription of the scale set")
    resource_group: str = Field(..., pattern=AZURE_RG_RE, description="resource group of the scale set")
    name: str = Field(..., pattern=AZURE_VMSS_RE, description="name of the virtual machine scale set")
    endpoint: UrlWithCredentials | None = Field(
        None,
        description="Azure Resource Manager endpoint (the client's base_url; default https://management.azure.com): "
        "a sovereign cloud's, or a local test server",
    )

    def group_key(self) -> tuple[str, ...]:
        return ("VMSS", f"{self.subscription_id.lower()}/{self.resource_group.lower()}/{self.name.lower()}")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _url(value)
