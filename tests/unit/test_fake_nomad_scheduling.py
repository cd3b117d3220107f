"""The fake Nomad as strict as Nomad (issue 10 §4): nodes, placement, queued work, blocked evaluations, the
order of Job.Scale's checks, scale status, plan, and Variables' namespace/path/size rules.

Expected bodies come from ``shared/nomad-api`` samples and the derived fixtures in tests/fakes/nomad_samples
(sources in its README); behaviour from docs/nomad-facts.md (cited as facts §N).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes.nomad import TERMINAL_CLIENT, FakeNomad, _find_group, sample
from tests.fakes.nomad_nodes import Usage, group_resources

JOB, GROUP = "ml-ocr", "workers"
T4_16GIB = {"LTarget": "${device.attr.memory}", "RTarget": "16384 MiB", "Operand": ">="}


def get(fake: FakeNomad, path: str, **kw: Any) -> requests.Response:
    return requests.get(fake.address + path, timeout=5, **kw)


def post(fake: FakeNomad, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(fake.address + path, json=body, timeout=5, **kw)


def scale(fake: FakeNomad, count: int | None, **extra: Any) -> requests.Response:
    body: dict[str, Any] = {"Target": {"Group": GROUP}, "Error": False, **extra}
    if count is not None:
        body["Count"] = count
    return post(fake, f"/v1/job/{JOB}/scale", body)


def gpu_job(fake: FakeNomad, count: int, **kw: Any) -> dict[str, Any]:
    kw.setdefault("node_pool", "gpu")
    return fake.add_job(JOB, groups={GROUP: count}, gpus=1, distinct_hosts=True, **kw)


def finite_fleet(fake: FakeNomad, n: int, **kw: Any) -> list[dict[str, Any]]:
    fake.auto_nodes = False
    kw.setdefault("node_pool", "gpu")
    return [fake.add_node(f"gpu-{i}", **kw) for i in range(n)]


def summary(fake: FakeNomad) -> dict[str, int]:
    return get(fake, f"/v1/job/{JOB}/summary").json()["Summary"][GROUP]  # type: ignore[no-any-return]


def assert_text(resp: requests.Response, status: int, text: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert text in resp.text, resp.text


# ---------------------------------------------------------------- placement against a finite fleet


def test_allocations_queue_when_nodes_run_out_with_a_blocked_eval(fake_nomad: FakeNomad) -> None:
    finite_fleet(fake_nomad, 2)
    gpu_job(fake_nomad, 3)
    assert fake_nomad.live_count(JOB, GROUP) == 2
    got = summary(fake_nomad)
    assert got["Queued"] == 1 and got["Running"] == 2
    body = get(fake_nomad, f"/v1/job/{JOB}/summary").json()
    assert set(body) == set(sample("job-summary-queued.derived.response"))
    assert set(got) == set(sample("job-summary-queued.derived.response")["Summary"]["workers"])

    evals = get(fake_nomad, f"/v1/job/{JOB}/evaluations").json()
    (placing,) = [e for e in evals if e["TriggeredBy"] == "job-register"]
    (blocked,) = [e for e in evals if e["Status"] == "blocked"]
    assert set(placing) == set(sample("evaluation-placement-failed.derived.response"))
    assert placing["Status"] == "complete" and placing["QueuedAllocations"] == {GROUP: 1}
    assert placing["BlockedEval"] == blocked["ID"]
    metric = placing["FailedTGAllocs"][GROUP]
    assert set(metric) == set(sample("evaluation-placement-failed.derived.response")["FailedTGAllocs"]["workers"])
    assert metric["NodesInPool"] == 2 and metric["NodesEvaluated"] == 2 and metric["NodePool"] == "gpu"
    assert metric["ConstraintFiltered"] == {"distinct_hosts": 2} and metric["CoalescedFailures"] == 0
    assert (blocked["TriggeredBy"], blocked["StatusDescription"]) == (
        "queued-allocs",
        "created to place remaining allocations",
    )
    assert blocked["PreviousEval"] == placing["ID"]
    assert get(fake_nomad, f"/v1/evaluation/{blocked['ID']}").json()["Status"] == "blocked"

    # A node registers: the blocked evaluation runs again, places the allocation and completes.
    fake_nomad.add_node("gpu-late", node_pool="gpu")
    assert fake_nomad.live_count(JOB, GROUP) == 3 and summary(fake_nomad)["Queued"] == 0
    assert get(fake_nomad, f"/v1/evaluation/{blocked['ID']}").json()["Status"] == "complete"
    nodes = {a["NodeName"] for a in fake_nomad.allocations(JOB)}
    assert nodes == {"gpu-0", "gpu-1", "gpu-late"}


def test_at_most_one_blocked_eval_and_queued_follows_the_count(fake_nomad: FakeNomad) -> None:
    finite_fleet(fake_nomad, 1)
    gpu_job(fake_nomad, 2)
    assert scale(fake_nomad, 4).status_code == 200
    assert summary(fake_nomad)["Queued"] == 3
    evals = fake_nomad.evaluations(JOB)
    assert [e["Status"] for e in evals if e["TriggeredBy"] == "queued-allocs"] == ["canceled", "blocked"]
    scaling = next(e for e in evals if e["TriggeredBy"] == "job-scaling")
    assert scaling["FailedTGAllocs"][GROUP]["CoalescedFailures"] == 2  # 3 unplaced: the first + 2 coalesced
    assert scale(fake_nomad, 1).status_code == 200  # nothing left to place: Queued 0, the blocked eval canceled
    assert summary(fake_nomad)["Queued"] == 0
    statuses = {e["Status"] for e in fake_nomad.evaluations(JOB) if e["TriggeredBy"] == "queued-allocs"}
    assert statuses == {"canceled"}


def test_only_ready_eligible_nodes_of_the_pool_and_datacenters_are_used(fake_nomad: FakeNomad) -> None:
    fake_nomad.auto_nodes = False
    other_pool = fake_nomad.add_node("default-pool", node_pool="default")
    other_dc = fake_nomad.add_node("other-dc", node_pool="gpu", datacenter="dc9")
    booting = fake_nomad.add_node("booting", node_pool="gpu", status="initializing")
    ineligible = fake_nomad.add_node("ineligible", node_pool="gpu", eligibility="ineligible")
    no_gpu = fake_nomad.add_node("no-gpu", node_pool="gpu", gpus=0)
    gpu_job(fake_nomad, 2)
    assert fake_nomad.live_count(JOB, GROUP) == 0 and summary(fake_nomad)["Queued"] == 2
    metric = fake_nomad.evaluations(JOB)[0]["FailedTGAllocs"][GROUP]
    assert metric["NodesInPool"] == 4  # the default-pool node is not even in the pool
    assert metric["NodesEvaluated"] == 1 and metric["ConstraintFiltered"] == {"missing devices": 1}
    fake_nomad.set_node_status(booting["ID"], "ready")
    assert fake_nomad.live_count(JOB, GROUP) == 1 and summary(fake_nomad)["Queued"] == 1
    fake_nomad.set_node_eligibility(ineligible["ID"], True)
    assert fake_nomad.live_count(JOB, GROUP) == 2 and summary(fake_nomad)["Queued"] == 0
    used = {a["NodeID"] for a in fake_nomad.allocations(JOB)}
    assert used == {booting["ID"], ineligible["ID"]}
    assert not used & {other_pool["ID"], other_dc["ID"], no_gpu["ID"]}


def test_a_node_going_down_loses_its_allocation_and_it_is_replaced_or_queued(fake_nomad: FakeNomad) -> None:
    nodes = finite_fleet(fake_nomad, 2)
    gpu_job(fake_nomad, 2)
    fake_nomad.set_node_status(nodes[0]["ID"], "down")
    lost = [a for a in fake_nomad.allocations(JOB) if a["ClientStatus"] == "lost"]
    assert len(lost) == 1 and lost[0]["DesiredStatus"] == "stop"
    assert fake_nomad.live_count(JOB, GROUP) == 1 and summary(fake_nomad)["Queued"] == 1
    assert summary(fake_nomad)["Lost"] == 1
    fake_nomad.add_node("replacement", node_pool="gpu")
    assert fake_nomad.live_count(JOB, GROUP) == 2 and summary(fake_nomad)["Queued"] == 0


def test_gpu_memory_constraint_against_a_t4s_reported_memory(fake_nomad: FakeNomad) -> None:
    # auto nodes are T4s reporting 15109 MiB (NVML total ÷ 2^20): ">= 16384 MiB" (16GiB) matches none of them.
    gpu_job(fake_nomad, 2, gpu_constraints=[T4_16GIB])
    assert fake_nomad.live_count(JOB, GROUP) == 0 and summary(fake_nomad)["Queued"] == 2
    metric = fake_nomad.evaluations(JOB)[0]["FailedTGAllocs"][GROUP]
    assert metric["ConstraintFiltered"] == {"missing devices": 1}
    fake_nomad.add_job("fits", groups={GROUP: 2}, gpus=1, distinct_hosts=True, node_pool="gpu",
                       gpu_constraints=[{**T4_16GIB, "RTarget": "15000 MiB"}])  # fmt: skip
    assert fake_nomad.live_count("fits", GROUP) == 2 and fake_nomad.queued("fits", GROUP) == 0


def test_cpu_and_memory_are_reserved_on_the_node(fake_nomad: FakeNomad) -> None:
    fake_nomad.auto_nodes = False
    fake_nomad.add_node("small", node_pool="gpu", memory_mb=4000, reserved_memory_mb=1000)
    job = sample("job-register.request")["Job"]
    job.update(ID="big", NodePool="gpu", Datacenters=["dc1"])
    job["TaskGroups"][0].update(Count=3)
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = {"CPU": 500, "MemoryMB": 1400}
    assert post(fake_nomad, "/v1/jobs", {"Job": job}).status_code == 200
    assert fake_nomad.live_count("big", "cache") == 2  # 3000 MB usable: two 1400 MB allocations
    metric = fake_nomad.evaluations("big")[0]["FailedTGAllocs"]["cache"]
    assert metric["DimensionExhausted"] == {"memory": 1} and metric["NodesExhausted"] == 1


def test_auto_nodes_are_the_default_infinite_fleet(fake_nomad: FakeNomad) -> None:
    gpu_job(fake_nomad, 3)
    assert fake_nomad.live_count(JOB, GROUP) == 3 and summary(fake_nomad)["Queued"] == 0
    nodes = fake_nomad.node_list()
    assert len(nodes) == 3 and {n["NodePool"] for n in nodes} == {"gpu"}
    assert {a["NodeID"] for a in fake_nomad.allocations(JOB)} == {n["ID"] for n in nodes}


# ---------------------------------------------------------------- node endpoints


def test_node_list_and_read_shapes(fake_nomad: FakeNomad) -> None:
    a = fake_nomad.add_node("gpu-a", node_pool="gpu", datacenter="eu-west-1a", node_class="gpu-t4",
                            instance_id="i-0aaaaaaaaaaaaaaaa", meta={"zone": "eu-west-1a"})  # fmt: skip
    b = fake_nomad.add_node("cpu-b", node_pool="default", gpus=0)
    listed = get(fake_nomad, "/v1/nodes").json()
    assert [n["ID"] for n in listed] == sorted([a["ID"], b["ID"]])  # by node ID (facts §6)
    stub_keys = set(sample("nodes-list.response")[0]) - {"Attributes"}
    assert all(set(n) == stub_keys | {"HostVolumes"} for n in listed)
    assert all("Attributes" not in n and "NodeResources" not in n for n in listed)
    with_os = get(fake_nomad, "/v1/nodes", params={"os": "true", "resources": "true"}).json()
    assert all(n["Attributes"] == {"os.name": "debian"} and "ReservedResources" in n for n in with_os)
    assert get(fake_nomad, "/v1/nodes", params={"prefix": a["ID"][:6]}).json()[0]["ID"] == a["ID"]
    flt = 'NodePool == "gpu" and Status == "ready" and Meta.zone == "eu-west-1a"'
    assert [n["ID"] for n in get(fake_nomad, "/v1/nodes", params={"filter": flt}).json()] == [a["ID"]]
    by_iid = 'Attributes["unique.platform.aws.instance-id"] == "i-0aaaaaaaaaaaaaaaa"'
    assert [n["Name"] for n in get(fake_nomad, "/v1/nodes", params={"filter": by_iid}).json()] == ["gpu-a"]
    assert get(fake_nomad, "/v1/nodes", params={"filter": "NodePool =="}).status_code == 400

    node = get(fake_nomad, f"/v1/node/{a['ID']}").json()
    assert set(sample("node-read-gpu.derived.response")) <= set(node)
    assert node["SecretID"] == "" and node["Drain"] is False and node["DrainStrategy"] is None
    assert node["Attributes"]["unique.platform.aws.instance-id"] == "i-0aaaaaaaaaaaaaaaa"
    (t4,) = node["NodeResources"]["Devices"]
    assert t4 == {**sample("device-nvidia-t4.derived.fragment"), "Instances": t4["Instances"]}
    assert t4["Attributes"]["memory"]["Int"] == 15109
    assert_text(get(fake_nomad, f"/v1/node/{a['ID'][:8]}"), 404, "node not found")  # exact IDs only


def test_node_allocations_are_full_allocations(fake_nomad: FakeNomad) -> None:
    gpu_job(fake_nomad, 1)
    (alloc,) = fake_nomad.allocations(JOB)
    got = get(fake_nomad, f"/v1/node/{alloc['NodeID']}/allocations").json()
    (full,) = got
    assert full["ID"] == alloc["ID"] and full["Job"]["ID"] == JOB
    assert full["Resources"]["CPU"] == 200 and full["Resources"]["MemoryMB"] == 256
    (device,) = full["AllocatedResources"]["Tasks"]["worker"]["Devices"]
    assert set(device) == {"Vendor", "Type", "Name", "DeviceIDs"} and device["DeviceIDs"][0].startswith("GPU-")
    unknown = get(fake_nomad, "/v1/node/00000000-0000-0000-0000-000000000000/allocations")
    assert unknown.status_code == 200 and unknown.json() == []


def test_node_endpoints_need_node_read(fake_nomad: FakeNomad) -> None:
    node = fake_nomad.add_node("gpu-a")
    fake_nomad.enable_acl("root")
    fake_nomad.add_token("jobs-only", jobs={"default": ["read-job"]})
    fake_nomad.add_token("nodes", node="read")
    assert_text(get(fake_nomad, "/v1/nodes", headers={"X-Nomad-Token": "jobs-only"}), 403, "Permission denied")
    assert get(fake_nomad, "/v1/nodes", headers={"X-Nomad-Token": "nodes"}).status_code == 200
    assert get(fake_nomad, f"/v1/node/{node['ID']}", headers={"X-Nomad-Token": "nodes"}).status_code == 200


# ---------------------------------------------------------------- Job.Scale as strict as Nomad


def test_scale_checks_the_acl_before_the_body(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    fake_nomad.enable_acl("root")
    fake_nomad.add_token("reader", jobs={"default": ["read-job"]})
    bad_body = {"Count": -1, "Target": {}}
    denied = post(fake_nomad, f"/v1/job/{JOB}/scale", bad_body, headers={"X-Nomad-Token": "reader"})
    assert_text(denied, 403, "Permission denied")  # not the 400 of the body: ACL first (facts §3)
    root = {"X-Nomad-Token": "root"}
    assert_text(post(fake_nomad, f"/v1/job/{JOB}/scale", bad_body, headers=root), 400, "missing task group name")
    mismatch = {"Count": 1, "Target": {"Group": GROUP, "Namespace": "other"}}
    assert_text(post(fake_nomad, f"/v1/job/{JOB}/scale", mismatch, headers=root), 400, "namespace in payload")
    wrong_job = {"Count": 1, "Target": {"Group": GROUP, "Job": "x"}}
    assert_text(
        post(fake_nomad, f"/v1/job/{JOB}/scale", wrong_job, headers={"X-Nomad-Token": "nope"}),
        400,
        "job ID in payload did not match URL",  # the HTTP layer's check comes before the token
    )


def test_scale_to_the_same_count_still_writes_a_version_an_eval_and_an_event(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    before = fake_nomad.job(JOB)
    assert before is not None
    reply = scale(fake_nomad, 2).json()
    after = fake_nomad.job(JOB)
    assert after is not None and after["Version"] == before["Version"] + 1
    assert after["JobModifyIndex"] == reply["JobModifyIndex"] > before["JobModifyIndex"]
    assert reply["Index"] > reply["EvalCreateIndex"] > reply["JobModifyIndex"]  # event > eval > job (facts §3)
    assert reply["EvalID"] and len(fake_nomad.events(JOB, GROUP)) == 1


def test_evaluations_are_created_pending(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    fake_nomad.auto_schedule = False
    reply = scale(fake_nomad, 3).json()
    evaluation = get(fake_nomad, f"/v1/evaluation/{reply['EvalID']}").json()
    assert (evaluation["Status"], evaluation["TriggeredBy"]) == ("pending", "job-scaling")
    assert fake_nomad.live_count(JOB, GROUP) == 1  # nothing placed until the scheduler runs
    assert fake_nomad.process_evals() == 1
    assert get(fake_nomad, f"/v1/evaluation/{reply['EvalID']}").json()["Status"] == "complete"
    assert fake_nomad.live_count(JOB, GROUP) == 3


def test_scale_status_reports_the_jobs_modify_index(fake_nomad: FakeNomad) -> None:
    finite_fleet(fake_nomad, 0)
    gpu_job(fake_nomad, 2, alloc_status="pending")
    assert get(fake_nomad, f"/v1/job/{JOB}").json()["Status"] == "pending"  # only a blocked eval
    fake_nomad.add_node("gpu-0", node_pool="gpu")  # placed: pending → running moves ModifyIndex, not JobModifyIndex
    job = fake_nomad.job(JOB)
    assert job is not None and job["Status"] == "running" and job["ModifyIndex"] > job["JobModifyIndex"]
    status = get(fake_nomad, f"/v1/job/{JOB}/scale").json()
    assert status["JobModifyIndex"] == job["ModifyIndex"]
    tg = status["TaskGroups"][GROUP]
    assert (tg["Desired"], tg["Placed"], tg["Running"], tg["Healthy"], tg["Unhealthy"]) == (2, 1, 0, 0, 0)
    fake_nomad.set_alloc_status(JOB, "running")
    tg = get(fake_nomad, f"/v1/job/{JOB}/scale").json()["TaskGroups"][GROUP]
    assert (tg["Placed"], tg["Running"]) == (1, 1)
    fake_nomad.set_alloc_status(JOB, "failed", limit=1)  # terminal: no longer placed, not "unhealthy"…
    tg = get(fake_nomad, f"/v1/job/{JOB}/scale").json()["TaskGroups"][GROUP]
    # …and its node is free again: the queued allocation is placed there (the failed one waits for its delay).
    assert (tg["Placed"], tg["Running"], tg["Unhealthy"]) == (1, 0, 0) and summary(fake_nomad)["Queued"] == 0


def test_scale_errors_for_system_jobs_and_job_max_count(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("sys", groups={GROUP: 1}, job_type="system")
    reply = post(fake_nomad, "/v1/job/sys/scale", {"Count": 2, "Target": {"Group": GROUP}})
    assert_text(reply, 400, 'jobs of type "system" can only be scaled between 0 and 1')
    fake_nomad.add_job(JOB, groups={GROUP: 1, "other": 2})
    fake_nomad.job_max_count = 5
    assert_text(scale(fake_nomad, 4), 500, "total count was greater than configured job_max_count: 6 > 5")


# ---------------------------------------------------------------- plan


def test_plan_diffs_against_the_stored_job_and_stores_nothing(fake_nomad: FakeNomad) -> None:
    job = sample("job-register.request")["Job"]
    created = post(fake_nomad, "/v1/job/cache/plan", {"Job": job, "Diff": True}).json()
    assert set(created) == set(sample("job-plan.derived.response"))
    assert created["Diff"]["Type"] == "Added" and created["JobModifyIndex"] == 0
    assert created["Annotations"]["DesiredTGUpdates"]["cache"]["Place"] == 1
    assert fake_nomad.job("cache") is None

    post(fake_nomad, "/v1/jobs", {"Job": job})
    same = post(fake_nomad, "/v1/job/cache/plan", {"Job": job, "Diff": True}).json()
    stored = fake_nomad.job("cache")
    assert stored is not None and same["Diff"]["Type"] == "None" and same["JobModifyIndex"] == stored["JobModifyIndex"]
    assert same["Annotations"]["DesiredTGUpdates"]["cache"]["Ignore"] == 1

    job["TaskGroups"][0]["Count"] = 3
    more = post(fake_nomad, "/v1/job/cache/plan", {"Job": job, "Diff": True}).json()
    (group,) = more["Diff"]["TaskGroups"]
    count = next(f for f in group["Fields"] if f["Name"] == "Count")
    assert (more["Diff"]["Type"], count["Old"], count["New"]) == ("Edited", "1", "3")
    assert count["Annotations"] == ["forces create"]
    assert set(group) == set(sample("job-plan.derived.response")["Diff"]["TaskGroups"][0])
    assert fake_nomad.group_count("cache", "cache") == 1, "plan stores nothing"


def test_plan_reports_what_cannot_be_placed_and_validates_before_the_acl(fake_nomad: FakeNomad) -> None:
    fake_nomad.auto_nodes = False
    job = sample("job-register.request")["Job"]
    plan = post(fake_nomad, "/v1/job/cache/plan", {"Job": job, "Diff": False}).json()
    assert plan["Diff"] is None and plan["FailedTGAllocs"]["cache"]["NodesInPool"] == 0
    assert plan["CreatedEvals"][0]["Status"] == "blocked"
    fake_nomad.enable_acl("root")
    broken = {**job, "TaskGroups": [{**job["TaskGroups"][0], "Tasks": []}]}
    assert_text(post(fake_nomad, "/v1/job/cache/plan", {"Job": broken}), 500, "Missing tasks for task group")
    assert_text(post(fake_nomad, "/v1/job/cache/plan", {"Job": job}), 403, "Permission denied")
    fake_nomad.add_token("planner", jobs={"default": ["plan-job"]})
    ok = post(fake_nomad, "/v1/job/cache/plan", {"Job": job}, headers={"X-Nomad-Token": "planner"})
    assert ok.status_code == 200
    assert_text(post(fake_nomad, "/v1/job/other/plan", {"Job": job}), 400, "Job ID does not match")


def test_register_adds_the_implied_constraint_of_nomad_services(fake_nomad: FakeNomad) -> None:
    job = sample("job-register.request")["Job"]
    job["TaskGroups"][0]["Services"][0]["Provider"] = "nomad"
    post(fake_nomad, "/v1/jobs", {"Job": job})
    stored = fake_nomad.job("cache")
    assert stored is not None
    assert {"LTarget": "${attr.nomad.service_discovery}", "RTarget": "true", "Operand": "="} in stored[
        "TaskGroups"
    ][0]["Constraints"]


# ---------------------------------------------------------------- variables


def test_variable_body_namespace_wins_and_nomads_path_and_size_rules(fake_nomad: FakeNomad) -> None:
    fake_nomad.namespaces.add("prod")
    put = requests.put(fake_nomad.address + "/v1/var/a/b", json={"Namespace": "prod", "Items": {"k": "v"}}, timeout=5)
    assert put.status_code == 200 and put.json()["Namespace"] == "prod"
    assert fake_nomad.variable("a/b", namespace="prod") is not None and fake_nomad.variable("a/b") is None
    bad_path = requests.put(fake_nomad.address + "/v1/var/a.b", json={"Items": {"k": "v"}}, timeout=5)
    assert_text(bad_path, 400, 'RPC Error:: 400,invalid path "a.b"')
    too_long = "p" * 129
    assert_text(
        requests.put(fake_nomad.address + f"/v1/var/{too_long}", json={"Items": {"k": "v"}}, timeout=5),
        400,
        "invalid path",
    )
    big = {"k": "x" * 65536}  # 1 + 65536 bytes: over 64 KiB
    assert_text(
        requests.put(fake_nomad.address + "/v1/var/a/c", json={"Items": big}, timeout=5),
        400,
        "RPC Error:: 400,variables are limited to 64KiB in total size",
    )
    fits = {"k": "x" * 65535}  # exactly 64 KiB
    assert requests.put(fake_nomad.address + "/v1/var/a/c", json={"Items": fits}, timeout=5).status_code == 200


@pytest.mark.parametrize("path", ["forescale/overrides/ocr", "a-b_c~d/e"])
def test_valid_variable_paths(fake_nomad: FakeNomad, path: str) -> None:
    put = requests.put(fake_nomad.address + f"/v1/var/{path}", json={"Items": {"k": "v"}}, timeout=5)
    assert put.status_code == 200


# ---------------------------------------------------------------- the scheduler's shortcuts give the same answers


def usage_from_scratch(fake: FakeNomad) -> Usage:
    """What `_node_usage` keeps shares of, worked out allocation by allocation."""
    usage = Usage()
    for (ns, job_id), allocs in fake.allocs.items():
        job = fake.jobs.get((ns, job_id)) or {}
        for alloc in allocs:
            if alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] in TERMINAL_CLIENT:
                continue
            res = fake._alloc_res.get(alloc["ID"]) or {}
            cpu, memory = res.get("cpu"), res.get("memory")
            if cpu is None or memory is None:
                cpu, memory = group_resources(_find_group(job, alloc["TaskGroup"]) or {})
            usage.add(alloc["NodeID"], (ns, job_id, alloc["TaskGroup"]), cpu, memory, res.get("devices") or [])
    return usage


def test_kept_usage_follows_every_change_of_the_allocations(fake_nomad: FakeNomad) -> None:
    fake_nomad.auto_nodes = False
    for i in range(3):
        fake_nomad.add_node(f"gpu-{i}", node_pool="gpu", gpus=2)
    fake_nomad.add_job(JOB, groups={GROUP: 3}, gpus=1, node_pool="gpu")
    fake_nomad.add_job("other", groups={"web": 2}, node_pool="gpu")
    steps = [
        lambda: None,
        lambda: scale(fake_nomad, 5),
        lambda: fake_nomad.set_alloc_status(JOB, "complete", limit=2),
        lambda: fake_nomad.set_alloc_status("other", "failed", limit=1),
        lambda: fake_nomad.add_alloc("other", "web", desired_status="stop"),
        lambda: scale(fake_nomad, 1),
    ]
    for step in steps:
        step()
        with fake_nomad._cond:
            assert fake_nomad._node_usage() == usage_from_scratch(fake_nomad)
            assert fake_nomad._node_usage() == usage_from_scratch(fake_nomad)  # from the kept shares this time


def test_first_fit_skips_full_nodes_and_returns_to_the_first_with_room(fake_nomad: FakeNomad) -> None:
    fake_nomad.auto_nodes = False
    nodes = [fake_nomad.add_node(f"n-{i}", node_pool="gpu", memory_mb=3000) for i in range(4)]
    job = sample("job-register.request")["Job"]
    job.update(ID="packed", NodePool="gpu", Datacenters=["dc1"])
    job["TaskGroups"][0].update(Count=5)
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = {"CPU": 100, "MemoryMB": 1400}  # two fit on a node
    assert post(fake_nomad, "/v1/jobs", {"Job": job}).status_code == 200
    name_of = {n["ID"]: n["Name"] for n in nodes}

    def placed() -> list[str]:
        live = [a for a in fake_nomad.allocations("packed") if a["DesiredStatus"] == "run"]
        return sorted(name_of[a["NodeID"]] for a in live if a["ClientStatus"] not in TERMINAL_CLIENT)

    assert placed() == ["n-0", "n-0", "n-1", "n-1", "n-2"]  # in name order, each node filled first
    first = next(a for a in fake_nomad.allocations("packed") if name_of[a["NodeID"]] == "n-0")
    with fake_nomad._cond:  # its client reports it done: n-0 has room again
        next(a for a in fake_nomad.allocs[("default", "packed")] if a["ID"] == first["ID"])["ClientStatus"] = "complete"
    job["TaskGroups"][0].update(Count=6)
    assert post(fake_nomad, "/v1/jobs", {"Job": job}).status_code == 200
    assert placed().count("n-0") == 2 and placed().count("n-2") == 2  # the replacement on n-0, the new one on n-2
