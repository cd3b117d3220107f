"""pytest fixtures for the Nomad tests (loaded by tests/conftest.py).

``fake_nomad`` is a started ``tests.fake_nomad.FakeNomad`` on 127.0.0.1 (free port), fresh per test and stopped
after it (held responses are released first, so teardown never waits). ``nomad_settings`` points forescale's
``NomadSettings`` at it with a short timeout, so tests of timeouts stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from autoscaler.config import NomadSettings
from autoscaler.nomad_client import NomadClient
from tests.fake_nomad import FakeNomad


@pytest.fixture
def fake_nomad() -> Iterator[FakeNomad]:
    fake = FakeNomad(max_delay_s=10.0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def nomad_settings(fake_nomad: FakeNomad, monkeypatch: pytest.MonkeyPatch) -> NomadSettings:
    """Settings for the fake: plain HTTP, token from FORESCALE_TEST_NOMAD_TOKEN (unset unless a test sets it)."""
    monkeypatch.delenv("FORESCALE_TEST_NOMAD_TOKEN", raising=False)
    return NomadSettings(
        address=fake_nomad.address,
        token_env="FORESCALE_TEST_NOMAD_TOKEN",
        timeout=timedelta(seconds=1),
        retries=2,
    )


@pytest.fixture
def nomad_client(nomad_settings: NomadSettings) -> NomadClient:
    """A NomadClient on the fake whose retry backoff does not sleep (``client.get_json`` etc.)."""
    return NomadClient(nomad_settings, sleep=lambda _seconds: None)
