"""What the cloud-SDK node providers (gce_mig, azure_vmss) share: their optional extras, bounded retries that
honour ``Retry-After``, and following a long-running operation to a deadline; and what every provider checks
before it asks for machines (``refuse_above_max``).

Time is injectable (``Pacer(clock, sleep)``): the providers' tests point the SDKs at local servers and move a
manual clock instead of sleeping. Every wait is bounded by ``autoscaler.core.deadline.budget`` as well, so a
tick's deadline (and a SIGTERM shortening it) also ends a wait.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from autoscaler.core.deadline import budget
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import MachineGroup

T = TypeVar("T")

MAX_RETRY_AFTER_S = 60.0  # never wait longer than this for one retry, whatever the server asks
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # without Retry-After (5xx): exponential, capped
LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass(frozen=True)
class Extra:
    """The optional install a provider needs: ``pip install 'forescale[<name>]'``."""

    name: str
    modules: tuple[str, ...]  # import names that must be importable
    packages: str  # the PyPI names, for messages

    def missing(self) -> str | None:
        """None when the SDK is importable, else the sentence that says what to install."""
        for module in self.modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                verb = "are" if " and " in self.packages else "is"
                return (
                    f"needs {self.packages}, which {verb} not installed: pip install 'forescale[{self.name}]' "
                    f"(or add the '{self.name}' extra to your image)"
                )
        return None


EXTRAS = {
    "gce_mig": Extra("gcp", ("google.cloud.compute_v1", "google.auth"), "google-cloud-compute"),
    "azure_vmss": Extra("azure", ("azure.mgmt.compute", "azure.identity"), "azure-mgmt-compute and azure-identity"),
}


def is_loopback(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return host.startswith(LOOPBACK)


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds only; an HTTP date counts as absent)."""
    if value and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        return min(float(value), MAX_RETRY_AFTER_S)
    return None


class OperationTimeout(Exception):
    """A long-running operation did not finish within its deadline (it may still finish later)."""


# The time a Pacer uses when none is given: the process's. Tests that build providers through forescale's own
# wiring (build_deps) point these at their manual clock (tests/fixtures/clouds.py), as they inject any Clock.
MONOTONIC: Callable[[], float] = time.monotonic
SLEEP: Callable[[float], None] = time.sleep


class Pacer:
    """Retries and waits on an injectable monotonic ``clock`` and ``sleep`` (tests move a manual clock)."""

    def __init__(self, clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        self.clock = clock or MONOTONIC
        self.sleep = sleep or SLEEP

    def retry(self, fn: Callable[[], T], attempts: int, delay_for: Callable[[Exception, int], float | None]) -> T:
        """``fn()`` up to ``attempts`` times; after a failure ``delay_for(exc, attempt)`` says how long to wait
        before the next attempt (None: not retryable, raise at once). The last failure is raised."""
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as exc:
                delay = delay_for(exc, attempt)
                if delay is None or attempt >= attempts or budget(delay + 1.0) <= delay:
                    raise
                self.sleep(delay)
                attempt += 1

    @staticmethod
    def backoff(attempt: int) -> float:
        return BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)]

    def follow(
        self, poll: Callable[[], tuple[bool, float]], timeout_s: float, what: str, first_delay_s: float = 0.0
    ) -> None:
        """Call ``poll()`` until it says done; it returns (done, seconds to wait before asking again). Raises
        OperationTimeout after ``timeout_s`` (or when the tick's deadline comes first)."""
        limit = min(timeout_s, max(budget(timeout_s), 0.0))
        end = self.clock() + limit
        delay = first_delay_s
        while True:
            if delay > 0:
                if self.clock() + delay > end:
                    raise OperationTimeout(f"{what} did not finish within {limit:g}s")
                self.sleep(delay)
            done, delay = poll()
            if done:
                return
            delay = max(delay, 0.5)


def refuse_above_max(where: str, group: MachineGroup, desired: int, max_name: str) -> None:
    """Raise ``NodeProviderError`` (code ``AboveMax``) before any call when ``desired`` is above the group's max
    (``max_name``: what the operator knows it as)."""
    if group.max is not None and desired > group.max:
        raise NodeProviderError(
            f"{where}: {desired} machines is above the group's {max_name} {group.max} (not asked)", code="AboveMax"
        )
