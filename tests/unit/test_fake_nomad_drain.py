"""The fake Nomad's node writes — drain and its drainer, eligibility, purge — held to Nomad's source (nomad-facts
§6: flat DrainStrategy, LastDrain kept by updateNodeDrainImpl, 500 "node not found", zero indexes on a no-op
eligibility change), and forescale's Nomad node directory against them."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from autoscaler.nodes.directory import NomadNodeDirectory
from autoscaler.nomad.client import NomadClient
from tests.fakes.nomad import FakeNomad
from tests.helpers import make_config, pool_dict

JOB, GROUP = "ml-ocr", "workers"
NS = 10**9


def post(fake: FakeNomad, path: str, body: Any = None, **kw: Any) -> requests.Response:
    if body is None:
        return requests.post(fake.address + path, timeout=5, **kw)
    return requests.post(fake.address + path, json=body, timeout=5, **kw)


def get(fake: FakeNomad, path: str) -> Any:
    resp = requests.get(fake.address + path, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()


def fleet(fake: FakeNomad, nodes: int, count: int) -> list[dict[str, Any]]:
    fake.auto_nodes = False
    fake.wall_clock = lambda: 1_767_600_000.0  # 2026-01-05T08:00:00Z
    out = [fake.add_node(f"gpu-{i}", node_pool="gpu", instance_id=f"i-{i}") for i in range(nodes)]
    fake.add_job(JOB, groups={GROUP: count}, gpus=1, distinct_hosts=True, node_pool="gpu")
    return out


def busy(fake: FakeNomad) -> list[str]:
    return sorted(a["NodeID"] for a in fake.allocations(JOB) if a["DesiredStatus"] == "run")


def drain(fake: FakeNomad, node_id: str, deadline_s: float = 600, **extra: Any) -> requests.Response:
    body = {"DrainSpec": {"Deadline": int(deadline_s * NS), "IgnoreSystemJobs": False}, "MarkEligible": False,
            "Meta": {"drained_by": "forescale"}, **extra}  # fmt: skip
    return post(fake, f"/v1/node/{node_id}/drain", body)


def assert_text(resp: requests.Response, status: int, text: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text == text


def test_draining_an_empty_node_completes_at_once_and_leaves_it_ineligible(fake_nomad: FakeNomad) -> None:
    nodes = fleet(fake_nomad, 2, 1)
    empty = next(n["ID"] for n in nodes if n["ID"] not in busy(fake_nomad))
    resp = drain(fake_nomad, empty)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"NodeModifyIndex", "EvalIDs", "EvalCreateIndex", "Index"}
    assert body["EvalIDs"] is None and body["EvalCreateIndex"] == 0 and body["Index"] >= body["NodeModifyIndex"]
    node = get(fake_nomad, f"/v1/node/{empty}")
    assert node["DrainStrategy"] is None and node["Drain"] is False
    assert node["SchedulingEligibility"] == "ineligible"
    last = node["LastDrain"]
    assert last["Status"] == "complete" and last["Meta"] == {"drained_by": "forescale"}
    assert last["StartedAt"] == "2026-01-05T08:00:00Z"
    stub = next(s for s in get(fake_nomad, "/v1/nodes") if s["ID"] == empty)
    assert stub["Drain"] is False and stub["LastDrain"]["Status"] == "complete"


def test_a_busy_node_drains_over_time_and_its_allocation_moves(fake_nomad: FakeNomad) -> None:
    fleet(fake_nomad, 2, 1)
    fake_nomad.new_alloc_status = "running"
    (victim,) = busy(fake_nomad)
    fake_nomad.drain_stop_after = 120.0
    now = fake_nomad.wall_clock()
    drain(fake_nomad, victim, deadline_s=600)
    node = get(fake_nomad, f"/v1/node/{victim}")
    strategy = node["DrainStrategy"]
    assert set(strategy) == {"Deadline", "IgnoreSystemJobs", "ForceDeadline", "StartedAt"}  # flat, no DrainSpec
    assert strategy["Deadline"] == 600 * NS and strategy["ForceDeadline"] == "2026-01-05T08:10:00Z"
    assert node["Drain"] is True and node["LastDrain"]["Status"] == "draining"
    assert busy(fake_nomad) == [victim]  # still stopping
    fake_nomad.wall_clock = lambda: now + 121
    node = get(fake_nomad, f"/v1/node/{victim}")
    assert node["DrainStrategy"] is None and node["LastDrain"]["Status"] == "complete"
    old = next(a for a in fake_nomad.allocations(JOB) if a["NodeID"] == victim)
    assert old["ClientStatus"] == "complete" and old["DesiredTransition"]["Migrate"] is True
    (moved,) = busy(fake_nomad)
    assert moved != victim  # the replacement runs on the other node
    assert get(fake_nomad, f"/v1/node/{victim}/allocations")[0]["ClientStatus"] == "complete"


def test_the_deadline_completes_a_drain_while_a_stuck_allocation_still_runs(fake_nomad: FakeNomad) -> None:
    fleet(fake_nomad, 1, 1)
    (victim,) = busy(fake_nomad)
    stuck = fake_nomad.allocations(JOB)[0]["ID"]
    fake_nomad.stuck_allocs.add(stuck)
    now = fake_nomad.wall_clock()
    drain(fake_nomad, victim, deadline_s=300)
    assert get(fake_nomad, f"/v1/node/{victim}")["LastDrain"]["Status"] == "draining"  # stuck: never stops
    fake_nomad.wall_clock = lambda: now + 301
    node = get(fake_nomad, f"/v1/node/{victim}")
    assert node["DrainStrategy"] is None and node["LastDrain"]["Status"] == "complete"
    (alloc,) = get(fake_nomad, f"/v1/node/{victim}/allocations")
    assert alloc["DesiredStatus"] == "stop" and alloc["ClientStatus"] in ("pending", "running")


def test_cancel_while_draining_and_after_completion(fake_nomad: FakeNomad) -> None:
    fleet(fake_nomad, 2, 1)
    (victim,) = busy(fake_nomad)
    fake_nomad.drain_stop_after = 1000.0
    drain(fake_nomad, victim)
    resp = post(fake_nomad, f"/v1/node/{victim}/drain", {"DrainSpec": None, "MarkEligible": True, "Meta": None})
    assert resp.status_code == 200
    node = get(fake_nomad, f"/v1/node/{victim}")
    assert node["SchedulingEligibility"] == "eligible" and node["LastDrain"]["Status"] == "canceled"
    other = next(n["ID"] for n in fake_nomad.node_list() if n["ID"] != victim)
    fake_nomad.drain_stop_after = 0.0
    drain(fake_nomad, other)  # empty: complete at once
    post(fake_nomad, f"/v1/node/{other}/drain", {"DrainSpec": None, "MarkEligible": True, "Meta": {"x": "y"}})
    node = get(fake_nomad, f"/v1/node/{other}")
    # drainNoop: neither before nor after drains, so LastDrain stays as it was; only eligibility changes.
    assert node["SchedulingEligibility"] == "eligible"
    assert node["LastDrain"]["Status"] == "complete" and node["LastDrain"]["Meta"] == {"drained_by": "forescale"}


def test_eligibility_rules_and_errors(fake_nomad: FakeNomad) -> None:
    (node,) = fleet(fake_nomad, 1, 0)
    path = f"/v1/node/{node['ID']}/eligibility"
    same = post(fake_nomad, path, {"Eligibility": "eligible"})
    assert same.status_code == 200 and same.headers["X-Nomad-Index"] == "0"
    assert same.json() == {"NodeModifyIndex": 0, "EvalIDs": None, "EvalCreateIndex": 0, "Index": 0}
    off = post(fake_nomad, path, {"Eligibility": "ineligible"})
    assert off.status_code == 200 and off.json()["NodeModifyIndex"] > 0
    assert_text(post(fake_nomad, path, {"Eligibility": "maybe"}), 500, 'invalid scheduling eligibility "maybe"')
    assert_text(post(fake_nomad, "/v1/node/nope/eligibility", {"Eligibility": "eligible"}), 500, "node not found")
    fake_nomad.drain_stop_after = 1000.0
    fake_nomad.add_job("other", groups={"g": 1}, node_pool="gpu")
    post(fake_nomad, path, {"Eligibility": "eligible"})
    drain(fake_nomad, node["ID"])
    assert_text(
        post(fake_nomad, path, {"Eligibility": "eligible"}),
        500,
        "can not set node's scheduling eligibility to eligible while it is draining",
    )


def test_purge_and_the_errors_of_unknown_nodes(fake_nomad: FakeNomad) -> None:
    fleet(fake_nomad, 2, 1)
    fake_nomad.new_alloc_status = "running"
    (victim,) = busy(fake_nomad)
    resp = post(fake_nomad, f"/v1/node/{victim}/purge")
    assert resp.status_code == 200
    body = resp.json()
    assert body["HeartbeatTTL"] == 0 and body["NextToken"] == "" and body["EvalIDs"]
    assert fake_nomad.node(victim) is None
    assert busy(fake_nomad) and busy(fake_nomad)[0] != victim  # lost and placed on the other node
    assert_text(post(fake_nomad, "/v1/node/nope/purge"), 500, "node not found")
    assert_text(drain(fake_nomad, "nope"), 500, "node not found")
    assert_text(post(fake_nomad, f"/v1/node/{busy(fake_nomad)[0]}/drain"), 400, "Request body is empty")


def test_node_writes_need_node_write(fake_nomad: FakeNomad) -> None:
    (node,) = fleet(fake_nomad, 1, 0)
    fake_nomad.enable_acl("root")
    fake_nomad.add_token("reader", node="read")
    resp = requests.post(
        fake_nomad.address + f"/v1/node/{node['ID']}/drain", json={"DrainSpec": None}, timeout=5,
        headers={"X-Nomad-Token": "reader"},
    )  # fmt: skip
    assert_text(resp, 403, "Permission denied")


@pytest.mark.parametrize("purge", [False, True])
def test_the_directory_reads_pool_nodes_and_drains_through_the_client(
    fake_nomad: FakeNomad, nomad_client: NomadClient, purge: bool
) -> None:
    fleet(fake_nomad, 3, 2)
    fake_nomad.new_alloc_status = "running"
    fake_nomad.add_node("cpu-0", node_pool="default", instance_id="i-cpu")
    cfg = make_config(pool_dict("ocr", nodes={"provider": "aws_asg", "aws": {"asg_name": "x"}, "node_pool": "gpu"}))
    pool = cfg.pool("ocr")
    directory = NomadNodeDirectory(nomad_client)
    nodes = directory.pool_nodes(pool)
    attr = "unique.platform.aws.instance-id"
    assert sorted(n.attributes.get(attr, "") for n in nodes) == ["i-0", "i-1", "i-2"]  # not the cpu node
    assert sum(len(n.live_allocations()) for n in nodes) == 2
    empty = next(n for n in nodes if not n.allocations)
    directory.drain(empty.id, 300.0, False, {"drained_by": "forescale", "forescale_pool": "ocr"})
    after = next(n for n in directory.pool_nodes(pool) if n.id == empty.id)
    assert after.drained_by_us and after.last_drain_status == "complete" and not after.eligible
    if purge:
        directory.purge(empty.id)
        assert empty.id not in {n.id for n in directory.pool_nodes(pool)}
    else:
        directory.cancel_drain(empty.id, {"drained_by": "forescale", "forescale_reclaimed": "true"})
        back = next(n for n in directory.pool_nodes(pool) if n.id == empty.id)
        assert back.eligible
