"""Commands of this subsystem (registered on the main app). Placeholder until implemented."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
