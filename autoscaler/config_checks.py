"""Checks `forescale config check` runs beyond the schema; each subsystem owns its own."""

from __future__ import annotations

from autoscaler import jobspec_checks
from autoscaler.config import Config
from overrides import checks as override_checks


def extra_checks(config: Config) -> list[str]:
    """Problems the schema cannot see (e.g. contradictory schedule rules); one line each with the fix."""
    return override_checks.check_config(config) + jobspec_checks.check_config(config)
