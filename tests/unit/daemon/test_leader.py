"""Leader election (autoscaler.nomad.lock, autoscaler.daemon.leader) against the fake Nomad's lock API.

One list is both the fake Nomad's clock and every lock's monotonic clock, so TTLs, lock delays and leases
are driven by the test: nothing sleeps. The process-level failover test (real SIGKILL) is in
tests/integration/faults/test_leader_election.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.daemon.leader import Leadership, LocalLock
from autoscaler.daemon.service import Daemon
from autoscaler.nomad.client import NomadClient
from autoscaler.nomad.lock import NomadLock
from autoscaler.policy.tick import run_tick
from tests.fakes.nomad import FakeNomad
from tests.helpers import FlatMetrics, http_get, make_config, make_deps, pool_dict

TTL = timedelta(seconds=10)
DELAY = timedelta(seconds=5)


@pytest.fixture
def clock(fake_nomad: FakeNomad) -> list[float]:
    t = [1000.0]
    fake_nomad.clock = lambda: t[0]
    return t


def nomad_lock(fake: FakeNomad, clock: list[float], name: str) -> NomadLock:
    client = NomadClient(NomadSettings(address=fake.address, retries=0, timeout="2s"), sleep=lambda _s: None)
    return NomadLock(client, "forescale/leader", TTL, DELAY, name=name, monotonic=lambda: clock[0])


def leadership(fake: FakeNomad, clock: list[float], name: str, tmp: Path) -> Leadership:
    return Leadership(
        [LocalLock(tmp / f"{name}.lock"), nomad_lock(fake, clock, name)], renew_every_s=3.0, retry_every_s=5.0
    )


def test_one_holder_at_a_time_and_the_holder_is_named(fake_nomad: FakeNomad, clock: list[float]) -> None:
    a, b = nomad_lock(fake_nomad, clock, "host-a:1"), nomad_lock(fake_nomad, clock, "host-b:2")
    assert a.acquire() and a.leading()
    assert b.acquire() is False and not b.leading()
    assert b.holder() == "host-a:1"
    assert (fake_nomad.variable("forescale/leader") or {})["Items"]["holder"] == "host-a:1"


def test_the_lease_is_one_ttl_from_each_renew(fake_nomad: FakeNomad, clock: list[float]) -> None:
    a = nomad_lock(fake_nomad, clock, "a")
    assert a.acquire()
    clock[0] += 9
    assert a.leading() and a.renew()
    clock[0] += 9
    assert a.leading()  # 18 s after acquire, 9 s after the renew
    clock[0] += 1.5
    assert not a.leading()  # no renew for a whole TTL: stop acting, whatever Nomad still thinks


def test_a_409_on_renew_stops_acting_at_once(fake_nomad: FakeNomad, clock: list[float]) -> None:
    """nomad-autoscaler keeps running after a 409 on renew (nomad-facts §8); forescale stands down at once."""
    a = nomad_lock(fake_nomad, clock, "a")
    assert a.acquire()
    with fake_nomad._cond:
        fake_nomad.variables[("default", "forescale/leader")]["Lock"]["ID"] = "someone-else"
    assert a.renew() is False
    assert not a.leading()


def test_a_transient_renew_failure_keeps_the_lease_until_it_runs_out(fake_nomad: FakeNomad, clock: list[float]) -> None:
    a = nomad_lock(fake_nomad, clock, "a")
    assert a.acquire()
    clock[0] += 4
    fake_nomad.fail_next(500, 10, body="rpc error: No cluster leader", path="/v1/var/forescale/leader")
    assert a.renew() is True and a.leading()  # 6 s of lease left
    clock[0] += 6.5
    assert a.renew() is False and not a.leading()


def test_release_lets_the_next_one_lead_at_once(fake_nomad: FakeNomad, clock: list[float]) -> None:
    a, b = nomad_lock(fake_nomad, clock, "a"), nomad_lock(fake_nomad, clock, "b")
    assert a.acquire()
    a.release()
    assert not a.leading() and b.acquire()


def test_failover_takes_two_ttls_and_the_lock_delay_and_never_two_leaders(
    fake_nomad: FakeNomad, clock: list[float], tmp_path: Path
) -> None:
    a = leadership(fake_nomad, clock, "a", tmp_path)
    b = leadership(fake_nomad, clock, "b", tmp_path)
    a.step()
    b.step()
    assert a.leading() and not b.leading() and b.status.holder == "a"
    clock[0] += 3
    a.step()  # a renews at t=3, then dies (no more steps)
    took_over_at = None
    for second in range(1, 40):
        clock[0] = 1003.0 + second
        b.step()
        assert not (a.leading() and b.leading()), f"two leaders at t+{second}s"
        if b.leading():
            took_over_at = second
            break
    # Nomad: the timer fires 2×TTL after the last renew, the lock goes LockDelay later (nomad-facts §7).
    assert took_over_at == 2 * 10 + 5


def test_the_local_flock_keeps_two_processes_on_one_host_apart(tmp_path: Path) -> None:
    first, second = LocalLock(tmp_path / "audit.jsonl.lock"), LocalLock(tmp_path / "audit.jsonl.lock")
    assert first.acquire() and second.acquire() is False
    first.release()
    assert second.acquire()
    second.release()


def test_a_daemon_stands_by_healthy_and_never_acts(fake_nomad: FakeNomad, clock: list[float], tmp_path: Path) -> None:
    other = nomad_lock(fake_nomad, clock, "the-leader:7")
    assert other.acquire()
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    lead = leadership(fake_nomad, clock, "me", tmp_path)
    daemon = Daemon(make_deps(cfg, metrics, may_act=lead.may_act), leadership=lead)
    daemon.server.start()
    daemon.scheduler.start(paused=True)
    try:
        assert daemon.leadership is not None
        daemon.leadership.step()
        assert daemon.tick() is None and metrics.calls == []  # standby: not even a metrics query
        status, body = http_get(f"http://127.0.0.1:{daemon.server.port}/healthz")
        assert status == 200 and '"role": "standby"' in body and "the-leader:7 leads" in body
        _, text = http_get(f"http://127.0.0.1:{daemon.server.port}/metrics")
        assert "forescale_leader 0.0" in text
        other.release()
        daemon.leadership.step()
        assert daemon.tick() is not None
        _, text = http_get(f"http://127.0.0.1:{daemon.server.port}/metrics")
        assert "forescale_leader 1.0" in text
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.stop()


def test_the_daemon_refuses_parts_without_its_leader_gate(
    fake_nomad: FakeNomad, clock: list[float], tmp_path: Path
) -> None:
    """The daemon never rewrites the tick's parts: with leader election they must carry its gate already."""
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    with pytest.raises(ValueError, match=r"may_act=leadership\.may_act"):
        Daemon(make_deps(cfg, FlatMetrics({})), leadership=leadership(fake_nomad, clock, "me", tmp_path))


