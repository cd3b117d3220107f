"""Backtest semantics (DESIGN.md "Backtest") on tiny traces whose figures are computed by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.backtest.replay import BacktestError, ReplayResult, replay, run_backtest, score_requests, start_index
from autoscaler.backtest.session import write_decisions
from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision, PoolState
from autoscaler.core.series import RateSeries
from autoscaler.core.settings.forescale import Config, DaemonSettings, GuardSettings, NomadGroupRef, PoolConfig
from autoscaler.core.settings.predictor import PredictorSettings
from autoscaler.targets.simulated import SimulatedCluster
from predictor import reference
from predictor.base import Forecast
from predictor.trace import Trace, load_trace
from tests import REPO, load_benchmark


class Scripted:
    """A predictor that answers a fixed peak per decision time and records what it was shown."""

    name = "scripted"

    def __init__(self, peaks: dict[float, float]) -> None:
        self.peaks = peaks
        self.seen_last: dict[float, float] = {}

    def history_seconds(self) -> float:
        return 600.0

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        self.seen_last[now] = history.last_t
        return Forecast(self.peaks[now], 0.0, horizon_s, self.name)


def demand_at(t: float) -> float:
    # The dip at 640 is history before the replay starts: the pool has risen 2.5× in one step before, so the
    # rise to 45 at 1180 has a precedent and is believed at once (policy/screen.py).
    if 640 <= t < 700:
        return 10.0
    return 25.0 if t < 1180 else 45.0 if t < 1360 else 15.0


def tiny_trace(drop: tuple[float, ...] = ()) -> Trace:
    t = np.array([x for x in np.arange(400.0, 1421.0, 60.0) if x not in drop])
    return Trace("tiny", t, np.array([demand_at(x) * 60 for x in t]), 60.0)


def tiny_config() -> Config:
    pool = PoolConfig(
        name="p",
        query="q",
        nomad=NomadGroupRef(job="j", group="g"),
        capacity_per_node=10.0,
        min=0,
        max=100,
        lead_time=timedelta(seconds=120),
        scale_in_cooldown=timedelta(0),
        max_step_down=None,  # hand-computed figures below: scale-in in one step
        scale_in_window=timedelta(0),  # these tests check the simulator's accounting, not the stabilisation
        guard=GuardSettings(enabled=False),
    )
    return Config(pools=[pool], daemon=DaemonSettings(interval=timedelta(seconds=120)))


PEAKS = {1000.0: 30.0, 1120.0: 50.0, 1240.0: 50.0, 1360.0: 20.0}


def test_replay_through_the_real_tick_matches_hand_computation() -> None:
    model = Scripted(PEAKS)
    r = replay(tiny_trace(), tiny_config(), "p", start=1000.0, predictor=model)
    assert r.decisions == [(1000.0, 3), (1120.0, 5), (1240.0, 5), (1360.0, 2)]
    # First decision ready at once; +2 at 1120 ready at 1240; scale-down at 1360 immediate.
    assert r.provisioned.tolist() == [3, 3, 5, 5, 5, 5, 2, 2]
    assert r.ready.tolist() == [3, 3, 3, 3, 5, 5, 2, 2]
    assert r.node_hours == pytest.approx(30 * 60 / 3600)  # warming nodes are paid for
    assert r.queued_node_hours == pytest.approx(2 * 2 * 60 / 3600)  # 2 nodes booting (queued) for 2 minutes
    assert r.under_capacity_minutes == pytest.approx(1.0)  # only 1180: 45 > 3 × 10
    assert r.under_capacity_pct == pytest.approx(100 / 8)
    assert r.unserved_pct == pytest.approx(100 * 15 * 60 / ((25 * 3 + 45 * 3 + 15 * 2) * 60))
    assert r.scale_actions == 2


def test_replay_is_causal_it_sees_only_finished_intervals() -> None:
    model = Scripted(PEAKS)
    replay(tiny_trace(), tiny_config(), "p", start=1000.0, predictor=model)
    # The interval starting at now-60 ends at now: that is the newest sample a decision at now may see.
    assert model.seen_last == {now: now for now in PEAKS}


def test_gaps_are_masked_not_zero_demand_and_nodes_still_cost() -> None:
    r = replay(tiny_trace(drop=(1180.0,)), tiny_config(), "p", start=1000.0, predictor=Scripted(PEAKS))
    assert r.under_capacity_minutes == 0.0
    assert r.observed_minutes == pytest.approx(7.0)
    assert r.total_requests == pytest.approx((25 * 3 + 45 * 2 + 15 * 2) * 60)
    # 5 nodes ran through the unobserved minute, and stayed at 1360: the forecast window there (the last
    # horizon) still holds the gap, so that forecast is degraded and never scales in (3·2 + 5·6 node-minutes).
    assert r.decisions == [(1000.0, 3), (1120.0, 5), (1240.0, 5), (1360.0, 5)]
    assert r.node_hours == pytest.approx(36 * 60 / 3600)


def simulate(t: np.ndarray, requests: list[tuple[float, int]], lead_s: float) -> ReplayResult:
    """Reference requests on the backtest's one simulated cluster (no demand: only the counts matter)."""
    step = float(t[1] - t[0])
    return score_requests(Trace("t", t, np.zeros_like(t), step), 0, 1.0, lead_s, requests)


