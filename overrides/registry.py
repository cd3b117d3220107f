"""The builder side of the override-store registry: ``overrides.store`` → a running ``OverrideStore``.

One row per store, keyed like ``autoscaler.core.settings.adapters.OVERRIDE_STORES`` (the schema side; a unit
test keeps the keys equal). A store that talks to Nomad gets the runtime's one Nomad client (``nomad``, called
only when that store is built).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autoscaler.core.ports import OverrideStore
from autoscaler.core.settings.forescale import Config
from overrides.manual import PoolRecords

if TYPE_CHECKING:
    from autoscaler.nomad.client import NomadClient

NomadFactory = Callable[[], "NomadClient"]


@dataclass(frozen=True)
class StoreBuilder:
    """How one override store is built from the config (and, if it needs one, the Nomad client)."""

    name: str
    build: Callable[[Config, NomadFactory], OverrideStore[PoolRecords]]


def _file(config: Config, nomad: NomadFactory) -> OverrideStore[PoolRecords]:
    from overrides.store import FileStore

    return FileStore(config.overrides.path)


def _nomad(config: Config, nomad: NomadFactory) -> OverrideStore[PoolRecords]:
    from overrides.nomad_store import NomadVariablesStore

    return NomadVariablesStore(nomad(), config.overrides.nomad_variable_prefix)


OVERRIDE_STORES: Mapping[str, StoreBuilder] = {
    "file": StoreBuilder("file", _file),
    "nomad": StoreBuilder("nomad", _nomad),
}


def build_store(config: Config, nomad: NomadFactory | None = None) -> OverrideStore[PoolRecords]:
    """The store ``overrides.store`` selects (``nomad``: the Nomad client to use; default: a new one)."""

    def new_client() -> NomadClient:
        from autoscaler.nomad.client import NomadClient

        return NomadClient(config.nomad)

    return OVERRIDE_STORES[config.overrides.store].build(config, nomad or new_client)
