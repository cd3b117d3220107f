"""The ``metrics:`` section of forescale.yaml: which metrics source reads the pools' queries.

The source's own settings sit in its section (``prometheus:`` for the default); ``adapters.METRICS_SOURCES``
lists the sources there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from autoscaler.core.settings.adapters import METRICS_SOURCES, MetricsSourceName
from autoscaler.core.settings.base import StrictModel
from autoscaler.core.settings.marks import FilePath


class MetricsSettings(StrictModel):
    """Which metrics source gives the pools' request rates."""

    source: MetricsSourceName = Field(
        "prometheus",
        description=f"the metrics source each pool's query is sent to: {', '.join(METRICS_SOURCES)} (its settings "
        "are in the section of that name)",
    )
    history_cache: Annotated[Path | None, FilePath("state", "forescale-history")] = Field(
        None,
        description="a directory where a one-shot `forescale tick` (cron) keeps each pool's recent samples, so the "
        "next run reads only what is new (one small query per pool); the daemon keeps them in memory. Unset: every "
        "`tick` reads each pool's whole history window",
    )
