"""The provider through ``decide``: precedence, expiry (reported once, across restarts) and an unreadable store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from autoscaler.config import load_config
from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision
from autoscaler.core.settings.forescale import NomadGroupRef, PoolConfig
from autoscaler.policy.decide import decide
from autoscaler.wiring import build_provider
from overrides.manual import Kind
from overrides.operations import Request, set_override
from overrides.provider import Overrides
from overrides.schedule import Schedule, parse_schedule
from overrides.store import FileStore, MemoryStore
from predictor.base import Forecast
from tests.cli_helpers import write_config

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # a Tuesday
POOL = PoolConfig(
    name="ocr",
    query="q",
    nomad=NomadGroupRef(job="ocr", group="workers"),
    capacity_per_node=10,
    target_utilization=1.0,
    min=2,
    max=100,
    lead_time=timedelta(minutes=10),
)
FLOOR_RULE = """
rules:
  - name: stores-open
    pool: ocr
    timezone: UTC
    days: mon-fri
    window: "09:00-18:00"
    min: 50
"""
WEEK = timedelta(days=7)


def schedule(text: str = FLOOR_RULE) -> Schedule:
    return parse_schedule(dedent(text), Path("schedule.yaml"), {"ocr": POOL.lead_time})


def provider(text: str | None = FLOOR_RULE, store: MemoryStore | FileStore | None = None) -> Overrides:
    return Overrides(schedule(text) if text else Schedule(), store or MemoryStore(), ["ocr"], {"ocr": POOL.lead_time})


def add(store: MemoryStore | FileStore, kind: Kind, value: int, now: datetime = T0, hours: float = 3) -> str:
    req = Request(POOL, {kind: value}, "Diwali campaign", "alice", now + timedelta(hours=hours))
    created, _ = set_override(store, req, now, WEEK)
    return created[0].id


def decision(p: Overrides, rps: float, now: datetime = T0, current: int = 20) -> Decision:
    forecast = Forecast(peak_rps=rps, observed_rps=rps, horizon_s=1800, model="test")
    return decide(POOL, now, current, forecast, p.effects("ocr", now))


# ------------------------------------------------------------------ precedence


def test_schedule_floor_beats_a_lower_forecast() -> None:
    d = decision(provider(), rps=300)  # forecast → 30 nodes; floor 50
    assert d.desired == 50
    assert "schedule_floor" in d.reason_codes()
    assert "raised to 50: schedule rule 'stores-open' (UTC, mon-fri 09:00-18:00) floor 50 (wanted 30)" in d.explain()


def test_forecast_above_the_floor_wins() -> None:
    d = decision(provider(), rps=700)
    assert d.desired == 70
    assert "schedule_floor" not in d.reason_codes()


def test_manual_pin_beats_schedule_floor_and_forecast() -> None:
    store = MemoryStore()
    add(store, "pin", 40)
    d = decision(provider(store=store), rps=700)
    assert d.desired == 40
    pin = next(r for r in d.reasons if r.code == "manual_pin")
    assert pin.message == "pinned to 40 by alice until 13:00 UTC for 'Diwali campaign' (forecast wanted 70)"


def test_manual_floor_and_ceiling() -> None:
    store = MemoryStore()
    add(store, "min", 60)
    d = decision(provider(store=store), rps=300)
    assert d.desired == 60 and "manual_floor" in d.reason_codes()
    assert "manual floor 60 set by alice until 13:00 UTC for 'Diwali campaign'" in d.explain()

    store = MemoryStore()
    add(store, "max", 35)
    d = decision(provider(text=None, store=store), rps=700)
    assert d.desired == 35 and "manual_ceiling" in d.reason_codes()
    assert "capped at 35: manual ceiling 35 set by alice" in d.explain()


def test_manual_ceiling_is_applied_after_a_schedule_floor() -> None:
    store = MemoryStore()
    add(store, "max", 35)
    d = decision(provider(store=store), rps=300)  # forecast 30 → schedule floor 50 → manual ceiling 35
    assert d.desired == 35
    assert d.reason_codes()[-2:] == ["schedule_floor", "manual_ceiling"]


def test_schedule_ceiling_caps_the_forecast_but_the_pool_min_still_holds() -> None:
    cap = """
    rules:
      - {name: night-cap, pool: ocr, timezone: UTC, days: daily, window: "00:00-24:00", max: 1}
    """
    d = decision(provider(cap), rps=700)
    assert d.desired == POOL.min  # capped at 1, then raised to the pool min 2
    assert d.reason_codes()[-2:] == ["schedule_ceiling", "pool_min"]


def test_pool_max_clamps_a_floor_above_it() -> None:
    store = MemoryStore()
    # set_override refuses a floor above the pool max; a schedule floor above it is clamped (and config check warns).
    big = FLOOR_RULE.replace("min: 50", "min: 150")
    d = decision(provider(big, store), rps=10)
    assert d.desired == 100 and d.reason_codes()[-1] == "pool_max"


def test_metrics_unavailable_still_raises_to_the_schedule_floor() -> None:
    p = provider()
    d = decide(POOL, T0, 20, None, p.effects("ocr", T0), metrics_error="prometheus down")
    assert d.held and d.desired == 50


# ------------------------------------------------------------------ expiry


def test_expired_override_drops_out_and_is_reported_once_even_across_restarts(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "overrides.json")
    clock = ManualClock(T0)
    ov_id = add(store, "pin", 40, now=clock.now(), hours=2)
    p = provider(store=store)
    assert decision(p, 300, clock.now()).desired == 40
    assert p.drain_events(clock.now()) == []

    clock.advance(timedelta(hours=2))  # expires_at: no longer in force, even before anyone drains
    assert decision(p, 300, clock.now()).desired == 50
    restarted = provider(store=FileStore(tmp_path / "overrides.json"))  # e.g. the next cron `forescale tick`
    events = restarted.drain_events(clock.now())
    assert [(e.kind, e.pool) for e in events] == [("override_expired", "ocr")]
    assert events[0].details["id"] == ov_id
    assert events[0].message.startswith("The pin of ocr to 40 by alice expired at ")
    assert "returns to the forecast at its next tick, without waiting for the scale-in cooldown" in events[0].message
    assert p.drain_events(clock.now()) == []  # the old daemon does not report it again
    assert provider(store=FileStore(tmp_path / "overrides.json")).drain_events(clock.now() + timedelta(hours=1)) == []
    history = store.read(["ocr"])["ocr"].history
    assert [(o.id, o.ended) for o in history] == [(ov_id, "expired")]


def test_expiry_boundary_is_exclusive() -> None:
    store = MemoryStore()
    add(store, "pin", 40, hours=1)
    p = provider(store=store)
    assert decision(p, 300, T0 + timedelta(minutes=59, seconds=59)).desired == 40
    assert decision(p, 300, T0 + timedelta(hours=1)).desired == 50


# ------------------------------------------------------------------ unreadable store at tick time


def test_corrupt_store_reuses_the_last_good_read_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    store = FileStore(path)
    add(store, "pin", 40)
    p = provider(store=store)
    assert decision(p, 700).desired == 40
    path.write_text('{"format": "forescale-overrides/1", "pools": {', encoding="utf-8")  # a broken hand edit
    d = decision(p, 700, T0 + timedelta(minutes=20))
    assert d.desired == 40  # the pin is not dropped
    events = p.drain_events(T0 + timedelta(minutes=20))
    assert [e.kind for e in events] == ["override_store_unreadable"]
    assert str(path) in events[0].message and "last good read from 10:00 UTC" in events[0].message
    assert path.read_text(encoding="utf-8").endswith("{")  # never overwritten


def test_fresh_process_with_corrupt_store_uses_the_last_version_forescale_wrote(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    add(FileStore(path), "pin", 40)
    path.write_text("not json", encoding="utf-8")
    p = provider(store=FileStore(path))
    assert decision(p, 700).desired == 40
    (event,) = p.drain_events(T0)
    assert "overrides.json.last-good" in event.message


def test_store_unreadable_without_any_copy_warns_that_overrides_are_unknown(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text("[]", encoding="utf-8")
    p = provider(store=FileStore(path))
    assert decision(p, 300).desired == 50  # schedule rules still apply
    (event,) = p.drain_events(T0)
    assert "manual overrides of 'ocr' are unknown this tick" in event.message


def test_edited_schedule_is_reloaded_and_a_broken_edit_keeps_the_old_rules(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, FLOOR_RULE))
    p = build_provider(cfg)
    assert [e.value for e in p.effects("ocr", T0)] == [50]
    sched_path = tmp_path / "schedule.yaml"
    sched_path.write_text(dedent(FLOOR_RULE).replace("min: 50", "min: 60"), encoding="utf-8")
    _bump_mtime(sched_path, 1)
    assert [e.value for e in p.effects("ocr", T0)] == [60]
    sched_path.write_text("rules: [oops", encoding="utf-8")
    _bump_mtime(sched_path, 2)
    assert [e.value for e in p.effects("ocr", T0)] == [60]
    events = p.drain_events(T0)
    assert [e.kind for e in events] == ["schedule_invalid"]
    assert "keeping the rules loaded before the edit" in events[0].message


def _bump_mtime(path: Path, seconds: int) -> None:
    import os

    st = path.stat()
    os.utime(path, (st.st_atime + seconds, st.st_mtime + seconds))


@pytest.mark.parametrize("kind", ["pin", "min", "max"])
def test_effect_fields(kind: Kind) -> None:
    store = MemoryStore()
    ov_id = add(store, kind, 40)
    (effect,) = provider(text=None, store=store).effects("ocr", T0)
    assert (effect.kind, effect.value, effect.source, effect.name) == (kind, 40, "manual", ov_id)
    assert (effect.author, effect.reason, effect.expires_at) == ("alice", "Diwali campaign", T0 + timedelta(hours=3))


def test_demo_shows_a_schedule_floor_and_a_manual_pin_with_reasons() -> None:
    from rich.console import Console

    from autoscaler.backtest.demo import run_demo

    console = Console(record=True, width=400)
    result = run_demo(console, days=1.0, start_day=2.0, pace_s=0)
    text = console.export_text()
    assert "raised to 30: schedule rule 'business-hours' (America/New_York, mon-fri 08:10-11:00) floor 30" in text
    assert "pinned to 35 by demo-sre until 20:00 UTC for 'Shuttle launch coverage (demo)'" in text
    assert "override_expired" in text
    counts = dict(result.decisions)
    t_floor = datetime(1995, 7, 3, 12, 0, tzinfo=UTC).timestamp()  # 08:10 EDT − 10m lead
    t_pin = datetime(1995, 7, 3, 17, 0, tzinfo=UTC).timestamp()
    assert counts[t_floor] >= 30 and counts[t_pin] == 35
