"""Shared pytest setup. Each subsystem keeps its fixtures in its own plugin module."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.fixtures.prometheus",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.nomad",
    "tests.fixtures.slack",
    "tests.fixtures.docker",
    "tests.fixtures.moto",
    "tests.fixtures.clouds",
    "tests.fixtures.faults",
]


def require_service(name: str, why: str) -> None:
    """Missing Prometheus/Docker: fail loudly in CI (FORESCALE_REQUIRE_SERVICES=1), skip with a reason elsewhere."""
    message = f"{name} is not available: {why} (run `make test`, which installs and starts it)"
    if os.environ.get("FORESCALE_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """tests/integration/** is marked ``integration`` (real servers, processes, Docker); the rest ``unit``."""
    for item in items:
        parts = item.path.parts
        item.add_marker(pytest.mark.integration if "integration" in parts else pytest.mark.unit)
