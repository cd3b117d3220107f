"""The fake Nomad against ``shared/nomad-api`` (samples, text errors, headers), so other tests can trust it."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from tests.fakes.nomad import FakeNomad, sample

HCL = r"""
job "ocr" {
  type        = "service"
  datacenters = ["dc1", "dc2"]
  node_pool   = "gpu"

  group "workers" {
    count = 2

    scaling {
      enabled = true
      min     = 1
      max     = 10
    }

    constraint {
      distinct_hosts = true
    }

    task "worker" {
      driver       = "raw_exec"
      kill_timeout = "1m30s"
      kill_signal  = "SIGTERM"

      config {
        command = "/usr/local/bin/forescale-compose-entrypoint"
        args    = ["--project", "ocr-${NOMAD_ALLOC_ID}"]
      }

      resources {
        cpu    = 500
        memory = 2048
        device "nvidia/gpu" {
          count = 1
        }
      }

      template {
        data        = "{{ with nomadVar \"nomad/jobs/ocr\" }}{{ .k }}{{ end }}"
        destination = "local/env"
        env         = true
      }
    }
  }
}
"""


def url(fake: FakeNomad, path: str) -> str:
    return fake.address + path


def get(fake: FakeNomad, path: str, **kw: Any) -> requests.Response:
    return requests.get(url(fake, path), timeout=5, **kw)


def post(fake: FakeNomad, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(url(fake, path), json=body, timeout=5, **kw)


def assert_text_error(resp: requests.Response, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert message in resp.text


def scale(fake: FakeNomad, job: str, count: int | None, group: str | None = "workers", **extra: Any) -> Any:
    body: dict[str, Any] = {"Target": {"Group": group} if group else {}, "Error": False, **extra}
    if count is not None:
        body["Count"] = count
    return post(fake, f"/v1/job/{job}/scale", body)


# ---------------------------------------------------------------- response shapes match the samples


def test_sample_job_reads_back_exactly(fake_nomad: FakeNomad) -> None:
    stored = fake_nomad.add_sample_job()
    resp = get(fake_nomad, "/v1/job/example", params={"namespace": "apps"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == stored == sample("job-read.response")
    allocs = get(fake_nomad, "/v1/job/example/allocations", params={"namespace": "apps"}).json()
    assert [a["ID"] for a in allocs] == [a["ID"] for a in sample("job-allocations.response")]


def test_seeded_job_has_every_field_of_the_job_read_sample(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 2}, scaling={"workers": (1, 10)})
    job = get(fake_nomad, "/v1/job/ml-ocr").json()
    assert set(sample("job-read.response")) <= set(job)
    (tg,) = job["TaskGroups"]
    assert set(sample("job-read.response")["TaskGroups"][0]) <= set(tg) | {"Affinities", "Constraints"}
    assert tg["Scaling"]["Min"] == 1 and tg["Scaling"]["Max"] == 10 and tg["Count"] == 2
    assert job["Status"] == "running" and job["Version"] == 0


def test_alloc_stub_fields_and_jobs_list_shape(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 2})
    allocs = get(fake_nomad, "/v1/job/ml-ocr/allocations").json()
    needed = {"ID", "Name", "NodeID", "TaskGroup", "DesiredStatus", "ClientStatus", "TaskStates", "JobVersion"}
    needed |= {"DeploymentStatus", "CreateTime", "Namespace", "JobID", "EvalID", "CreateIndex", "ModifyIndex"}
    assert all(needed <= set(a) for a in allocs)
    assert sorted(a["Name"] for a in allocs) == ["ml-ocr.workers[0]", "ml-ocr.workers[1]"]
    listed = get(fake_nomad, "/v1/jobs").json()
    assert set(sample("jobs-list.response")[0]) <= set(listed[0])
    assert listed[0]["JobSummary"]["Summary"]["workers"]["Running"] == 2


def test_write_responses_have_the_sample_keys(fake_nomad: FakeNomad) -> None:
    reg = post(fake_nomad, "/v1/jobs", sample("job-register.request"))
    assert reg.status_code == 200 and set(reg.json()) == set(sample("job-register.response"))
    assert reg.json()["EvalID"]  # a service job that is neither periodic nor parameterized gets an eval
    sc = scale(fake_nomad, "cache", 3, group="cache", Message="m", Meta={"k": "v"})
    # JobRegisterResponse with its flattened QueryMeta: the docs' sample omits NextToken (nomad-facts §3)
    assert sc.status_code == 200 and set(sc.json()) == set(sample("job-scale.response")) | {"NextToken"}
    status = get(fake_nomad, "/v1/job/cache/scale").json()
    assert set(status) == set(sample("job-scale-status.response"))
    assert set(status["TaskGroups"]["cache"]) == set(sample("job-scale-status.response")["TaskGroups"]["cache"])
    (event,) = status["TaskGroups"]["cache"]["Events"]
    assert event["Count"] == 3 and event["PreviousCount"] == 1 and event["Meta"] == {"k": "v"}
    assert event["EvalID"] == sc.json()["EvalID"] and event["Error"] is False
    stop = requests.delete(url(fake_nomad, "/v1/job/cache"), timeout=5)
    assert set(stop.json()) == set(sample("job-stop.response"))


def test_deployment_reads(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    resp = get(fake_nomad, "/v1/job/ml-ocr/deployment")
    assert resp.status_code == 200 and resp.text == "null"
    fake_nomad.set_deployment_active("ml-ocr", True)
    dep = get(fake_nomad, "/v1/job/ml-ocr/deployment").json()
    assert set(sample("deployment-read.response")) <= set(dep)
    assert dep["Status"] == "running"
    assert get(fake_nomad, f"/v1/deployment/{dep['ID']}").json()["ID"] == dep["ID"]
    fake_nomad.set_deployment_active("ml-ocr", False)
    assert get(fake_nomad, "/v1/job/ml-ocr/deployment").json()["Status"] == "successful"
    assert_text_error(get(fake_nomad, "/v1/deployment/nope"), 404, "deployment not found")


def test_variable_shapes_cas_and_delete(fake_nomad: FakeNomad) -> None:
    fake_nomad.namespaces.add("prod")
    body = sample("variable-put.request")
    put = requests.put(url(fake_nomad, "/v1/var/example/first"), params={"cas": 0}, json=body, timeout=5)
    assert put.status_code == 200 and set(put.json()) == set(sample("variable-put.response"))
    assert put.json()["Namespace"] == "prod" and put.json()["Items"] == body["Items"]
    assert int(put.headers["X-Nomad-Index"]) == put.json()["ModifyIndex"]
    read = get(fake_nomad, "/v1/var/example/first", params={"namespace": "prod"})
    assert read.json() == put.json() and set(read.json()) == set(sample("variable-read.response"))
    again = requests.put(url(fake_nomad, "/v1/var/example/first"), params={"cas": 0}, json=body, timeout=5)
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/json"
    assert again.json() == put.json() and set(again.json()) == set(sample("variable-put-cas-conflict.response"))
    gone = requests.delete(url(fake_nomad, "/v1/var/example/first"), params={"namespace": "prod", "cas": 1}, timeout=5)
    assert gone.status_code == 409 and set(gone.json()) == set(sample("variable-delete-cas-conflict.derived.response"))
    assert gone.json()["Items"] == body["Items"]  # the docs' sample omits them; the code returns them
    index = put.json()["ModifyIndex"]
    ok = requests.delete(
        url(fake_nomad, "/v1/var/example/first"), params={"namespace": "prod", "cas": index}, timeout=5
    )
    assert ok.status_code == 204 and ok.content == b"" and "X-Nomad-Index" in ok.headers
    assert_text_error(get(fake_nomad, "/v1/var/example/first", params={"namespace": "prod"}), 404, "variable not found")


def test_variables_list_is_metadata_by_prefix(fake_nomad: FakeNomad) -> None:
    fake_nomad.put_variable("forescale/overrides/ocr", {"a": "1"})
    fake_nomad.put_variable("forescale/overrides/asr", {"a": "2"})
    fake_nomad.put_variable("other/x", {"a": "3"})
    listed = get(fake_nomad, "/v1/vars", params={"prefix": "forescale/"}).json()
    assert [v["Path"] for v in listed] == ["forescale/overrides/asr", "forescale/overrides/ocr"]
    assert all(set(v) == set(sample("variables-list.response")[0]) for v in listed)


def test_agent_health_and_leader(fake_nomad: FakeNomad) -> None:
    assert get(fake_nomad, "/v1/agent/health").json() == sample("agent-health.response")
    assert get(fake_nomad, "/v1/status/leader").json() == sample("status-leader.response")
    fake_nomad.healthy = False
    bad = get(fake_nomad, "/v1/agent/health")
    assert bad.status_code == 500 and bad.headers["Content-Type"].startswith("text/plain")
    assert bad.json()["server"]["message"] == "no leader"


# ---------------------------------------------------------------- errors: codes and text bodies


def test_job_errors_are_plain_text(fake_nomad: FakeNomad) -> None:
    assert_text_error(get(fake_nomad, "/v1/job/nope"), 404, "job not found")
    assert_text_error(get(fake_nomad, "/v1/job/nope/scale"), 404, "job not found")
    assert_text_error(scale(fake_nomad, "nope", 1), 404, 'job "nope" not found')
    unknown = get(fake_nomad, "/v1/job/nope/allocations")
    assert unknown.status_code == 200 and unknown.json() == []
    assert_text_error(requests.patch(url(fake_nomad, "/v1/job/nope"), timeout=5), 405, "Invalid method")


def test_scale_rejections_match_job_scale(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 2}, scaling={"workers": (1, 8)})
    assert_text_error(scale(fake_nomad, "ml-ocr", 3, group=None), 400, "missing task group name for scaling action")
    assert_text_error(scale(fake_nomad, "ml-ocr", 3, group="gpu"), 400, 'task group "gpu" specified for scaling')
    assert_text_error(scale(fake_nomad, "ml-ocr", 9), 400, "group count was greater than scaling policy maximum: 9 > 8")
    assert_text_error(scale(fake_nomad, "ml-ocr", 0), 400, "group count was less than scaling policy minimum: 0 < 1")
    assert_text_error(scale(fake_nomad, "ml-ocr", 3, Error=True), 400, "should not contain count if error is true")
    assert_text_error(scale(fake_nomad, "ml-ocr", -1), 400, "can't be negative")
    assert_text_error(
        scale(fake_nomad, "ml-ocr", 3, JobModifyIndex=1),
        500,
        "Enforcing job modify index 1: job exists with conflicting job modify index:",
    )
    fake_nomad.set_deployment_active("ml-ocr", True)
    assert_text_error(scale(fake_nomad, "ml-ocr", 3), 400, "job scaling blocked due to active deployment")
    assert fake_nomad.group_count("ml-ocr", "workers") == 2
    assert fake_nomad.events("ml-ocr", "workers") == []


def test_register_validation_is_a_500_multierror(fake_nomad: FakeNomad) -> None:
    job = sample("job-register.request")
    job["Job"]["TaskGroups"][0]["Tasks"] = []
    resp = post(fake_nomad, "/v1/jobs", job)
    assert_text_error(resp, 500, "1 error occurred:\n\t* Task group cache validation failed")
    job = sample("job-register.request")
    job["Job"]["TaskGroups"][0].update(Count=5, Scaling={"Min": 1, "Max": 3})
    assert_text_error(post(fake_nomad, "/v1/jobs", job), 500, "greater than maximum count in scaling policy")
    assert_text_error(post(fake_nomad, "/v1/jobs", {"Job": {}}), 400, "Job ID hasn't been provided")
    other = sample("job-register.request")
    assert_text_error(post(fake_nomad, "/v1/job/not-cache", other), 400, "Job ID does not match name")


def test_other_error_paths(fake_nomad: FakeNomad) -> None:
    assert_text_error(requests.put(url(fake_nomad, "/v1/var/a"), json={"Items": {}}, timeout=5), 400, "Items object")
    assert_text_error(post(fake_nomad, "/v1/jobs/parse", {"JobHCL": ""}), 400, "Job spec is empty")
    assert_text_error(post(fake_nomad, "/v1/jobs/parse", {"JobHCL": 'job "x" {'}), 400, "Failed to parse job: ")
    assert_text_error(requests.delete(url(fake_nomad, "/v1/jobs"), timeout=5), 405, "Invalid method")
    assert_text_error(get(fake_nomad, "/v1/jobs", params={"region": "eu"}), 500, "No path to region")
    assert_text_error(get(fake_nomad, "/v1/jobs", params={"index": "x"}), 400, "Invalid index")
    assert_text_error(get(fake_nomad, "/v1/jobs", params={"index": "1", "wait": "soon"}), 400, "Invalid wait time")
    assert_text_error(get(fake_nomad, "/v1/nothing"), 404, "404 page not found")


# ---------------------------------------------------------------- headers, ACL, namespaces


def test_index_header_on_reads_and_writes_and_it_grows(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    before = get(fake_nomad, "/v1/job/ml-ocr")
    assert before.headers["X-Nomad-KnownLeader"] == "true"
    write = scale(fake_nomad, "ml-ocr", 2)
    after = get(fake_nomad, "/v1/job/ml-ocr/allocations")
    assert int(before.headers["X-Nomad-Index"]) < int(write.headers["X-Nomad-Index"])
    assert int(write.headers["X-Nomad-Index"]) <= int(after.headers["X-Nomad-Index"])


def test_blocking_query_wakes_on_a_write(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    index = int(get(fake_nomad, "/v1/jobs").headers["X-Nomad-Index"])
    result: dict[str, Any] = {}

    def blocked() -> None:
        result["resp"] = get(fake_nomad, "/v1/job/ml-ocr/allocations", params={"index": index, "wait": "8s"})

    thread = threading.Thread(target=blocked)
    thread.start()
    fake_nomad.wait_for_request(lambda r: r.query.get("index") == str(index))
    scale(fake_nomad, "ml-ocr", 2)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert int(result["resp"].headers["X-Nomad-Index"]) > index
    assert len(result["resp"].json()) == 2


def test_acl_tokens(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    fake_nomad.enable_acl("root-secret")
    fake_nomad.add_token("reader", jobs={"default": ["read-job"]})
    assert_text_error(get(fake_nomad, "/v1/job/ml-ocr"), 403, "Permission denied")
    assert_text_error(get(fake_nomad, "/v1/job/ml-ocr", headers={"X-Nomad-Token": "nope"}), 403, "ACL token not found")
    assert get(fake_nomad, "/v1/job/ml-ocr", headers={"Authorization": "Bearer root-secret"}).status_code == 200
    assert get(fake_nomad, "/v1/job/ml-ocr", headers={"X-Nomad-Token": "reader"}).status_code == 200
    denied = post(
        fake_nomad,
        "/v1/job/ml-ocr/scale",
        {"Count": 2, "Target": {"Group": "workers"}},
        headers={"X-Nomad-Token": "reader"},
    )
    assert_text_error(denied, 403, "Permission denied")
    assert_text_error(get(fake_nomad, "/v1/var/x", headers={"X-Nomad-Token": "reader"}), 403, "Permission denied")
    assert get(fake_nomad, "/v1/agent/health").status_code == 200  # no ACL needed


def test_namespaces_separate_jobs(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", namespace="ml", groups={"workers": 1})
    assert_text_error(get(fake_nomad, "/v1/job/ml-ocr"), 404, "job not found")
    assert get(fake_nomad, "/v1/job/ml-ocr", params={"namespace": "ml"}).json()["Namespace"] == "ml"
    assert get(fake_nomad, "/v1/jobs").json() == []
    assert [j["ID"] for j in get(fake_nomad, "/v1/jobs", params={"namespace": "*"}).json()] == ["ml-ocr"]
    job = sample("job-register.request")
    assert_text_error(post(fake_nomad, "/v1/jobs", job, params={"namespace": "nope"}), 500, "nonexistent namespace")


# ---------------------------------------------------------------- allocations, register semantics


def test_scale_places_lowest_free_index_and_stops_highest(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 3})
    assert scale(fake_nomad, "ml-ocr", 5).status_code == 200
    allocs = fake_nomad.allocations("ml-ocr")
    assert [(a["Name"][-3:], a["ClientStatus"]) for a in allocs][-2:] == [("[3]", "pending"), ("[4]", "pending")]
    assert fake_nomad.live_count("ml-ocr", "workers") == 5
    assert scale(fake_nomad, "ml-ocr", 2).status_code == 200
    live = sorted(a["Name"] for a in fake_nomad.allocations("ml-ocr") if a["DesiredStatus"] == "run")
    assert live == ["ml-ocr.workers[0]", "ml-ocr.workers[1]"]
    stopped = [a for a in fake_nomad.allocations("ml-ocr") if a["DesiredStatus"] == "stop"]
    assert {a["ClientStatus"] for a in stopped} == {"complete"}
    assert {a["DesiredDescription"] for a in stopped} == {"alloc not needed due to job update"}
    job = fake_nomad.job("ml-ocr")
    assert job is not None and job["Version"] == 2


def test_failed_alloc_is_rescheduled_after_its_delay_not_by_the_next_scale(fake_nomad: FakeNomad) -> None:
    now = [1000.0]
    fake_nomad.clock = lambda: now[0]
    fake_nomad.add_job("ml-ocr", groups={"workers": 2}, alloc_status="pending")
    assert fake_nomad.set_alloc_status("ml-ocr", "running", limit=1) == 1
    assert fake_nomad.set_alloc_status("ml-ocr", "failed", only="pending") == 1
    (failed,) = [a for a in fake_nomad.allocations("ml-ocr") if a["ClientStatus"] == "failed"]
    assert fake_nomad.live_count("ml-ocr", "workers") == 1
    # Reschedule later (service default: 30s): the failed allocation still counts towards Count, so a scale to
    # the same count places nothing, and nothing is queued either.
    assert scale(fake_nomad, "ml-ocr", 2).status_code == 200
    assert fake_nomad.live_count("ml-ocr", "workers") == 1
    summary = get(fake_nomad, "/v1/job/ml-ocr/summary").json()["Summary"]["workers"]
    assert (summary["Running"], summary["Starting"], summary["Failed"], summary["Queued"]) == (1, 0, 1, 0)
    delayed = [e for e in fake_nomad.evaluations("ml-ocr") if e["WaitUntil"]]
    assert [(e["TriggeredBy"], e["Status"]) for e in delayed] == [("alloc-failure", "pending")]
    assert next(a for a in fake_nomad.allocations("ml-ocr") if a["ID"] == failed["ID"])["FollowupEvalID"] == (
        delayed[0]["ID"]
    )
    now[0] += 29
    assert len(get(fake_nomad, "/v1/job/ml-ocr/allocations").json()) == 2  # not yet
    now[0] += 2
    allocs = get(fake_nomad, "/v1/job/ml-ocr/allocations").json()
    (replacement,) = [a for a in allocs if a["PreviousAllocation"] == failed["ID"]]
    assert replacement["Name"] == failed["Name"] and replacement["ClientStatus"] == "pending"
    assert replacement["RescheduleTracker"]["Events"][0]["Delay"] == 30 * 10**9
    assert next(a for a in allocs if a["ID"] == failed["ID"])["NextAllocation"] == replacement["ID"]
    assert fake_nomad.live_count("ml-ocr", "workers") == 2
    assert [e["Status"] for e in fake_nomad.evaluations("ml-ocr") if e["WaitUntil"]] == ["complete"]


def test_register_preserve_counts_and_enforce_index(fake_nomad: FakeNomad) -> None:
    body = sample("job-register.request")
    first = post(fake_nomad, "/v1/jobs", body).json()
    assert scale(fake_nomad, "cache", 4, group="cache").status_code == 200
    preserved = post(fake_nomad, "/v1/jobs", {**body, "PreserveCounts": True})
    assert preserved.status_code == 200 and fake_nomad.group_count("cache", "cache") == 4
    post(fake_nomad, "/v1/jobs", body)
    assert fake_nomad.group_count("cache", "cache") == 1  # the jobspec's count (default 1) overwrote it
    assert_text_error(
        post(fake_nomad, "/v1/jobs", {**body, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"]}),
        500,
        f"Enforcing job modify index {first['JobModifyIndex']}: job exists with conflicting job modify index",
    )
    assert_text_error(post(fake_nomad, "/v1/jobs", {**body, "EnforceIndex": True}), 500, "job already exists")
    current = fake_nomad.job("cache")
    assert current is not None
    ok = post(fake_nomad, "/v1/jobs", {**body, "EnforceIndex": True, "JobModifyIndex": current["JobModifyIndex"]})
    assert ok.status_code == 200


def test_unchanged_register_keeps_version(fake_nomad: FakeNomad) -> None:
    body = sample("job-register.request")
    a = post(fake_nomad, "/v1/jobs", body).json()
    b = post(fake_nomad, "/v1/jobs", body).json()
    job = fake_nomad.job("cache")
    assert job is not None and job["Version"] == 0 and job["JobModifyIndex"] == a["JobModifyIndex"]
    # Only a new evaluation is written; the reply carries the job's ModifyIndex (moved by pending → running).
    assert b["JobModifyIndex"] == job["ModifyIndex"] > a["JobModifyIndex"] and b["EvalID"] != a["EvalID"]


def test_deregister_and_purge(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 2})
    stopped = requests.delete(url(fake_nomad, "/v1/job/ml-ocr"), timeout=5)
    assert stopped.status_code == 200 and stopped.json()["EvalID"]
    assert get(fake_nomad, "/v1/job/ml-ocr").json()["Status"] == "dead"
    assert fake_nomad.live_count("ml-ocr", "workers") == 0
    purged = requests.delete(url(fake_nomad, "/v1/job/ml-ocr"), params={"purge": "true"}, timeout=5)
    assert purged.status_code == 200
    assert get(fake_nomad, "/v1/job/ml-ocr").status_code == 404
    missing = requests.delete(url(fake_nomad, "/v1/job/ml-ocr"), timeout=5)
    assert missing.status_code == 200 and missing.json() == {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0}


def test_deploy_on_scale_blocks_the_next_scale(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    fake_nomad.deploy_on_scale = True
    assert scale(fake_nomad, "ml-ocr", 2).status_code == 200
    assert_text_error(scale(fake_nomad, "ml-ocr", 3), 400, "active deployment")
    fake_nomad.set_deployment_active("ml-ocr", False)
    assert scale(fake_nomad, "ml-ocr", 3).status_code == 200


def test_scale_without_count_records_only_an_event(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    resp = scale(fake_nomad, "ml-ocr", None, Message="policy error", Error=True)
    assert resp.status_code == 200 and resp.json()["EvalID"] == ""
    (event,) = fake_nomad.events("ml-ocr", "workers")
    assert event["Error"] is True and event["Count"] is None and fake_nomad.group_count("ml-ocr", "workers") == 1


# ---------------------------------------------------------------- parse


def test_parse_hcl_to_json_job(fake_nomad: FakeNomad) -> None:
    resp = post(fake_nomad, "/v1/jobs/parse", {"JobHCL": HCL, "Canonicalize": True})
    assert resp.status_code == 200
    job = resp.json()
    assert set(sample("jobs-parse.response")) <= set(job)
    assert (job["ID"], job["Name"], job["Type"], job["NodePool"]) == ("ocr", "ocr", "service", "gpu")
    assert job["Datacenters"] == ["dc1", "dc2"]
    (tg,) = job["TaskGroups"]
    assert tg["Name"] == "workers" and tg["Count"] == 2
    assert {k: tg["Scaling"][k] for k in ("Min", "Max", "Enabled")} == {"Min": 1, "Max": 10, "Enabled": True}
    assert tg["Constraints"] == [{"LTarget": "", "RTarget": "true", "Operand": "distinct_hosts"}]
    (task,) = tg["Tasks"]
    assert (task["Name"], task["Driver"], task["KillSignal"]) == ("worker", "raw_exec", "SIGTERM")
    assert task["KillTimeout"] == 90_000_000_000
    assert task["Config"]["args"] == ["--project", "ocr-${NOMAD_ALLOC_ID}"]
    assert task["Resources"]["Devices"] == [{"Count": 1, "Name": "nvidia/gpu"}]
    assert task["Resources"]["MemoryMB"] == 2048
    assert task["Templates"][0]["EmbeddedTmpl"] == '{{ with nomadVar "nomad/jobs/ocr" }}{{ .k }}{{ end }}'
    assert task["Templates"][0]["Envvars"] is True
    # the parsed job registers as is
    reg = post(fake_nomad, "/v1/jobs", {"Job": job})
    assert reg.status_code == 200 and fake_nomad.live_count("ocr", "workers") == 2


def test_parse_without_canonicalize_leaves_defaults_empty(fake_nomad: FakeNomad) -> None:
    job = post(fake_nomad, "/v1/jobs/parse", sample("jobs-parse.request")).json()
    assert job["ID"] == "example" and job["Datacenters"] == ["*"] and job["NodePool"] == "default"
    raw = post(fake_nomad, "/v1/jobs/parse", {"JobHCL": 'job "x" {\n group "g" {\n count = 3\n }\n}'}).json()
    assert raw["Datacenters"] is None and raw["NodePool"] is None and raw["TaskGroups"][0]["Count"] == 3


# ---------------------------------------------------------------- fault injection and recording


def test_fail_next_then_normal(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    fake_nomad.fail_next(503, n=2, body="no leader", method="GET", path="/v1/job/ml-ocr")
    assert_text_error(get(fake_nomad, "/v1/job/ml-ocr"), 503, "no leader")
    assert_text_error(get(fake_nomad, "/v1/job/ml-ocr/allocations"), 503, "no leader")  # path prefix
    assert get(fake_nomad, "/v1/job/ml-ocr").status_code == 200


def test_delay_next_applied_or_not(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    fake_nomad.delay_next(apply=True, method="POST")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            url(fake_nomad, "/v1/job/ml-ocr/scale"), json={"Count": 2, "Target": {"Group": "workers"}}, timeout=0.3
        )
    assert fake_nomad.group_count("ml-ocr", "workers") == 2  # applied, only the answer was lost
    fake_nomad.release()
    fake_nomad.delay_next(apply=False, method="POST")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            url(fake_nomad, "/v1/job/ml-ocr/scale"), json={"Count": 3, "Target": {"Group": "workers"}}, timeout=0.3
        )
    fake_nomad.release()
    assert fake_nomad.group_count("ml-ocr", "workers") == 2  # never applied


def test_requests_are_recorded(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-ocr", groups={"workers": 1})
    post(
        fake_nomad,
        "/v1/job/ml-ocr/scale?namespace=default",
        {"Count": 2, "Target": {"Group": "workers"}},
        headers={"X-Nomad-Token": "t"},
    )
    (req,) = fake_nomad.requests_to("POST", "/v1/job/ml-ocr/scale")
    assert req.query == {"namespace": "default"}
    assert req.body == {"Count": 2, "Target": {"Group": "workers"}}
    assert req.header("x-nomad-token") == "t" and req.status == 200


def test_variable_locks(fake_nomad: FakeNomad) -> None:
    """The docs' lock samples round-trip; the exact semantics (nomad-facts §7) are in tests/unit/faults."""
    now = [1000.0]
    fake_nomad.clock = lambda: now[0]
    fake_nomad.namespaces.add("prod")
    lock_url = url(fake_nomad, "/v1/var/example/first")
    acquire = sample("variable-lock-acquire.request")
    acquire["Lock"]["LockDelay"] = "15s"
    got = requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5)
    assert got.status_code == 200 and set(sample("variable-lock-acquire.response")) <= set(got.json())
    lock_id = got.json()["Lock"]["ID"]
    again = requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5)
    conflict_keys = set(sample("variable-lock-conflict.response"))
    assert again.status_code == 409 and set(again.json()) <= conflict_keys  # Items/Lock omitted (omitempty)
    plain = {"Namespace": "prod", "Items": {"a": "b"}}
    assert requests.put(lock_url, json=plain, timeout=5).status_code == 409
    assert requests.put(lock_url, json={**plain, "Lock": {"ID": lock_id}}, timeout=5).status_code == 200
    renew_body = {"Path": "example/first", "Namespace": "prod", "Lock": {"ID": lock_id}}
    renew = {"lock-renew": "", "namespace": "prod"}  # renew reads the namespace from the query only
    renewed = requests.put(lock_url, params=renew, json=renew_body, timeout=5)
    assert renewed.status_code == 200 and set(renewed.json()) == set(sample("variable-lock-renew.response"))
    wrong = {**renew_body, "Lock": {"ID": "nope"}}
    assert_text_error(requests.put(lock_url, params=renew, json=wrong, timeout=5), 409, "locked")
    assert_text_error(
        requests.put(lock_url, params={**renew, "cas": "1"}, json=renew_body, timeout=5), 400, "CAS"
    )
    released = requests.put(lock_url, params={"lock-release": ""}, json=renew_body, timeout=5)
    assert released.status_code == 200 and set(released.json()) == set(sample("variable-lock-release.response"))
    assert_text_error(
        requests.put(lock_url, params=renew, json=renew_body, timeout=5), 409, "doesn't hold a lock"
    )
    # an expired lock cannot be taken before 2×TTL and then the lock-delay have passed
    requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5).raise_for_status()
    now[0] += 16  # past the TTL, not 2×TTL
    assert requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5).status_code == 409
    now[0] += 15  # past 2×TTL: still inside the 15s lock-delay
    assert requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5).status_code == 409
    now[0] += 15
    assert requests.put(lock_url, params={"lock-acquire": ""}, json=acquire, timeout=5).status_code == 200
    assert_text_error(
        requests.put(url(fake_nomad, "/v1/var/missing"), params=renew, json=renew_body, timeout=5),
        404,
        "variable doesn't exist",
    )
