"""Find files shipped with forescale, both in a source checkout and in an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def bundled(kind: str, name: str) -> Path:
    """``kind`` is ``data``, ``jobspecs`` or ``scripts``; wheels carry them under the packages."""
    packaged = {
        "data": ("predictor", "_data"),
        "jobspecs": ("autoscaler", "_jobspecs"),
        "scripts": ("autoscaler", "_scripts"),
    }[kind]
    candidate = Path(str(resources.files(packaged[0]).joinpath(packaged[1], name)))
    if candidate.exists():
        return candidate
    return _REPO / kind / name


DEMO_TRACE = "nasa_http_1995_jul_5min.csv"
