"""The ``overrides:`` section of forescale.yaml (owned by overrides/)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from autoscaler.core.durations import Duration
from autoscaler.core.settings.adapters import OverrideStoreName
from autoscaler.core.settings.base import StrictModel
from autoscaler.core.settings.marks import FilePath

VARIABLE_PATH_MAX = 128  # nomad/structs/variables.go ValidatePath
MAX_PREFIX_CHARS = VARIABLE_PATH_MAX - 1 - 63  # "<prefix>/<pool>" with the longest pool name (63 characters)


class OverridesSettings(StrictModel):
    """Where manual overrides live and where the schedule rules are declared."""

    store: OverrideStoreName = Field(
        "file", description="file: one local JSON file; nomad: Nomad Variables (shared, ACL-guarded)"
    )
    path: Annotated[Path, FilePath("state", "forescale-overrides.json")] = Field(
        Path("forescale-overrides.json"), description="file store path"
    )
    nomad_variable_prefix: str = Field(
        "forescale/overrides",
        description="Nomad Variables path prefix; each pool's variable is <prefix>/<pool> (Nomad: letters, digits, "
        "- _ ~ / and at most 128 characters)",
    )
    schedule_file: Annotated[Path | None, FilePath("read", "schedule.yaml")] = Field(
        None, description="YAML file of time-based rules"
    )
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
        """Nomad's ``ValidatePath``: ``^[a-zA-Z0-9-_~/]{1,128}$`` for the whole path ``<prefix>/<pool>``."""
        clean = v.strip("/")
        if not clean or not re.fullmatch(r"[A-Za-z0-9_~-]+(/[A-Za-z0-9_~-]+)*", clean):
            raise ValueError(
                "use a Nomad variable path such as forescale/overrides: Nomad allows only letters, digits, "
                "- _ ~ and / (no dots or spaces)"
            )
        if len(clean) > MAX_PREFIX_CHARS:
            raise ValueError(
                f"'{clean[:20]}…' is {len(clean)} characters: a pool's variable is <prefix>/<pool>, Nomad caps a "
                f"path at {VARIABLE_PATH_MAX} characters and pool names may have 63, so keep the prefix to "
                f"{MAX_PREFIX_CHARS}"
            )
        if clean == "nomad" or clean.startswith("nomad/"):
            raise ValueError("paths under nomad/ are reserved by Nomad for jobs; use e.g. forescale/overrides")
        return clean
