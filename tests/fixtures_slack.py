"""pytest fixtures for the slack tests (loaded by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.config import Config
from autoscaler.notify_metrics import NotifyMetrics
from tests.fake_slack import FakeSlack


class FakeTime:
    """Stands in for time.sleep/time.monotonic in the retry budget: sleeping advances it, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def notify_metrics() -> NotifyMetrics:
    """Counters on a fresh registry, so tests assert exact values."""
    return NotifyMetrics(CollectorRegistry())


def sample(metrics: NotifyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def slack_config(fake_slack: FakeSlack) -> Callable[..., Config]:
    """Config with pools ocr/asr and a ``slack:`` section pointing at the fake (override keys as needed)."""
    from tests.helpers import make_config, pool_dict

    def build(**slack: Any) -> Config:
        section: dict[str, Any] = {
            "channel": "C0123OPS",
            "base_url": fake_slack.base_url,
            "timeout": "2s",
            "max_retry_time": "30s",
            "repeat_failure_after": "1h",
            "async_delivery": False,
        }
        section.update(slack)
        return make_config(
            pool_dict("ocr"),
            pool_dict("asr"),
            slack=section,
            nomad={"ui_url": "https://nomad.example.com", "namespace": "ml"},
        )

    return build
