"""Target backed by Nomad (python-nomad). Placeholder: filled in by the Nomad target work."""

from __future__ import annotations

from autoscaler.config import NomadSettings, PoolConfig
from autoscaler.decision import Decision
from autoscaler.errors import NomadError


class NomadTarget:
    """Reads running+pending allocations and scales task groups via POST /v1/job/:id/scale."""

    def __init__(self, settings: NomadSettings) -> None:
        self.settings = settings

    def current_count(self, pool: PoolConfig) -> int:
        raise NomadError("Nomad target not implemented yet")

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        raise NomadError("Nomad target not implemented yet")