def test_a_lock_lost_during_a_tick_stops_the_next_scale() -> None:
    cfg = make_config(pool_dict("ocr"), pool_dict("asr"))
    metrics = FlatMetrics({p.query: 300.0 for p in cfg.pools})
    leading = [True]

    class LosesAfterFirstFetch(FlatMetrics):
        def fetch(self, *args: Any) -> Any:
            out = metrics.fetch(*args)
            leading[0] = False  # e.g. a renew answered 409 while this pool was being decided
            return out

    deps = make_deps(cfg, LosesAfterFirstFetch({}), may_act=lambda: None if leading[0] else "not the leader")
    report = run_tick(deps)
    assert [o.status for o in report.outcomes] == ["deferred", "deferred"]
    assert all("not scaled: not the leader" in (o.error or "") for o in report.outcomes)
    assert [len(deps.target.nodes(p)) for p in ("ocr", "asr")] == [2, 2]


def test_a_new_leader_ticks_once_not_twice(fake_nomad: FakeNomad, clock: list[float], tmp_path: Path) -> None:
    """Winning the lock schedules a 'leader' tick; when the start's interval tick already ran as leader, that
    leader tick does nothing (one decision, one audit record, one Slack message), and after a lost and won
    lock it runs again."""
    cfg = make_config(pool_dict("ocr"), daemon={"listen_port": 0})
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    lead = leadership(fake_nomad, clock, "me", tmp_path)
    daemon = Daemon(make_deps(cfg, metrics, may_act=lead.may_act), leadership=lead)
    daemon.scheduler.start(paused=True)
    try:
        assert daemon.leadership is not None
        daemon.leadership.step()  # wins the lock: the leader tick is scheduled
        assert daemon.scheduler.get_job("leader-tick") is not None
        assert daemon.tick("interval") is not None  # the start's interval tick runs first, as leader
        assert daemon.tick("leader") is None  # nothing new to decide in this term
        daemon.leadership.release()
        daemon.deps.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        daemon.leadership.step()  # a new term, no tick in it yet
        assert daemon.tick("leader") is not None
    finally:
        daemon.scheduler.shutdown(wait=False)
        daemon.server.httpd.server_close()
