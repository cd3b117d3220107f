"""The fake Nomad's strict mode against Nomad's source (docs/nomad-facts.md §11): stops take shutdown_delay +
kill_timeout, clients start and turn healthy, drains move migrate.max_parallel allocations at a time and wait for
healthy replacements, missed heartbeats take a node disconnected or down, and bad node-allocation answers."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes.nomad import FakeNomad, parse_jobspec

JOB, GROUP = "ml-ocr", "workers"
NS = 10**9
T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def world(fake: FakeNomad, nodes: int = 2, *, cpu_shares: int | None = None) -> tuple[Clock, list[str]]:
    clock = Clock()
    fake.wall_clock = clock
    fake.auto_nodes = False
    kw: dict[str, Any] = {"node_pool": "gpu"}
    if cpu_shares is not None:
        kw["cpu_shares"] = cpu_shares
    ids = [fake.add_node(f"gpu-{i}", instance_id=f"i-{i}", **kw)["ID"] for i in range(nodes)]
    return clock, ids


def get(fake: FakeNomad, path: str) -> Any:
    resp = requests.get(fake.address + path, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def post(fake: FakeNomad, path: str, body: Any) -> requests.Response:
    return requests.post(fake.address + path, json=body, timeout=5)


def scale(fake: FakeNomad, count: int) -> None:
    resp = post(fake, f"/v1/job/{JOB}/scale", {"Count": count, "Target": {"Group": GROUP}})
    assert resp.status_code == 200, resp.text


def drain(fake: FakeNomad, node_id: str, deadline_s: float = 3600) -> None:
    body = {"DrainSpec": {"Deadline": int(deadline_s * NS), "IgnoreSystemJobs": False}, "MarkEligible": False}
    resp = post(fake, f"/v1/node/{node_id}/drain", body)
    assert resp.status_code == 200, resp.text


def on(fake: FakeNomad, node_id: str) -> list[dict[str, Any]]:
    return sorted(get(fake, f"/v1/node/{node_id}/allocations"), key=lambda a: a["Name"])


def migrating(fake: FakeNomad, node_id: str) -> int:
    return sum(1 for a in on(fake, node_id) if a["DesiredTransition"].get("Migrate"))


# ------------------------------------------------------------------------------------------- stopping


def test_a_stopped_allocation_runs_on_for_shutdown_delay_plus_kill_timeout(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad)
    strict_nomad.add_job(
        JOB, groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu", shutdown_delay=5, kill_timeout=20
    )
    scale(strict_nomad, 1)
    (stopping,) = [a for a in strict_nomad.allocations(JOB) if a["DesiredStatus"] == "stop"]
    assert stopping["ClientStatus"] == "running"  # still working: the count dropped, the client has not
    assert stopping["DesiredDescription"] == "alloc not needed due to job update"
    assert strict_nomad.stopping_until(stopping["ID"]) == T0 + 25
    clock.advance(24.9)
    assert on(strict_nomad, stopping["NodeID"])[0]["ClientStatus"] == "running"
    clock.advance(0.1)
    assert on(strict_nomad, stopping["NodeID"])[0]["ClientStatus"] == "complete"


def test_a_second_stop_does_not_restart_the_kill_timeline(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad)
    strict_nomad.add_job(JOB, groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu", kill_timeout=20)
    scale(strict_nomad, 1)
    (stopping,) = [a for a in strict_nomad.allocations(JOB) if a["DesiredStatus"] == "stop"]
    clock.advance(10)
    drain(strict_nomad, stopping["NodeID"], deadline_s=-1)  # forced: everything on the node told to stop again
    assert strict_nomad.stopping_until(stopping["ID"]) == T0 + 20
    clock.advance(10)
    assert on(strict_nomad, stopping["NodeID"])[0]["ClientStatus"] == "complete"


def test_the_kill_timeout_is_capped_by_the_client_and_defaults_to_5s(strict_nomad: FakeNomad) -> None:
    world(strict_nomad)
    strict_nomad.add_job(JOB, groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu", kill_timeout=600)
    strict_nomad.add_job("exporter", groups={"m": 2}, distinct_hosts=True, node_pool="gpu")
    scale(strict_nomad, 1)
    (capped,) = [a for a in strict_nomad.allocations(JOB) if a["DesiredStatus"] == "stop"]
    assert strict_nomad.stopping_until(capped["ID"]) == T0 + 30  # max_kill_timeout 30 s
    resp = post(strict_nomad, "/v1/job/exporter/scale", {"Count": 0, "Target": {"Group": "m"}})
    assert resp.status_code == 200
    stops = [strict_nomad.stopping_until(a["ID"]) for a in strict_nomad.allocations("exporter")]
    assert stops == [T0 + 5, T0 + 5]  # the sample task's KillTimeout is Nomad's default 5 s


def test_default_mode_still_stops_at_once(fake_nomad: FakeNomad) -> None:
    world(fake_nomad)
    fake_nomad.add_job(JOB, groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu", kill_timeout=20)
    scale(fake_nomad, 1)
    (stopped,) = [a for a in fake_nomad.allocations(JOB) if a["DesiredStatus"] == "stop"]
    assert stopped["ClientStatus"] == "complete"


# ------------------------------------------------------------------------------------------- clients


def test_allocations_start_then_become_healthy_after_min_healthy_time(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad)
    strict_nomad.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu", min_healthy_time=15)
    (seeded,) = strict_nomad.allocations(JOB)
    assert seeded["DeploymentStatus"]["Healthy"] is True  # it was running before the story
    strict_nomad.alloc_start_s = 30
    scale(strict_nomad, 2)
    fresh = next(a for a in strict_nomad.allocations(JOB) if a["ID"] != seeded["ID"])
    assert fresh["ClientStatus"] == "pending" and fresh["DeploymentStatus"] is None
    clock.advance(30)
    strict_nomad.progress()
    fresh = next(a for a in strict_nomad.allocations(JOB) if a["ID"] == fresh["ID"])
    assert fresh["ClientStatus"] == "running" and fresh["DeploymentStatus"] is None
    clock.advance(15)
    strict_nomad.progress()
    fresh = next(a for a in strict_nomad.allocations(JOB) if a["ID"] == fresh["ID"])
    assert fresh["DeploymentStatus"]["Healthy"] is True and fresh["DeploymentStatus"]["Timestamp"] == (
        "2026-01-05T08:00:45Z"
    )


# ------------------------------------------------------------------------------------------- drains


def pack(fake: FakeNomad, count: int, **job: Any) -> tuple[Clock, str, str]:
    """``count`` allocations of one group packed on node A (8 cores of 250 MHz each); B is empty."""
    clock, (a, b) = world(fake, 2)
    fake.set_node_eligibility(b, False)
    fake.add_job(JOB, groups={GROUP: count}, node_pool="gpu", **job)
    fake.set_node_eligibility(b, True)
    assert {x["NodeID"] for x in fake.allocations(JOB)} == {a}
    return clock, a, b


def test_a_drain_moves_max_parallel_allocations_at_a_time_and_waits_for_healthy_ones(strict_nomad: FakeNomad) -> None:
    clock, a, b = pack(strict_nomad, 3, migrate_max_parallel=1, min_healthy_time=10)
    drain(strict_nomad, a)
    assert migrating(strict_nomad, a) == 1  # healthy 3 − (count 3 − max_parallel 1)
    clock.advance(9.9)
    assert migrating(strict_nomad, a) == 1  # the replacement is running on B but not healthy yet
    assert [x["ClientStatus"] for x in on(strict_nomad, b)] == ["running"]
    clock.advance(0.1)
    assert migrating(strict_nomad, a) == 2
    clock.advance(10)
    assert migrating(strict_nomad, a) == 3
    node = get(strict_nomad, f"/v1/node/{a}")
    assert node["DrainStrategy"] is not None  # the third is still in its 5 s kill timeline
    clock.advance(5)
    node = get(strict_nomad, f"/v1/node/{a}")
    assert node["DrainStrategy"] is None and node["LastDrain"]["Status"] == "complete"
    assert node["LastDrain"]["UpdatedAt"] == "2026-01-05T08:00:25Z"
    assert [x["ClientStatus"] for x in on(strict_nomad, a)] == ["complete"] * 3
    assert len(on(strict_nomad, b)) == 3


def test_max_parallel_two_moves_two_at_once(strict_nomad: FakeNomad) -> None:
    clock, a, _b = pack(strict_nomad, 4, migrate_max_parallel=2)
    drain(strict_nomad, a)
    assert migrating(strict_nomad, a) == 2
    clock.advance(10)
    assert migrating(strict_nomad, a) == 4


def test_a_drain_whose_replacement_cannot_be_placed_waits_until_its_deadline(strict_nomad: FakeNomad) -> None:
    clock, (a,) = world(strict_nomad, 1)
    strict_nomad.add_job(JOB, groups={GROUP: 2}, node_pool="gpu")
    drain(strict_nomad, a, deadline_s=600)
    clock.advance(599)
    assert migrating(strict_nomad, a) == 1 and strict_nomad.queued(JOB, GROUP) == 1  # nowhere to go
    assert get(strict_nomad, f"/v1/node/{a}")["LastDrain"]["Status"] == "draining"
    clock.advance(1)
    node = get(strict_nomad, f"/v1/node/{a}")
    assert node["DrainStrategy"] is None and node["LastDrain"]["Status"] == "complete"  # ForceDeadline
    assert migrating(strict_nomad, a) == 2
    # the first stopped long ago; the one forced at the deadline is still in its kill timeline
    assert sorted(x["ClientStatus"] for x in on(strict_nomad, a)) == ["complete", "running"]


def test_default_mode_drains_all_at_once_after_drain_stop_after(fake_nomad: FakeNomad) -> None:
    clock, a, _b = pack(fake_nomad, 3)
    drain(fake_nomad, a)
    assert migrating(fake_nomad, a) == 3
    assert get(fake_nomad, f"/v1/node/{a}")["LastDrain"]["Status"] == "complete"
    assert clock.t == T0


# ------------------------------------------------------------------------------------------- heartbeats


def test_a_node_that_stops_heartbeating_goes_down_after_ttl_and_grace(strict_nomad: FakeNomad) -> None:
    clock, (a, b) = world(strict_nomad, 2)
    strict_nomad.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu")
    (alloc,) = strict_nomad.allocations(JOB)
    victim = alloc["NodeID"]
    strict_nomad.stop_heartbeats(victim)
    clock.advance(29.9)
    assert get(strict_nomad, f"/v1/node/{victim}")["Status"] == "ready"
    clock.advance(0.1)
    node = get(strict_nomad, f"/v1/node/{victim}")
    assert node["Status"] == "down" and node["Events"][-1]["Message"] == "Node heartbeat missed"
    (lost,) = on(strict_nomad, victim)
    assert (lost["ClientStatus"], lost["DesiredStatus"]) == ("lost", "stop")
    assert lost["ClientDescription"] == "alloc is lost since its node is down"
    other = b if victim == a else a
    assert [x["ClientStatus"] for x in on(strict_nomad, other)] == ["running"]  # replaced (and started)


def test_a_node_with_lost_after_allocations_goes_disconnected_and_they_turn_unknown(strict_nomad: FakeNomad) -> None:
    clock, (a, b) = world(strict_nomad, 2)
    strict_nomad.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu", lost_after=300)
    (alloc,) = strict_nomad.allocations(JOB)
    victim, other = alloc["NodeID"], (b if alloc["NodeID"] == a else a)
    strict_nomad.stop_heartbeats(victim)
    clock.advance(30)
    assert get(strict_nomad, f"/v1/node/{victim}")["Status"] == "disconnected"
    (unknown,) = on(strict_nomad, victim)
    assert (unknown["ClientStatus"], unknown["DesiredStatus"]) == ("unknown", "run")  # it may still be running
    assert unknown["ClientDescription"] == "alloc is unknown since its node is disconnected"
    assert [x["ClientStatus"] for x in on(strict_nomad, other)] == ["running"]  # disconnect.replace defaults true
    clock.advance(299)
    assert on(strict_nomad, victim)[0]["ClientStatus"] == "unknown"
    clock.advance(1)  # lost_after passed: lost, and the node goes down at that heartbeat check
    (lost,) = on(strict_nomad, victim)
    assert (lost["ClientStatus"], lost["DesiredStatus"]) == ("lost", "stop")
    assert get(strict_nomad, f"/v1/node/{victim}")["Status"] == "down"
    assert len([x for x in strict_nomad.allocations(JOB) if x["DesiredStatus"] == "run"]) == 1  # no second copy


def test_replace_false_keeps_the_unknown_allocation_unreplaced(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad, 2)
    strict_nomad.add_job(
        JOB,
        groups={GROUP: 1},
        gpus=1,
        distinct_hosts=True,
        node_pool="gpu",
        lost_after=300,
        replace_on_disconnect=False,
    )
    (alloc,) = strict_nomad.allocations(JOB)
    strict_nomad.stop_heartbeats(alloc["NodeID"])
    clock.advance(30)
    strict_nomad.progress()
    assert [x["ClientStatus"] for x in strict_nomad.allocations(JOB)] == ["unknown"]


def test_resumed_heartbeats_reconnect_the_unknown_allocation(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad, 2)
    strict_nomad.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu", lost_after=300)
    (alloc,) = strict_nomad.allocations(JOB)
    strict_nomad.stop_heartbeats(alloc["NodeID"])
    clock.advance(60)
    strict_nomad.progress()
    strict_nomad.resume_heartbeats(alloc["NodeID"])
    assert get(strict_nomad, f"/v1/node/{alloc['NodeID']}")["Status"] == "ready"
    back = {x["ID"]: (x["ClientStatus"], x["DesiredStatus"]) for x in strict_nomad.allocations(JOB)}
    assert back.pop(alloc["ID"]) == ("running", "run")
    assert list(back.values()) == [("running", "stop")]  # the replacement is told to stop


def test_max_client_disconnect_is_ignored_as_nomad_1_10_does(strict_nomad: FakeNomad) -> None:
    clock, _ = world(strict_nomad, 2)
    job = strict_nomad.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu")
    job["TaskGroups"][0]["MaxClientDisconnect"] = 600 * NS
    strict_nomad.register(job)
    (alloc,) = [x for x in strict_nomad.allocations(JOB) if x["DesiredStatus"] == "run"]
    strict_nomad.stop_heartbeats(alloc["NodeID"])
    clock.advance(30)
    assert get(strict_nomad, f"/v1/node/{alloc['NodeID']}")["Status"] == "down"


def test_without_strict_stopping_heartbeats_is_an_instant_down(fake_nomad: FakeNomad) -> None:
    _clock, (a, _b) = world(fake_nomad, 2)
    fake_nomad.stop_heartbeats(a)
    assert get(fake_nomad, f"/v1/node/{a}")["Status"] == "down" and fake_nomad.heartbeats_stopped(a)


def test_the_jobspec_parser_reads_the_disconnect_block() -> None:
    job = parse_jobspec(
        'job "j" {\n group "g" {\n  disconnect {\n   lost_after = "5m"\n   replace = false\n  }\n'
        '  task "t" {\n   driver = "raw_exec"\n  }\n }\n}\n'
    )
    assert job["TaskGroups"][0]["Disconnect"] == {"LostAfter": 300 * NS, "Replace": False}


# ------------------------------------------------------------------------------------------- allocation faults


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("null", lambda r: r.json() is None),
        ("object", lambda r: r.json() == {}),
        ("no_client_status", lambda r: all("ClientStatus" not in a for a in r.json()) and r.json()),
        ("unknown", lambda r: [a["ClientStatus"] for a in r.json()] == ["unknown"]),
        ("500", lambda r: r.status_code == 500 and r.text == "rpc error: No cluster leader"),
    ],
)
def test_node_allocations_answers_can_be_broken(fake_nomad: FakeNomad, kind: str, check: Any) -> None:
    _clock, (a, b) = world(fake_nomad, 2)
    fake_nomad.add_job(JOB, groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu")
    fake_nomad.fail_node_allocations(kind, node_id=a, times=2)
    for _ in range(2):
        resp = requests.get(f"{fake_nomad.address}/v1/node/{a}/allocations", timeout=5)
        assert check(resp), resp.text
        other = requests.get(f"{fake_nomad.address}/v1/node/{b}/allocations", timeout=5).json()
        assert [x["ClientStatus"] for x in other] == ["running"]  # only the named node
    good = requests.get(f"{fake_nomad.address}/v1/node/{a}/allocations", timeout=5).json()
    assert [x["ClientStatus"] for x in good] == ["running"]  # times=2 used up
    fake_nomad.fail_node_allocations(kind)
    assert check(requests.get(f"{fake_nomad.address}/v1/node/{b}/allocations", timeout=5))
    fake_nomad.clear_node_allocation_faults()
    assert requests.get(f"{fake_nomad.address}/v1/node/{b}/allocations", timeout=5).status_code == 200
    with pytest.raises(ValueError):
        fake_nomad.fail_node_allocations("gremlins")
