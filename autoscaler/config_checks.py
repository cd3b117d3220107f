"""Checks `forescale config check` runs beyond the schema (each subsystem adds its own)."""

from __future__ import annotations

from autoscaler.config import Config


def extra_checks(config: Config) -> list[str]:
    """Problems the schema cannot see (e.g. contradictory schedule rules); one line each with the fix."""
    return []
