"""Small in-memory doubles shared by unit tests (no servers)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision
from autoscaler.core.errors import MetricsUnavailable, TargetError
from autoscaler.core.ports import NoOverrides
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import Config
from autoscaler.policy.tick import TickDeps
from autoscaler.targets.simulated import SimulatedCluster
from predictor.linear import LinearTrendPredictor
from tests.fixtures.prometheus_server import free_port as free_port  # one definition, re-exported here

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def pool_dict(name: str = "ocr", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "query": f'sum(rate(http_requests_total{{pool="{name}"}}[5m]))',
        "nomad": {"job": f"ml-{name}", "group": "workers"},
        "capacity_per_node": 10.0,
        "target_utilization": 0.8,  # explicit: tests below reason with 10 rps/node × 0.8
        "min": 1,
        "max": 50,
    }
    base.update(over)
    return base


def make_config(*pools: dict[str, Any], **over: Any) -> Config:
    return Config.model_validate({"pools": list(pools) or [pool_dict()], **over})


class FlatMetrics:
    """Serves a constant rate per query (or raises MetricsUnavailable for queries listed in ``broken``), a sample
    every ``step_s`` (the source's own step, as Prometheus's default resolution)."""

    step_s = 60.0

    def __init__(self, rates: dict[str, float], broken: set[str] | None = None) -> None:
        self.rates = rates
        self.broken = broken or set()
        self.calls: list[str] = []

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        self.calls.append(query)
        if query in self.broken:
            raise MetricsUnavailable("connection refused (test)")
        t0, t1 = start.timestamp(), end.timestamp()
        n = max(int((t1 - t0) // step_s), 1)
        ts = [t1 - (n - 1 - i) * step_s for i in range(n)]
        return RateSeries.from_lists(ts, [self.rates[query]] * n, step_s)


class FailingTarget(SimulatedCluster):
    """A simulated cluster whose scale() fails for some pools."""

    def __init__(self, clock: ManualClock, initial: dict[str, int], fail: dict[str, TargetError]) -> None:
        super().__init__(clock, initial)
        self.fail = fail

    def scale(self, pool: Any, decision: Decision) -> str:
        if pool.name in self.fail:
            raise self.fail[pool.name]
        return super().scale(pool, decision)


def make_deps(
    config: Config,
    metrics: Any,
    target: Any | None = None,
    clock: ManualClock | None = None,
    **kw: Any,
) -> TickDeps:
    clock = clock or ManualClock(T0)
    predictor_for: Callable[[Any], Any] = lambda _p: LinearTrendPredictor(window_s=1800)  # noqa: E731
    return TickDeps(
        config=config,
        metrics=metrics,
        predictor_for=predictor_for,
        target=target or SimulatedCluster(clock, {p.name: 2 for p in config.pools}),
        overrides=kw.pop("overrides", NoOverrides()),
        clock=clock,
        **kw,
    )


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (error statuses included), with a bounded wait."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
