"""Builds the OverrideProvider from config (schedule rules + manual store). Placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoscaler.interfaces import NoOverrides, OverrideProvider

if TYPE_CHECKING:
    from autoscaler.config import Config


def build_provider(config: Config) -> OverrideProvider:
    return NoOverrides()
