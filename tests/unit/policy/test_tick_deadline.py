"""The tick deadline: pools not decided (or not applied) by then are reported failed and left as they are."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from autoscaler.core.series import RateSeries
from autoscaler.policy.tick import run_tick
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict


class SlowMetrics(FlatMetrics):
    """Every fetch takes ``took`` seconds of the injected monotonic clock."""

    def __init__(self, rates: dict[str, float], clock: list[float], took: float) -> None:
        super().__init__(rates)
        self.clock = clock
        self.took = took

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        self.clock[0] += self.took
        return super().fetch(query, start, end, step_s)


def deps_with(took: float, deadline_s: float) -> Any:
    config = make_config(pool_dict("ocr"), pool_dict("asr"))
    clock = [100.0]
    metrics = SlowMetrics({p.query: 300.0 for p in config.pools}, clock, took)
    deps = make_deps(config, metrics, deadline_s=deadline_s, monotonic=lambda: clock[0])
    return deps


def test_pools_past_the_deadline_are_failed_and_untouched() -> None:
    deps = deps_with(took=60, deadline_s=50)  # the first fetch alone outlives the deadline
    report = run_tick(deps)
    ocr, asr = report.outcomes
    assert ocr.status == "failed" and ocr.decision is not None and ocr.decision.desired != 2
    assert "the tick deadline (50s) passed before this pool was applied" in (ocr.error or "")
    assert asr.status == "failed" and asr.decision is None
    assert "passed before this pool was decided" in (asr.error or "")
    assert [len(deps.target.nodes(p)) for p in ("ocr", "asr")] == [2, 2]  # nothing shrunk, nothing grown


def test_within_the_deadline_every_pool_is_applied() -> None:
    deps = deps_with(took=10, deadline_s=50)
    report = run_tick(deps)
    assert [o.status for o in report.outcomes] == ["applied", "applied"]
