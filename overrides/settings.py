"""The ``overrides:`` section of forescale.yaml (owned by overrides/)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.durations import Duration


class OverridesSettings(BaseModel):
    """Where manual overrides live and where the schedule rules are declared."""

    model_config = ConfigDict(extra="forbid")

    store: Literal["file", "nomad"] = Field(
        "file", description="file: one local JSON file; nomad: Nomad Variables (shared, ACL-guarded)"
    )
    path: Path = Field(Path("forescale-overrides.json"), description="file store path")
    nomad_variable_prefix: str = Field("forescale/overrides", description="Nomad Variables path prefix")
    schedule_file: Path | None = Field(None, description="YAML file of time-based rules")
    max_duration: Duration = Field(timedelta(days=7), description="hard maximum length of a manual override")
