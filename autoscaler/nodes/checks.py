"""Config checks owned by the node providers, for `forescale config check` (no network: nothing is called)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config


def check_config(config: Config) -> list[str]:
    """One line per problem: key path and the fix."""
    problems = []
    for i, pool in enumerate(config.pools):
        where = f"pools[{i}] ({pool.name})"
        nodes = pool.nodes
        if pool.lead_time_auto and not nodes.enabled:
            problems.append(
                f"{where}.lead_time: 'auto' learns from the boots of machines forescale asks for, and this pool has "
                "no nodes.provider; set a duration (e.g. 10m) or configure nodes.provider"
            )
        if nodes.command is not None and nodes.enabled:
            path = nodes.command.path
            if not path.is_file():
                problems.append(f"{where}.nodes.command.path: {path} does not exist; fix the path")
            elif not os.access(path, os.X_OK):
                problems.append(f"{where}.nodes.command.path: {path} is not executable; chmod +x it")
        if nodes.aws is not None and nodes.aws.endpoint_url and nodes.provider == "aws_asg":
            host = nodes.aws.endpoint_url.split("://", 1)[-1].split("/", 1)[0]
            if not host.startswith(("127.", "localhost", "[::1]")):
                problems.append(
                    f"{where}.nodes.aws.endpoint_url: {nodes.aws.endpoint_url} is only meant for a local test "
                    "endpoint (moto); leave it out to use AWS"
                )
    return problems
