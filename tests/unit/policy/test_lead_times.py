"""One lead time per pool (``ports.LeadTimes``), resolved once and asked by every reader: the tick's horizon, a
schedule rule's pre-warming (when the rule is evaluated, not when the file is loaded), the predictor's headroom
calibration, the queued-too-long warning, and the backtest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent
from typing import Any

from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import PoolState
from autoscaler.core.nodes import BootSample
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.policy.nodes import NodeMemory, PoolLeadTimes
from autoscaler.policy.placement import PlacementWatch
from autoscaler.policy.tick import pool_lead_time
from autoscaler.wiring import build_provider, build_runtime
from overrides.provider import Overrides
from overrides.schedule import parse_schedule, schedule_transitions
from predictor.factory import make_predictor
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict
from tests.node_doubles import NODES

MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def auto_pool(**kw: Any) -> PoolConfig:
    return make_config(pool_dict("ocr", lead_time="auto", nodes={**NODES, "min_boots": 3}, **kw)).pool("ocr")


def boots(minutes: float, n: int = 5) -> list[BootSample]:
    at = MONDAY_9 - timedelta(hours=1)
    return [BootSample("ocr", f"i-{i}", f"gpu-{i}", at, at + timedelta(minutes=minutes)) for i in range(n)]


def test_the_learned_lead_time_is_what_every_reader_gets() -> None:
    pool = auto_pool()
    learned = PoolLeadTimes(lambda: boots(20.0))
    assert learned.of(pool, MONDAY_9).seconds == 1200 and learned.of(pool, MONDAY_9).source == "learned"
    assert PoolLeadTimes().of(pool, MONDAY_9).seconds == 600  # lead_time_initial until boots are seen
    deps = make_deps(make_config(pool_dict("ocr", lead_time="auto", nodes={**NODES, "min_boots": 3})), FlatMetrics({}))
    deps.lead_times = learned
    assert pool_lead_time(deps, pool, MONDAY_9).seconds == 1200  # the tick's horizon
    # The predictor's headroom calibration plans with it.
    cfg = make_config(pool_dict("ocr"))
    model = make_predictor(cfg.predictor, pool, learned.of(pool, MONDAY_9).seconds)
    assert model.policy.lead_s == 1200  # type: ignore[attr-defined]
    assert make_predictor(cfg.predictor, pool).policy.lead_s == 600  # type: ignore[attr-defined]


def test_a_schedule_rule_prewarms_by_the_lead_time_in_force_when_it_is_evaluated(tmp_path: Path) -> None:
    schedule = parse_schedule(
        dedent(
            """
            rules:
              - {name: open, pool: ocr, timezone: UTC, days: mon-fri, window: "09:00-18:00", min: 8}
              - {name: own, pool: ocr, timezone: UTC, days: mon-fri, window: "12:00-13:00", min: 9, lead: 2m}
            """
        ),
        Path("schedule.yaml"),
        {"ocr": timedelta(minutes=10)},
    )
    lead = {"now": timedelta(minutes=25)}
    provider = Overrides(schedule, None, ["ocr"], lead_for=lambda pool, now: lead["now"])
    at = MONDAY_9 - timedelta(minutes=20)
    assert [e.value for e in provider.effects("ocr", at)] == [8]  # 25m learned: the floor is up at 08:35
    lead["now"] = timedelta(minutes=5)
    assert provider.effects("ocr", at) == []  # 5m now: not yet (configured 10m would not either)
    own = next(r for r in provider.current_schedule(at).rules if r.name == "own")
    assert own.lead == timedelta(minutes=2)  # a rule's own lead is kept
    # The daemon's extra ticks follow the same leads.
    lead["now"] = timedelta(minutes=25)
    times = schedule_transitions(provider.current_schedule(at), MONDAY_9 - timedelta(hours=1), MONDAY_9)
    assert MONDAY_9 - timedelta(minutes=25) in times


def test_the_queued_warning_waits_twice_the_lead_time_in_force() -> None:
    pool = auto_pool()
    watch = PlacementWatch()
    queued = PoolState(5, 3, 2)
    lead = PoolLeadTimes(lambda: boots(20.0)).of(pool, MONDAY_9)
    assert watch.observe(pool, queued, MONDAY_9, lead) is None
    assert watch.observe(pool, queued, MONDAY_9 + timedelta(minutes=35), lead) is None  # < 2 × 20m
    event = watch.observe(pool, queued, MONDAY_9 + timedelta(minutes=41), lead)
    assert event is not None and "longer than 40m" in event.message


def test_the_runtime_resolves_it_once_from_the_node_step(tmp_path: Path) -> None:
    cfg = make_config(
        pool_dict("ocr", lead_time="auto", nodes={**NODES, "min_boots": 3}), audit_log=str(tmp_path / "a.jsonl")
    )
    runtime = build_runtime(cfg, ManualClock(MONDAY_9))
    assert runtime.nodes is not None and runtime.lead_times is runtime.nodes.lead_times
    runtime.nodes.memory = NodeMemory(boots=boots(14.0))
    deps = runtime.tick_deps([])
    assert deps.lead_times is runtime.lead_times
    assert pool_lead_time(deps, cfg.pool("ocr"), MONDAY_9).seconds == 14 * 60
    assert build_provider(cfg, None, runtime.lead_times).lead_for is not None
