"""NomadTarget and NomadClient against the fake Nomad over real HTTP (python-nomad underneath)."""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler import __version__
from autoscaler.core.clock import ManualClock
from autoscaler.core.decision import Decision, Reason
from autoscaler.core.errors import (
    CasConflict,
    DeploymentActive,
    NomadAuthError,
    NomadError,
    NomadNotFound,
    NomadUnavailable,
    ScalingBoundsError,
)
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.nomad.client import NomadClient
from autoscaler.policy.tick import run_tick
from autoscaler.targets.nomad import NomadTarget, scale_request
from autoscaler.wiring import build_deps
from tests.fakes.nomad import FakeNomad
from tests.helpers import T0, FlatMetrics, make_config, make_deps, pool_dict

JOB, GROUP, SCALE_PATH = "ml-ocr", "workers", "/v1/job/ml-ocr/scale"
TOKEN_ENV = "FORESCALE_TEST_NOMAD_TOKEN"
SECRET = "3f1c0d9e-secret-token-value"


@pytest.fixture
def pool() -> Any:
    return make_config(pool_dict("ocr")).pool("ocr")


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def target(nomad_settings: NomadSettings, sleeps: list[float]) -> NomadTarget:
    return NomadTarget(nomad_settings, sleep=sleeps.append)


def decision(current: int, desired: int, **over: Any) -> Decision:
    fields: dict[str, Any] = {
        "pool": "ocr",
        "at": T0,
        "current": current,
        "desired": desired,
        "reasons": (Reason("forecast", "forecast 41.2 rps needs 5 nodes", 5),),
        "forecast_rps": 41.23456,
        "observed_rps": 30.0,
        "forecast_nodes": 5,
        "model": "trend_lr",
    }
    fields.update(over)
    return Decision(**fields)


def scale_posts(fake: FakeNomad) -> list[Any]:
    return fake.requests_to("POST", SCALE_PATH)


# ---------------------------------------------------------------- the pool's state: desired, placed, queued


def test_placed_is_running_plus_pending_only(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 3, "sidecar": 2})
    fake_nomad.set_alloc_status(JOB, "pending", group=GROUP, limit=1)
    fake_nomad.add_alloc(JOB, GROUP, client_status="complete", desired_status="stop")
    fake_nomad.add_alloc(JOB, GROUP, client_status="running", desired_status="stop")  # being stopped
    fake_nomad.add_alloc(JOB, GROUP, client_status="complete")
    fake_nomad.add_alloc(JOB, GROUP, client_status="lost")
    state = target.status(pool)
    assert (state.desired, state.placed, state.running, state.queued, state.rescheduling) == (3, 3, 2, 0, 0)


def test_status_keeps_desired_placed_queued_and_rescheduling_apart(
    fake_nomad: FakeNomad, target: NomadTarget, pool: Any
) -> None:
    fake_nomad.auto_nodes = False  # three GPU nodes, one allocation per node
    for i in range(3):
        fake_nomad.add_node(f"gpu-{i}", node_pool="gpu")
    fake_nomad.add_job(JOB, groups={GROUP: 3}, gpus=1, distinct_hosts=True, node_pool="gpu")
    fake_nomad.set_alloc_status(JOB, "failed", only="running", limit=1)  # rescheduled only after its delay
    state = target.status(pool)
    assert (state.desired, state.placed, state.queued, state.rescheduling) == (3, 2, 0, 1)
    assert state.queued_reason is None
    paths = [r.path for r in fake_nomad.requests]
    assert paths == [f"/v1/job/{JOB}", f"/v1/job/{JOB}/allocations", f"/v1/job/{JOB}/summary"]

    # Nomad's count goes to 5: the failed allocation's node is free again (one placed there), one is queued,
    # and the failed one still waits for its reschedule delay.
    fake_nomad.clear_requests()
    NomadClient(target.settings).scale_job(JOB, {"Count": 5, "Target": {"Group": GROUP}})
    state = target.status(pool)
    assert (state.desired, state.placed, state.queued, state.rescheduling) == (5, 3, 1, 1)
    assert state.queued_reason == "3 of 3 node(s) in pool 'gpu' evaluated; 3 ruled out by distinct_hosts"
    assert fake_nomad.requests[-1].path == f"/v1/job/{JOB}/evaluations"


