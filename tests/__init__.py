"""forescale's tests: unit/ mirrors the packages, integration/ runs real servers and processes,
fakes/ are the HTTP fakes (Nomad, Slack), fixtures/ the pytest plugins, golden/ the expected renders."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
"""The repository root (for the example config, bundled data, docs)."""


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
