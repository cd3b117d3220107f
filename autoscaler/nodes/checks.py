"""Config checks owned by the node providers, for `forescale config check` (no network: nothing is called)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoscaler.nodes.registry import BUILDERS

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
        section = nodes.section()
        if section is not None:
            problems += BUILDERS[nodes.provider].check(section, f"{where}.nodes")
    return problems