def test_unknown_job_is_not_found_not_zero(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    with pytest.raises(NomadNotFound) as err:
        target.status(pool)
    assert "job 'ml-ocr' not found in namespace 'default'" in str(err.value)


def test_unknown_group_names_the_groups(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={"gpu": 1})
    with pytest.raises(NomadNotFound) as err:
        target.status(pool)
    assert "task group 'workers' not found in job 'ml-ocr'" in str(err.value)
    assert "its groups: gpu" in str(err.value) and "pools[ocr].nomad.group" in str(err.value)


def test_other_namespace(fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any) -> None:
    fake_nomad.add_job(JOB, namespace="ml", groups={GROUP: 2})
    settings = nomad_settings.model_copy(update={"namespace": "ml"})
    target = NomadTarget(settings, sleep=lambda _s: None)
    assert target.status(pool).placed == 2
    target.scale(pool, decision(2, 4))
    assert fake_nomad.group_count(JOB, GROUP, namespace="ml") == 4
    assert {r.query.get("namespace") for r in fake_nomad.requests} == {"ml"}


# ---------------------------------------------------------------- scaling


def test_scale_sends_exactly_the_documented_body(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 3}, scaling={GROUP: (1, 20)})
    job = fake_nomad.job(JOB)
    assert job is not None
    d = decision(3, 5, placed=3, queued=0)
    note = target.scale(pool, d)
    (req,) = scale_posts(fake_nomad)
    assert req.body == {
        "Count": 5,
        "Target": {"Group": "workers"},
        "Message": "ocr: 3 → 5: forecast 41.2 rps needs 5 nodes",
        "Error": False,
        "Meta": {
            "forescale_version": __version__,
            "pool": "ocr",
            "previous_count": 3,
            "placed": 3,
            "queued": 0,
            "forecast_rps": 41.235,
            "observed_rps": 30.0,
            "forecast_nodes": 5,
            "model": "trend_lr",
            "reasons": "forecast",
        },
        "JobModifyIndex": job["JobModifyIndex"],
    }
    assert req.query == {"namespace": "default"}
    assert req.header("X-Nomad-Token") is None  # no token configured, none sent
    assert fake_nomad.group_count(JOB, GROUP) == 5 and fake_nomad.live_count(JOB, GROUP) == 5
    (event,) = fake_nomad.events(JOB, GROUP)
    assert note == f"eval {event['EvalID'][:8]}"
    assert event["PreviousCount"] == 3 and event["Message"] == req.body["Message"]
    assert target.status(pool).placed == 5  # 3 running + 2 pending


def test_long_message_is_truncated(pool: Any) -> None:
    reasons = tuple(Reason("r", "x" * 100) for _ in range(10))
    body = scale_request(pool, decision(1, 2, reasons=reasons))
    assert len(body["Message"]) == 480 and body["Message"].endswith("…")


def test_active_deployment_defers_the_tick(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, sleeps: list[float]
) -> None:
    cfg = make_config(pool_dict("ocr"))
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    fake_nomad.set_deployment_active(JOB, True)
    target = NomadTarget(nomad_settings, sleep=sleeps.append)
    with pytest.raises(DeploymentActive):
        target.scale(cfg.pool("ocr"), decision(2, 13))
    deps = make_deps(cfg, FlatMetrics({cfg.pool("ocr").query: 100.0}), target=target)
    (outcome,) = run_tick(deps).outcomes
    assert outcome.status == "deferred"
    assert outcome.error is not None and "active deployment" in outcome.error and "retry next tick" in outcome.error
    assert len(scale_posts(fake_nomad)) == 2 and sleeps == []  # one try per call, no spinning
    assert fake_nomad.group_count(JOB, GROUP) == 2
    fake_nomad.set_deployment_active(JOB, False)
    (outcome,) = run_tick(deps).outcomes
    assert outcome.status == "applied" and outcome.decision is not None and outcome.decision.desired > 2
    assert fake_nomad.group_count(JOB, GROUP) == outcome.decision.desired


