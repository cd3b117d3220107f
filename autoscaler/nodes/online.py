"""`forescale config check` with the network: what each pool's machine group looks like right now.

The same read as the node step (``read_fleet``) and the same classification (``classify``), nothing written: a
group holding machines of another Nomad node pool, two nodes on one machine, or a provider warning (e.g. AZ
rebalancing active across zones) is a warning of `config check`. Skipped with ``--no-env``; a provider or Nomad
that cannot be reached gives one note instead (the check is advice, never a failure).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from autoscaler.core.errors import ForescaleError
from autoscaler.nodes.directory import NomadNodeDirectory
from autoscaler.nodes.registry import build_node_provider
from autoscaler.policy.nodes.fleet import classify
from autoscaler.policy.nodes.reconciler import read_fleet

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config
    from autoscaler.nomad.client import NomadClient


def check_groups(config: Config, client: NomadClient) -> tuple[list[str], str | None]:
    """(warnings, note): one warning per foreign or ambiguous machine and per provider warning; the note says
    what was checked, or why it could not be."""
    warnings: list[str] = []
    directory = NomadNodeDirectory(client)
    checked = 0
    for i, pool in enumerate(config.pools):
        if pool.mode == "off" or not pool.nodes.enabled:
            continue
        provider = build_node_provider(pool)
        if provider is None:
            continue
        try:
            group, nodes = read_fleet(provider, directory, pool)
        except ForescaleError as exc:
            return warnings, f"machine groups not checked: {exc}"
        checked += 1
        key = f"pools[{i}] ({pool.name}).nodes"
        now = datetime.now(UTC)  # only the foreign and ambiguous slots are read: they do not depend on time
        fleet = classify(group, nodes, now, pool.nodes.boot_timeout.total_seconds(), {}, pool.nodes.filters_text())
        warnings += [f"{key}: {slot.why}" for slot in fleet.of("foreign", "ambiguous")]
        warnings += [f"{key}: {message}" for _key, message in group.state.warnings]
    note = f"machine groups checked: {checked} (foreign or shared machines, provider warnings)" if checked else None
    return warnings, note
