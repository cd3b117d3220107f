"""Config checks owned by the jobspec renderer (names, kill_timeout, GPU memory). Placeholder."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoscaler.config import Config


def check_config(config: Config) -> list[str]:
    """One line per problem: file, key path, the fix."""
    return []
