"""The per-pool ``jobspec:`` section of forescale.yaml (owned by the jobspec renderer)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class JobspecSettings(BaseModel):
    """How a pool's Nomad job is rendered: GPU packing and graceful teardown knobs."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., description="worker image, already present on the nodes (pull_policy never)")
    workers_per_gpu: int = Field(4, ge=1, le=64, description="worker containers sharing one GPU")