def test_simulate_readiness_after_lead_time() -> None:
    t = np.arange(0.0, 481.0, 60.0)
    s = simulate(t, [(0.0, 2), (60.0, 5), (240.0, 3), (300.0, 6)], lead_s=120.0)
    assert s.provisioned.tolist() == [2, 5, 5, 5, 3, 6, 6, 6, 6]
    assert s.ready.tolist() == [2, 2, 2, 5, 3, 3, 3, 6, 6]
    assert s.scale_actions == 3


def test_scale_down_drops_warming_nodes_first_newest_first() -> None:
    t = np.arange(0.0, 361.0, 60.0)
    s = simulate(t, [(0.0, 2), (60.0, 3), (120.0, 4), (180.0, 3)], lead_s=180.0)
    # The node asked at 120 (ready at 300) goes, the one asked at 60 (ready at 240) stays.
    assert s.ready.tolist() == [2, 2, 2, 2, 3, 3, 3]
    s2 = simulate(t, [(0.0, 2), (60.0, 4), (120.0, 3)], lead_s=120.0)
    assert s2.provisioned.tolist() == [2, 4, 3, 3, 3, 3, 3]
    assert s2.ready.tolist() == [2, 2, 2, 3, 3, 3, 3]  # a ready node is never dropped before a warming one


def test_oracle_orders_lead_time_ahead_and_serves_everything() -> None:
    t = np.arange(0.0, 361.0, 60.0)
    rps = np.array([10, 10, 50, 10, 10, 10, 30], dtype=float)
    req = reference.oracle(t, rps, 10.0, 120.0)
    assert req == [(0.0, 5), (180.0, 1), (240.0, 3)]
    trace = Trace("o", t, rps * 60, 60.0)
    from autoscaler.backtest.replay import score_requests

    r = score_requests(trace, 0, 10.0, 120.0, req)
    assert r.unserved_pct == 0.0
    assert r.node_hours == pytest.approx((5 + 5 + 5 + 1 + 3 + 3 + 3) * 60 / 3600)


def test_reactive_tracks_the_last_rate_with_a_cooldown() -> None:
    t = np.arange(0.0, 601.0, 60.0)
    rps = np.array([10, 10, 50, 50, 50, 10, 10, 10, 10, 10, 10], dtype=float)
    assert reference.reactive(t, rps, 1, 10.0) == [(60.0, 2), (180.0, 7), (480.0, 2)]


def test_static_peak() -> None:
    t = np.arange(0.0, 181.0, 60.0)
    assert reference.static_peak(t, np.array([1.0, 95.0, 3.0, 4.0]), 10.0) == [(0.0, 10)]


def test_all_policies_are_scored_on_the_same_steps() -> None:
    t = 1_700_000_000 + 300.0 * np.arange(12 * 24)
    rps = 50 + 40 * np.sin(np.arange(t.shape[0]) / 20.0)
    trace = Trace("sine", t, rps * 300, 300.0)
    cfg = tiny_config().model_copy(update={"daemon": DaemonSettings(interval=timedelta(minutes=20))})
    bt = run_backtest(trace, cfg, "p")
    first = start_index(trace)
    assert trace.t[first] == trace.start + 3600
    for r in bt.policies.values():
        assert r.observed_minutes == pytest.approx((len(t) - first) * 5)
    assert bt.policies["oracle"].unserved_pct == 0.0
    assert bt.policies["static_peak"].unserved_pct == 0.0
    assert min(r.node_hours for r in bt.policies.values()) == bt.policies["oracle"].node_hours


