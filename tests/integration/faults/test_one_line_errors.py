"""Fault class 7 (servers): odd answers from Prometheus and Nomad give one clear line, never a traceback.

`forescale tick --json` runs as a process; stderr must hold no traceback and the pool's outcome must name the
cause (not "internal error"). Nothing is ever scaled on an answer forescale cannot read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.hostile import Answer, HostileServer
from tests.fixtures.faults import JOB, FaultWorld, run_forescale


def tick(world: FaultWorld, cfg: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    run = run_forescale(["tick", "-c", str(world.write(cfg)), "--json"], timeout=60)
    assert "Traceback" not in run.err, run.err
    assert run.code in (0, 1), run.text
    (pool,) = json.loads(run.out)["pools"]
    return run, pool


def cause(pool: dict[str, Any]) -> str:
    d = pool.get("decision") or {}
    return f"{pool.get('error') or ''} {d.get('hold_cause') or ''}"


PROMETHEUS_BODIES = {
    "scalar": ({"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "5"]}}, "scalar"),
    "vector": (
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "5"]}]}},
        "vector",
    ),
    "string": ({"status": "success", "data": {"resultType": "string", "result": [1700000000, "x"]}}, "string"),
    "data null": ({"status": "success", "data": None}, "prometheus"),
    "not json": ("<html>proxy login</html>", "prometheus"),
    "values not pairs": (
        {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [1, 2, 3]}]}},
        "number",
    ),
}


@pytest.mark.parametrize("kind", list(PROMETHEUS_BODIES))
def test_odd_prometheus_answers_hold_with_their_cause(fault_world: FaultWorld, kind: str) -> None:
    body, word = PROMETHEUS_BODIES[kind]
    fault_world.script.answer = lambda _req: Answer(200, body)
    run, pool = tick(fault_world)
    assert run.code == 0, run.text
    assert pool["decision"]["held"] is True and fault_world.scale_calls() == []
    assert "internal error" not in cause(pool)
    assert word in cause(pool).lower(), cause(pool)


NOMAD_JOB_BODIES = {
    "bad json": ("{not json", "json"),
    "a list": ("[]", "job"),
    "null": ("null", "job"),
    "a string": ('"ok"', "job"),
}


@pytest.mark.parametrize("kind", list(NOMAD_JOB_BODIES))
def test_odd_nomad_job_answers_fail_the_pool_in_one_line(fault_world: FaultWorld, kind: str) -> None:
    body, word = NOMAD_JOB_BODIES[kind]
    fault_world.nomad.fail_next(200, 5, body=body, method="GET", path=f"/v1/job/{JOB}")
    run, pool = tick(fault_world)
    assert run.code == 1, run.text
    assert pool["status"] == "failed" and fault_world.scale_calls() == []
    assert "internal error" not in cause(pool) and word in cause(pool).lower(), cause(pool)


def _proxy(world: FaultWorld, rewrite: Any) -> HostileServer:
    """A Nomad that answers like the fake, except what ``rewrite(path, body)`` changes."""
    import requests

    def respond(req: Any) -> Answer:
        got = requests.request(
            req.method,
            world.nomad.address + req.path,
            params=req.query,
            data=req.body or None,
            timeout=5,
            headers={"Content-Type": "application/json"},
        )
        body: Any = got.json() if got.headers.get("Content-Type", "").startswith("application/json") else got.text
        status, body = rewrite(req, got.status_code, body)
        return Answer(status, body, content_type="application/json" if not isinstance(body, str) else "text/plain")

    return HostileServer(respond).start()


def test_a_job_without_job_modify_index_is_not_scaled(fault_world: FaultWorld) -> None:
    def rewrite(req: Any, status: int, body: Any) -> tuple[int, Any]:
        if req.method == "GET" and req.path == f"/v1/job/{JOB}" and isinstance(body, dict):
            body.pop("JobModifyIndex", None)
        return status, body

    fault_world.script.value = lambda t, end: 150.0
    proxy = _proxy(fault_world, rewrite)
    try:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = proxy.url
        run, pool = tick(fault_world, cfg)
    finally:
        proxy.stop()
    assert run.code == 1
    assert fault_world.scale_calls() == []
    assert "JobModifyIndex" in cause(pool) and "internal error" not in cause(pool)


def test_allocations_that_are_not_a_list_fail_the_pool(fault_world: FaultWorld) -> None:
    def rewrite(req: Any, status: int, body: Any) -> tuple[int, Any]:
        if req.path.endswith("/allocations"):
            return 200, {"oops": True}
        return status, body

    proxy = _proxy(fault_world, rewrite)
    try:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = proxy.url
        run, pool = tick(fault_world, cfg)
    finally:
        proxy.stop()
    assert run.code == 1 and pool["status"] == "failed"
    assert "internal error" not in cause(pool) and "allocations" in cause(pool).lower()


def test_task_groups_null_is_a_clear_failure(fault_world: FaultWorld) -> None:
    def rewrite(req: Any, status: int, body: Any) -> tuple[int, Any]:
        if req.method == "GET" and req.path == f"/v1/job/{JOB}" and isinstance(body, dict):
            body["TaskGroups"] = None
        return status, body

    proxy = _proxy(fault_world, rewrite)
    try:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = proxy.url
        run, pool = tick(fault_world, cfg)
    finally:
        proxy.stop()
    assert run.code == 1 and "workers" in cause(pool) and "internal error" not in cause(pool)


def test_an_unreadable_scale_answer_is_not_a_traceback(fault_world: FaultWorld) -> None:
    fault_world.script.value = lambda t, end: 150.0

    def rewrite(req: Any, status: int, body: Any) -> tuple[int, Any]:
        if req.method in ("POST", "PUT") and req.path.endswith("/scale"):
            return 200, "{truncated"
        return status, body

    proxy = _proxy(fault_world, rewrite)
    try:
        cfg = fault_world.base_config()
        cfg["nomad"]["address"] = proxy.url
        _run, pool = tick(fault_world, cfg)
    finally:
        proxy.stop()
    assert "internal error" not in cause(pool)
    assert fault_world.count() == 15  # the scale went through; only its answer was unreadable
