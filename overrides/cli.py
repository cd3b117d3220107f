"""`forescale schedule …` and `forescale override …` commands. Placeholder until implemented."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