def test_a_trace_too_short_to_replay_is_a_readable_error() -> None:
    trace = Trace("short", np.array([0.0, 60.0]), np.array([1.0, 1.0]), 60.0)
    with pytest.raises(BacktestError, match="short"):
        start_index(trace, start=1000.0)


def test_decisions_replayed_by_a_separate_simulator_give_the_same_figures(tmp_path: Path) -> None:
    """benchmarks/independent_sim.py shares no code with replay.py; on the NASA trace's first 4 days
    (with a gap cut in) its figures from --decisions-out must equal the replay's."""
    from predictor.trace import load_trace

    full = load_trace(REPO / "data" / "nasa_http_1995_jul_5min.csv")
    keep = full.t < full.start + 4 * 86400
    keep &= ~((full.t >= full.start + 2 * 86400) & (full.t < full.start + 2 * 86400 + 3 * 3600))
    trace = Trace("nasa4d", full.t[keep], full.requests[keep], full.step_s)
    csv_path = tmp_path / "trace.csv"
    from datetime import UTC, datetime

    csv_path.write_text(
        "timestamp,requests\n"
        + "".join(
            f"{datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ},{int(r)}\n"
            for t, r in zip(trace.t, trace.requests, strict=True)
        )
    )
    cap = float(trace.rps.max()) / 50
    pool = PoolConfig(name="p", query="q", nomad=NomadGroupRef(job="j", group="g"), capacity_per_node=cap, max=1000)
    r = replay(trace, Config(pools=[pool]), "p")
    decisions = tmp_path / "decisions.csv"
    write_decisions(decisions, r.decisions)
    sim = load_benchmark("independent_sim")
    other = sim.simulate(csv_path, decisions, cap, 600.0)  # type: ignore[attr-defined]
    assert other["node_hours"] == pytest.approx(r.node_hours, rel=1e-9)
    assert other["unserved_pct"] == pytest.approx(r.unserved_pct, rel=1e-9, abs=1e-12)
    assert other["under_capacity_pct"] == pytest.approx(r.under_capacity_pct, rel=1e-9)
    assert other["scale_actions"] == r.scale_actions
    assert other["reversals_1h"] == r.reversals
    assert other["scale_actions_per_day"] == pytest.approx(r.actions_per_day, rel=1e-9)
    assert r.unserved_pct > 0  # the check compares something non-trivial


def test_oracle_when_lead_time_is_not_a_multiple_of_the_step() -> None:
    # Step 5 min, lead 2 min: a node asked at 0 is ready from the step at 300 on, so 0 covers 300 too.
    t = np.array([0.0, 300.0, 600.0, 900.0])
    rps = np.array([10.0, 50.0, 10.0, 10.0])
    req = reference.oracle(t, rps, 10.0, 120.0)
    assert req == [(0.0, 5), (600.0, 1)]
    sched = simulate(t, req, 120.0)
    assert np.all(sched.ready * 10.0 >= rps)


def test_the_initial_fleet_is_not_an_action_and_starts_no_cooldown() -> None:
    """With a 15-minute scale-in cooldown and 2-minute ticks, a scale-in right after the first
    decision must not be blocked: the first decision only sets the starting fleet."""
    cfg = tiny_config()
    cfg = cfg.model_copy(
        update={"pools": [cfg.pools[0].model_copy(update={"scale_in_cooldown": timedelta(minutes=15)})]}
    )
    peaks = {1000.0: 50.0, 1120.0: 20.0, 1240.0: 20.0, 1360.0: 20.0}
    r = replay(tiny_trace(), cfg, "p", start=1000.0, predictor=Scripted(peaks))
    assert r.decisions[:2] == [(1000.0, 5), (1120.0, 2)]
    assert r.scale_actions == 1


