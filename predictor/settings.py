"""The ``predictor:`` section of forescale.yaml (owned by predictor/)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.durations import Duration


class PredictorSettings(BaseModel):
    """Which model forecasts the request rate, and how much history it reads."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["trend_lr"] = Field("trend_lr", description="forecasting model")
    trend_window: Duration = Field(timedelta(minutes=30), description="trend_lr regression window")