def test_bounds_error_is_clear(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2}, scaling={GROUP: (1, 8)})
    with pytest.raises(ScalingBoundsError) as err:
        target.scale(pool, decision(2, 13))
    message = str(err.value)
    assert "group count was greater than scaling policy maximum: 13 > 8" in message
    assert "scaling { min, max }" in message and "job 'ml-ocr'" in message
    assert len(scale_posts(fake_nomad)) == 1


def test_missing_job_on_scale(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    with pytest.raises(NomadNotFound) as err:
        target.scale(pool, decision(2, 3))
    assert "job 'ml-ocr' not found in namespace 'default'" in str(err.value)


def test_one_500_then_success_scales_once(fake_nomad: FakeNomad, target: NomadTarget, pool: Any, sleeps: list) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    fake_nomad.fail_next(500, method="POST", path=SCALE_PATH)
    note = target.scale(pool, decision(2, 4))
    assert note.startswith("eval ")
    assert [r.status for r in scale_posts(fake_nomad)] == [500, 200]
    assert sleeps == [0.5]
    assert len(fake_nomad.events(JOB, GROUP)) == 1
    job = fake_nomad.job(JOB)
    assert job is not None and job["Version"] == 1 and job["TaskGroups"][0]["Count"] == 4


def test_persistent_500_gives_up_and_the_next_pool_runs(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, sleeps: list[float]
) -> None:
    cfg = make_config(pool_dict("ocr"), pool_dict("asr"))
    fake_nomad.add_job("ml-ocr", groups={GROUP: 2})
    fake_nomad.add_job("ml-asr", groups={GROUP: 2})
    fake_nomad.fail_next(500, n=100, body="rpc error: raft apply failed", method="POST", path=SCALE_PATH)
    target = NomadTarget(nomad_settings, sleep=sleeps.append)
    metrics = FlatMetrics({cfg.pool("ocr").query: 100.0, cfg.pool("asr").query: 100.0})
    report = run_tick(make_deps(cfg, metrics, target=target))
    by_pool = {o.pool: o for o in report.outcomes}
    assert by_pool["ocr"].status == "failed"
    error = by_pool["ocr"].error or ""
    wanted = by_pool["ocr"].decision.desired if by_pool["ocr"].decision else -1
    assert f"not scaled to {wanted} after 3 attempt(s)" in error and "answered 500" in error and "raft apply" in error
    assert len(scale_posts(fake_nomad)) == nomad_settings.retries + 1 == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff, injected: no real sleep
    assert fake_nomad.group_count("ml-ocr", GROUP) == 2
    asr = by_pool["asr"]
    assert asr.status == "applied" and asr.decision is not None
    assert fake_nomad.group_count("ml-asr", GROUP) == asr.decision.desired > 2


def test_lost_answer_of_an_applied_scale_is_not_resent(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any, sleeps: list[float]
) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    settings = nomad_settings.model_copy(update={"timeout": timedelta(milliseconds=300)})
    target = NomadTarget(settings, sleep=sleeps.append)
    fake_nomad.delay_next(apply=True, method="POST", path=SCALE_PATH)
    note = target.scale(pool, decision(2, 6))
    fake_nomad.release()
    assert "confirmed by re-reading" in note
    assert len(scale_posts(fake_nomad)) == 1
    assert len(fake_nomad.events(JOB, GROUP)) == 1 and fake_nomad.group_count(JOB, GROUP) == 6
    job = fake_nomad.job(JOB)
    assert job is not None and job["Version"] == 1


def test_timeout_before_apply_is_resent_once(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any, sleeps: list[float]
) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    settings = nomad_settings.model_copy(update={"timeout": timedelta(milliseconds=300)})
    target = NomadTarget(settings, sleep=sleeps.append)
    fake_nomad.delay_next(apply=False, method="POST", path=SCALE_PATH)
    note = target.scale(pool, decision(2, 6))
    assert note.startswith("eval ") and "confirmed" not in note
    assert len(scale_posts(fake_nomad)) == 2 and len(fake_nomad.events(JOB, GROUP)) == 1
    assert fake_nomad.group_count(JOB, GROUP) == 6 and sleeps == [0.5]


def test_concurrent_change_is_not_overwritten(fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    fake_nomad.fail_next(502, method="POST", path=SCALE_PATH)

    def someone_else_scales(_seconds: float) -> None:  # runs between our attempts (the backoff hook)
        job = fake_nomad.job(JOB)
        assert job is not None
        job["TaskGroups"][0]["Count"] = 7
        fake_nomad.register(job)

    target = NomadTarget(nomad_settings, sleep=someone_else_scales)
    with pytest.raises(NomadError) as err:
        target.scale(pool, decision(2, 4))
    assert "changed while scaling (count now 7" in str(err.value)
    assert fake_nomad.group_count(JOB, GROUP) == 7 and len(scale_posts(fake_nomad)) == 1


def test_connection_refused_is_unavailable_after_retries(pool: Any, sleeps: list[float]) -> None:
    with FakeNomad() as fake:
        address = fake.address
    settings = NomadSettings(address=address, token_env=TOKEN_ENV, timeout=timedelta(seconds=1), retries=2)
    target = NomadTarget(settings, sleep=sleeps.append)
    with pytest.raises(NomadUnavailable) as err:
        target.status(pool)
    assert f"cannot reach Nomad at {address}" in str(err.value) and "connection refused" in str(err.value)
    assert "(address from nomad.address in the config;" in str(err.value)
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NOMAD_ADDR": "http://127.0.0.1:1"}, "address from $NOMAD_ADDR"),
        ({}, "address from the default: neither nomad.address nor $NOMAD_ADDR is set"),
    ],
)
def test_an_unreachable_nomad_says_where_the_address_came_from(
    pool: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("NOMAD_ADDR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = NomadSettings(token_env=TOKEN_ENV, timeout=timedelta(seconds=1), retries=0)
    with pytest.raises(NomadUnavailable) as err:
        NomadTarget(settings, sleep=lambda _s: None).status(pool)
    assert expected in str(err.value)


# ---------------------------------------------------------------- ACL and the token


def test_missing_token_names_the_env_var(fake_nomad: FakeNomad, target: NomadTarget, pool: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    fake_nomad.enable_acl(SECRET)
    with pytest.raises(NomadAuthError) as err:
        target.status(pool)
    assert "no ACL token is set" in str(err.value) and TOKEN_ENV in str(err.value)
    assert "namespace 'default'" in str(err.value)


def test_unknown_token(fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any, monkeypatch: Any) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    fake_nomad.enable_acl(SECRET)
    monkeypatch.setenv(TOKEN_ENV, "wrong-" + SECRET)
    with pytest.raises(NomadAuthError) as err:
        NomadTarget(nomad_settings, sleep=lambda _s: None).status(pool)
    assert "ACL token not found" in str(err.value) and f"${TOKEN_ENV}" in str(err.value)
    assert SECRET not in str(err.value)


def test_token_without_scale_capability(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any, monkeypatch: Any
) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    fake_nomad.enable_acl("root")
    fake_nomad.add_token(SECRET, jobs={"default": ["read-job"]})
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    target = NomadTarget(nomad_settings, sleep=lambda _s: None)
    assert target.status(pool).placed == 1
    with pytest.raises(NomadAuthError) as err:
        target.scale(pool, decision(1, 2))
    assert "Permission denied" in str(err.value) and "scale-job" in str(err.value)
    assert "namespace 'default'" in str(err.value) and SECRET not in str(err.value)


def test_token_is_sent_but_never_logged(
    fake_nomad: FakeNomad,
    nomad_settings: NomadSettings,
    pool: Any,
    monkeypatch: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    fake_nomad.enable_acl(SECRET)
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    target = NomadTarget(nomad_settings, sleep=lambda _s: None)
    target.scale(pool, decision(1, 2))
    assert {r.header("X-Nomad-Token") for r in fake_nomad.requests} == {SECRET}
    fake_nomad.fail_next(500, n=10, method="POST", path=SCALE_PATH)
    with pytest.raises(NomadUnavailable) as err:
        target.scale(pool, decision(2, 3))
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    assert caplog.records and SECRET not in caplog.text
    assert SECRET not in repr(target.client.settings)


# ---------------------------------------------------------------- TLS and client construction


def test_tls_verification_is_on_by_default(monkeypatch: Any) -> None:
    monkeypatch.setenv("NOMAD_TOKEN", "from-python-nomad-fallback")
    monkeypatch.setenv("NOMAD_NAMESPACE", "surprise")
    client = NomadClient(NomadSettings(address="https://nomad.internal:4646", token_env=TOKEN_ENV))
    assert client.session.verify is True
    assert client.api.job.verify is True and client.api.jobs.verify is True
    assert client._raw.verify is True
    # python-nomad's NOMAD_* environment fallbacks never override the config
    assert client.api.job.token is None and client.api.job.namespace == "default"


def test_ca_cert_and_mtls(tmp_path: Path) -> None:
    settings = NomadSettings(
        address="https://nomad.internal:4646",
        token_env=TOKEN_ENV,
        ca_cert=tmp_path / "ca.pem",
        client_cert=tmp_path / "cli.pem",
        client_key=tmp_path / "cli-key.pem",
    )
    client = NomadClient(settings)
    assert client.session.verify == str(tmp_path / "ca.pem") == client.api.job.verify
    assert client.api.job.cert == (str(tmp_path / "cli.pem"), str(tmp_path / "cli-key.pem"))
    off = NomadClient(NomadSettings(address="https://n:4646", token_env=TOKEN_ENV, verify_tls=False))
    assert off.session.verify is False and off.api.job.verify is False


# ---------------------------------------------------------------- generic helpers (Variables store, deploy)


def test_generic_helpers_and_cas_conflict(fake_nomad: FakeNomad, nomad_client: NomadClient) -> None:
    client = nomad_client
    put = client.put_json("var/forescale/overrides/ocr", {"Items": {"pin": "5"}}, {"cas": 0})
    assert put.status == 200 and put.body["Items"] == {"pin": "5"}
    assert put.nomad_index == put.body["ModifyIndex"]
    got = client.get_json("/v1/var/forescale/overrides/ocr")
    assert got.body == put.body and got.nomad_index is not None
    with pytest.raises(CasConflict) as err:
        client.put_json("var/forescale/overrides/ocr", {"Items": {"pin": "6"}}, {"cas": 0})
    assert err.value.current is not None and err.value.current["Items"] == {"pin": "5"}
    assert err.value.status == 409
    deleted = client.delete("var/forescale/overrides/ocr", {"cas": put.body["ModifyIndex"]})
    assert (deleted.status, deleted.body) == (204, None)
    with pytest.raises(NomadNotFound) as missing:
        client.get_json("var/forescale/overrides/ocr")
    assert "variable 'forescale/overrides/ocr' not found" in str(missing.value)
    with pytest.raises(NomadError) as bad:
        client.put_json("var/x", {"Items": {}})
    assert "variable missing required Items object" in str(bad.value) and bad.value.status == 400


def test_reads_retry_but_writes_do_not(fake_nomad: FakeNomad, nomad_settings: NomadSettings) -> None:
    sleeps: list[float] = []
    client = NomadClient(nomad_settings, sleep=sleeps.append)
    fake_nomad.fail_next(503, n=2, method="GET", path="/v1/vars")
    assert client.get_json("vars", {"prefix": "x"}).body == []
    assert sleeps == [0.5, 1.0]
    fake_nomad.fail_next(503, n=1, method="PUT")
    with pytest.raises(NomadUnavailable):
        client.put_json("var/x", {"Items": {"a": "b"}})
    assert fake_nomad.variable("x") is None and len(fake_nomad.requests_to("PUT")) == 1
    assert client.put_json("var/x", {"Items": {"a": "b"}}, retry=True).status == 200


def test_unknown_region_is_a_config_error_not_retried(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings, pool: Any, sleeps: list[float]
) -> None:
    fake_nomad.add_job(JOB, groups={GROUP: 1})
    settings = nomad_settings.model_copy(update={"region": "mars"})
    with pytest.raises(NomadError) as err:
        NomadTarget(settings, sleep=sleeps.append).status(pool)
    assert not isinstance(err.value, NomadUnavailable)
    assert "no path to region 'mars'" in str(err.value) and "nomad.region" in str(err.value)
    assert sleeps == [] and fake_nomad.requests[0].query["region"] == "mars"


def test_register_validation_error_is_one_line(fake_nomad: FakeNomad, nomad_client: NomadClient) -> None:
    job = {"ID": "bad", "TaskGroups": [{"Name": "g", "Count": 5, "Scaling": {"Min": 1, "Max": 3}, "Tasks": []}]}
    with pytest.raises(NomadError) as err:
        nomad_client.post_json("jobs", {"Job": job})
    assert err.value.status == 500 and not isinstance(err.value, NomadUnavailable)  # not retried: not transient
    assert len(fake_nomad.requests_to("POST", "/v1/jobs")) == 1
    assert "\n" not in str(err.value) and "2 errors occurred: * Task group g validation failed" in str(err.value)
    assert err.value.body.startswith("2 errors occurred:\n\t* ")


def test_wiring_builds_a_working_nomad_target(fake_nomad: FakeNomad, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(TOKEN_ENV, SECRET)
    fake_nomad.enable_acl(SECRET)
    fake_nomad.add_job(JOB, groups={GROUP: 2})
    cfg = make_config(
        pool_dict("ocr"),
        nomad={"address": fake_nomad.address, "token_env": TOKEN_ENV, "timeout": "2s"},
        audit_log=str(tmp_path / "audit.jsonl"),
        overrides={"path": str(tmp_path / "overrides.json")},
    )
    deps = build_deps(cfg, clock=ManualClock(T0), notifiers=[])
    assert isinstance(deps.target, NomadTarget) and deps.target.client.session.verify is True
    deps.metrics = FlatMetrics({cfg.pool("ocr").query: 100.0})
    (outcome,) = run_tick(deps).outcomes
    assert outcome.status == "applied" and outcome.decision is not None
    assert fake_nomad.group_count(JOB, GROUP) == outcome.decision.desired != 2
    assert outcome.note.startswith("eval ")


def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "nomad.pem", tmp_path / "nomad-key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    args += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the verify_tls=False case
def test_tls_is_verified_against_a_real_https_server(tmp_path: Path, pool: Any) -> None:
    cert, key = self_signed_cert(tmp_path)
    with FakeNomad(tls=(str(cert), str(key))) as fake:
        fake.add_job(JOB, groups={GROUP: 2})
        base = {"address": fake.address, "token_env": TOKEN_ENV, "timeout": timedelta(seconds=2), "retries": 0}
        with pytest.raises(NomadUnavailable) as err:
            NomadTarget(NomadSettings(**base)).status(pool)
        assert "TLS handshake failed" in str(err.value) and "nomad.ca_cert" in str(err.value)
        assert NomadTarget(NomadSettings(**base, ca_cert=cert)).status(pool).placed == 2
        assert NomadTarget(NomadSettings(**base, verify_tls=False)).status(pool).placed == 2