def test_backtest_takes_the_learned_lead_time_from_the_audit_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from autoscaler.backtest.session import learned_lead_time
    from autoscaler.core.nodes import BootSample
    from autoscaler.core.report import Event, TickReport
    from autoscaler.notify.audit import AuditLog
    from tests.helpers import T0, make_config, pool_dict

    nodes = {"provider": "aws_asg", "aws": {"asg_name": "x"}, "node_pool": "gpu", "min_boots": 3}
    cfg = make_config(pool_dict("ocr", lead_time="auto", nodes=nodes), audit_log=str(tmp_path / "audit.jsonl"))
    same, note = learned_lead_time(cfg, "ocr", T0)
    assert same.pool("ocr").lead_time == timedelta(minutes=10) and "initial value" in (note or "")
    boots = [BootSample("ocr", f"i-{m}", f"n-{m}", T0, T0 + timedelta(minutes=m)) for m in (6, 7, 8, 12)]
    details = {
        "boots": [
            {
                "machine": b.machine,
                "node": b.node,
                "asked_at": b.asked_at.isoformat(),
                "running_at": b.running_at.isoformat(),
            }
            for b in boots
        ]
    }
    AuditLog(tmp_path / "audit.jsonl").record_tick(TickReport(T0, (), (Event("nodes.boot", "ocr", "b", T0, details),)))
    learned, note = learned_lead_time(cfg, "ocr", T0 + timedelta(hours=1))
    pool = learned.pool("ocr")
    assert not pool.lead_time_auto and pool.lead_time == timedelta(seconds=round(60 * 11.4))
    assert "p95 of 4 recent boots" in (note or "")
    fixed = make_config(pool_dict("ocr"))
    assert learned_lead_time(fixed, "ocr", T0) == (fixed, None)


def test_the_simulated_cluster_reports_nomads_three_counts() -> None:
    clock = ManualClock(datetime.fromtimestamp(1000.0, UTC))
    cluster = SimulatedCluster(clock, {"p": 3})
    pool = tiny_config().pool("p")
    assert cluster.status(pool) == PoolState(desired=3, placed=3, queued=0, running=3)
    decision = Decision(pool="p", at=clock.now(), current=3, desired=5, reasons=())
    note = cluster.scale(pool, decision)
    assert note.startswith("simulated: 2 node(s) queued while booting, ready at ")
    booting = cluster.status(pool)
    assert (booting.desired, booting.placed, booting.queued) == (5, 3, 2)
    assert booting.queued_reason is not None and "still booting" in booting.queued_reason
    clock.advance(pool.lead_time)
    assert cluster.status(pool) == PoolState(desired=5, placed=5, queued=0, running=5)
    assert cluster.scale(pool, replace(decision, current=5, desired=1)) == "simulated: 4 node(s) stopped"


def test_a_kept_fit_changes_the_figures_by_noise_only() -> None:
    """Between refits (predictor.refit_every) a tick predicts from today's features with the kept fit: the replay's
    figures stay within noise of a fit at every tick, for a fraction of the fits."""
    trace = load_trace(REPO / "data" / "nasa_http_1995_jul_5min.csv")
    part = Trace("nasa-8d", trace.t[: 8 * 288], trace.requests[: 8 * 288], trace.step_s)  # 3-day history: full by day 3

    def config(refit: str) -> Config:
        pool = PoolConfig(
            name="p", query="q", nomad=NomadGroupRef(job="j", group="g"), capacity_per_node=0.1, max=10**6
        )
        return Config(pools=[pool], predictor=PredictorSettings(refit_every=refit, history="3d"))

    every = run_backtest(part, config("0s"), "p").policies["forescale"]
    kept = run_backtest(part, config("6h"), "p").policies["forescale"]
    assert kept.node_hours == pytest.approx(every.node_hours, rel=0.01)  # 2490.2 and 2483.2 node-hours
    assert abs(kept.unserved_pct - every.unserved_pct) <= 0.05  # 0.437 % and 0.460 %
    assert kept.decisions != every.decisions  # the kept fit was used (else this test proves nothing)


