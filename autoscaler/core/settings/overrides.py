"""The ``overrides:`` section of forescale.yaml (owned by overrides/)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autoscaler.core.durations import Duration


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

    @field_validator("max_duration")
    @classmethod
    def _sane_max(cls, v: timedelta) -> timedelta:
        if v < timedelta(minutes=1):
            raise ValueError("max_duration must be at least 1m (e.g. 7d)")
        return v

    @field_validator("nomad_variable_prefix")
    @classmethod
    def _var_path(cls, v: str) -> str:
        clean = v.strip("/")
        if not clean or not re.fullmatch(r"[A-Za-z0-9_~.-]+(/[A-Za-z0-9_~.-]+)*", clean):
            raise ValueError("use a Nomad variable path such as forescale/overrides (letters, digits, - _ ~ . and /)")
        if clean == "nomad" or clean.startswith("nomad/"):
            raise ValueError("paths under nomad/ are reserved by Nomad for jobs; use e.g. forescale/overrides")
        return clean
