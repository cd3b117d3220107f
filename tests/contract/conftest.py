"""Shared by the contract suites (tests/contract/README.md).

A suite is one module per port: a parametrised fixture yields one *case* per implementation (the adapter as
built for the test, plus what the suite needs to observe it and to make it fail), and every test asserts one
promise of the Protocol on every case. ``case`` builds the fixture's parameters; cases that need a service
carry its marker, so they fail loudly when it is missing in CI (FORESCALE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

from typing import Any

import pytest


def case(name: str, *marks: Any) -> Any:
    """One implementation of the port under contract: its id in test names and the markers it needs."""
    return pytest.param(name, id=name, marks=list(marks))