def test_reversals_count_direction_changes_within_an_hour() -> None:
    from autoscaler.backtest.replay import reversals

    decisions = [(0.0, 10), (1200.0, 11), (2400.0, 10), (2400.0 + 3600.0, 11), (9000.0, 11), (9600.0, 12)]
    # 10→11 (up), 11→10 after 20 min (reversal), 10→11 exactly an hour later (not within: HPA's window is
    # strictly newer than an hour), 11→12 (same direction).
    assert reversals(decisions) == (4, 1)
    assert reversals([(0.0, 3)]) == (0, 0)


def guard_config(**pool_over: object) -> Config:
    cfg = tiny_config()
    pool = cfg.pools[0].model_copy(update={"guard": GuardSettings(interval=timedelta(seconds=60)), **pool_over})
    return cfg.model_copy(update={"pools": [pool], "daemon": DaemonSettings(interval=timedelta(seconds=360))})


def test_the_guard_scales_up_between_ticks_in_a_replay() -> None:
    """Ticks every 6 minutes, guard every minute: demand jumps from 25 to 45 req/s at 1180; the guard sees
    it at 1240 (the interval ending then), two minutes before the next tick, and its nodes are ready at 1360
    instead of 1480."""
    t = np.arange(400.0, 1601.0, 60.0)
    trace = Trace("jump", t, np.array([demand_at(x) if x < 1360 else 45.0 for x in t]) * 60, 60.0)
    peaks = {1000.0: 30.0, 1360.0: 50.0, 1720.0: 50.0}  # this script observes nothing: only the guard does
    r = replay(trace, guard_config(), "p", start=1000.0, predictor=Scripted(peaks))
    assert r.decisions == [(1000.0, 3), (1240.0, 5), (1360.0, 5)]
    assert [(m.t, m.count, m.kind) for m in r.marks] == [(1240.0, 5, "guard")]
    assert r.scale_actions == 1
    assert r.ready.tolist() == [3, 3, 3, 3, 3, 3, 5, 5, 5, 5, 5]
    slow = tiny_config().model_copy(update={"daemon": DaemonSettings(interval=timedelta(seconds=360))})
    off = replay(trace, slow, "p", start=1000.0, predictor=Scripted(peaks))
    assert off.marks == [] and off.decisions == [(1000.0, 3), (1360.0, 5)]
    assert off.ready.tolist() == [3, 3, 3, 3, 3, 3, 3, 3, 5, 5, 5]
    assert off.unserved_pct > r.unserved_pct


def test_plot_window_and_zoom_times() -> None:
    from autoscaler.backtest.plot import window_mask
    from autoscaler.backtest.session import _when

    t = np.array([0.0, 60.0, 120.0, 180.0])
    assert window_mask(t, 60.0, 180.0).tolist() == [False, True, True, False]
    assert window_mask(t, None, None).all()
    assert _when("1970-01-01T00:02:00Z", "--from") == 120.0
    assert _when("1970-01-02", "--to") == 86400.0  # a date is its UTC midnight
    with pytest.raises(BacktestError, match="--from: 'noon' is not a time"):
        _when("noon", "--from")


def test_backtest_interval_carries_the_pool_defaults_that_count_in_ticks(tmp_path: Path) -> None:
    """`backtest --interval 5m` replays a pool ticking every 5m: its unset scale-in window is three such ticks
    and its cooldown one (not the hour and 20 minutes of the 20m default); the file's other daemon settings
    and any window written in it are kept."""
    from autoscaler.backtest.session import _build_config

    cfg, name, origins = _build_config(None, None, 2.0, "2m", "5m", None)
    pool = cfg.pool(name)
    assert cfg.daemon.interval == timedelta(minutes=5) and origins["interval"] == "--interval"
    assert (pool.scale_in_window, pool.scale_in_cooldown) == (timedelta(minutes=15), timedelta(minutes=5))
    path = tmp_path / "forescale.yaml"
    path.write_text(
        "daemon: {interval: 20m, stop_grace: 9s}\n"
        "pools:\n"
        "  - {name: ocr, query: q, nomad: {job: j, group: g}, capacity_per_node: 3, max: 9, scale_in_window: 2h}\n"
    )
    cfg, name, _ = _build_config(path, None, None, None, "5m", None)
    assert cfg.daemon.stop_grace == timedelta(seconds=9)
    assert cfg.pool(name).scale_in_window == timedelta(hours=2)
    assert cfg.pool(name).scale_in_cooldown == timedelta(minutes=5)
