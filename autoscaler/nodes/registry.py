"""The node providers' builders: one row per ``nodes.provider`` value (the schema's rows are in
``autoscaler.core.settings.nodes.PROVIDERS``; ``tests/unit/nodes/test_registry.py`` holds the keys equal).

A row builds the provider from its settings section (importing its SDK only then: an AWS-only install never
imports another cloud's SDK, and `forescale --help` imports none) and checks the section without a network
call, for ``forescale config check``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoscaler.core.ports import NodeProvider
    from autoscaler.core.settings.forescale import PoolConfig


def _aws(settings: Any) -> NodeProvider:
    from autoscaler.nodes.aws_asg import AwsAsgProvider

    return AwsAsgProvider(settings)


def _gce(settings: Any) -> NodeProvider:
    from autoscaler.nodes.gce_mig import GceMigProvider

    return GceMigProvider(settings)


def _azure(settings: Any) -> NodeProvider:
    from autoscaler.nodes.azure_vmss import AzureVmssProvider

    return AzureVmssProvider(settings)


def _command(settings: Any) -> NodeProvider:
    from autoscaler.nodes.command import CommandProvider

    return CommandProvider(settings)


def _check_aws(settings: Any, where: str) -> list[str]:
    if not settings.endpoint_url:
        return []
    host = settings.endpoint_url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if host.startswith(("127.", "localhost", "[::1]")):
        return []
    return [f"{where}.aws.endpoint_url: {host} is only meant for a local test endpoint (moto); leave it out to use AWS"]


def _check_gce(settings: Any, where: str) -> list[str]:
    from autoscaler.nodes.cloud_calls import EXTRAS, is_loopback

    problems = [f"{where}.provider: gce_mig {missing}" for missing in [EXTRAS["gce_mig"].missing()] if missing]
    if settings.endpoint and not is_loopback(settings.endpoint):
        problems.append(
            f"{where}.gce.endpoint: {settings.endpoint} is only meant for a local test server; leave it out to use "
            "Compute Engine"
        )
    return problems


def _check_azure(settings: Any, where: str) -> list[str]:
    from autoscaler.nodes.cloud_calls import EXTRAS, is_loopback

    problems = [f"{where}.provider: azure_vmss {missing}" for missing in [EXTRAS["azure_vmss"].missing()] if missing]
    endpoint = settings.endpoint
    if endpoint and not is_loopback(endpoint) and not endpoint.startswith("https://management."):
        problems.append(
            f"{where}.azure.endpoint: {endpoint} is neither an Azure Resource Manager endpoint "
            "(https://management.…) nor a local test server; leave it out to use Azure's"
        )
    return problems


def _check_command(settings: Any, where: str) -> list[str]:
    path = settings.path
    if not path.is_file():
        return [f"{where}.command.path: {path} does not exist; fix the path"]
    if not os.access(path, os.X_OK):
        return [f"{where}.command.path: {path} is not executable; chmod +x it"]
    return []


@dataclass(frozen=True)
class ProviderBuilder:
    build: Callable[[Any], NodeProvider]
    check: Callable[[Any, str], list[str]]  # (section settings, "pools[i] (name).nodes") → problems with fixes


BUILDERS: dict[str, ProviderBuilder] = {
    "aws_asg": ProviderBuilder(_aws, _check_aws),
    "gce_mig": ProviderBuilder(_gce, _check_gce),
    "azure_vmss": ProviderBuilder(_azure, _check_azure),
    "command": ProviderBuilder(_command, _check_command),
}


def build_node_provider(pool: PoolConfig) -> NodeProvider | None:
    """The pool's ``nodes.provider`` (None for a fixed fleet)."""
    section = pool.nodes.section()
    if section is None:
        return None
    return BUILDERS[pool.nodes.provider].build(section)
