"""One tick for many pools: pools decided concurrently, the same content as one after another, a fair deadline
(skipped pools reported and first next time, also across cron runs through the audit log), and a guard that
passes over the pools a running tick holds instead of waiting for it. Barriers and injected clocks: no sleeps."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from autoscaler.core.clock import ManualClock
from autoscaler.core.series import RateSeries
from autoscaler.notify.audit import AuditLog
from autoscaler.policy.runner import FairOrder
from autoscaler.policy.tick import run_tick
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict

WAIT_S = 30.0
NAMES = [f"p{i}" for i in range(12)]


def config(**over: Any) -> Any:
    return make_config(*(pool_dict(n, **over) for n in NAMES))


def rates(cfg: Any) -> dict[str, float]:
    return {p.query: 40.0 + 25.0 * i for i, p in enumerate(cfg.pools)}


class BarrierMetrics(FlatMetrics):
    """A fetch waits until ``parties`` fetches are in progress at once (proof that pools overlap)."""

    def __init__(self, rates: dict[str, float], parties: int) -> None:
        super().__init__(rates)
        self.barrier = threading.Barrier(parties, timeout=WAIT_S)
        self.lock = threading.Lock()
        self.arrived = 0

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        with self.lock:
            self.arrived += 1
            first = self.arrived <= self.barrier.parties
        if first:  # the first `parties` fetches meet here: they only can if they run at the same time
            self.barrier.wait()
        with self.lock:
            return super().fetch(query, start, end, step_s)


def test_pools_are_decided_concurrently_with_the_same_content_as_one_by_one() -> None:
    cfg = config()
    one_by_one = run_tick(make_deps(cfg, FlatMetrics(rates(cfg))))
    together = run_tick(make_deps(cfg, BarrierMetrics(rates(cfg), parties=4), workers=4))
    assert [o.pool for o in together.outcomes] == NAMES  # config order, whatever thread was quicker
    assert together.outcomes == one_by_one.outcomes
    assert all(o.status == "applied" for o in together.outcomes) and together.skipped == ()


class SlowMetrics(FlatMetrics):
    """Every fetch takes ``took`` seconds of the injected monotonic clock."""

    def __init__(self, rates: dict[str, float], clock: list[float], took: float) -> None:
        super().__init__(rates)
        self.clock, self.took = clock, took

    def fetch(self, query: str, start: datetime, end: datetime, step_s: float) -> RateSeries:
        self.clock[0] += self.took
        return super().fetch(query, start, end, step_s)


def test_the_deadline_skips_the_tail_once_then_the_skipped_go_first(tmp_path: Path) -> None:
    cfg = config()
    clock = [0.0]
    audit = AuditLog(tmp_path / "audit.jsonl")
    manual = ManualClock(T0)
    deps = make_deps(
        cfg, SlowMetrics(rates(cfg), clock, took=10), clock=manual, deadline_s=45, monotonic=lambda: clock[0],
        audit=audit,
    )  # fmt: skip
    first = run_tick(deps)
    decided = [o.pool for o in first.outcomes if o.decision is not None]
    assert decided == NAMES[:5]  # 5 fetches of 10 s each start before 45 s (the 5th one ends late)
    assert first.skipped == tuple(NAMES[5:])
    skipped = {o.pool: o for o in first.outcomes if o.pool in first.skipped}
    assert all(o.status == "failed" and "it goes first next tick" in (o.error or "") for o in skipped.values())
    manual.advance(timedelta(minutes=20))
    second = run_tick(deps)
    assert [o.pool for o in second.outcomes if o.decision is not None] == NAMES[5:10]  # the skipped went first
    assert second.skipped == (*NAMES[10:], *NAMES[:5])
    # A one-shot `tick` (cron) learns the same from the audit log.
    late = audit.late_pools(T0 - timedelta(hours=1))
    assert late == [*NAMES[10:], *NAMES[:5]]
    assert FairOrder(late).order(NAMES)[:2] == ["p10", "p11"]


def test_the_guard_passes_over_a_pool_the_tick_holds_and_checks_the_others() -> None:
    cfg = make_config(pool_dict("ocr", guard={"enabled": True}), pool_dict("asr", guard={"enabled": True}))
    metrics = FlatMetrics({p.query: 300.0 for p in cfg.pools})  # 300 rps: 38 nodes, far above the 2 running
    deps = make_deps(cfg, metrics, workers=2)
    with deps.locks.hold("ocr"):  # what a running tick does while it decides ocr
        report = run_tick(deps, guard=True)
    assert [o.pool for o in report.outcomes] == ["asr"] and report.outcomes[0].status == "applied"
    assert len(deps.target.nodes("ocr")) == 2  # left to the tick
    again = run_tick(deps, guard=True)
    assert [o.pool for o in again.outcomes] == ["ocr"]
