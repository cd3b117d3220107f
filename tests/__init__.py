"""forescale's tests: unit/ mirrors the packages, integration/ runs real servers and processes,
fakes/ are the HTTP fakes (Nomad, Slack), fixtures/ the pytest plugins, golden/ the expected renders."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root (for the example config, bundled data, docs)."""
