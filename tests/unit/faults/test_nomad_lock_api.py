"""The fake Nomad's Variables lock API against Nomad's source (docs/nomad-facts.md §7).

Leader election is only as good as the fake it is tested on: TTL/LockDelay formats and bounds, 409 bodies,
expiry after 2×TTL then LockDelay, namespace precedence, and that a locked variable cannot be deleted.
``fake.clock`` is a ManualClock-like list: nothing sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes.nomad import FakeNomad

PATH = "forescale/leader"
ZERO_KEYS = {"Namespace", "Path", "CreateIndex", "CreateTime", "ModifyIndex", "ModifyTime"}


@pytest.fixture
def now(fake_nomad: FakeNomad) -> list[float]:
    t = [1000.0]
    fake_nomad.clock = lambda: t[0]
    return t


def url(fake: FakeNomad, path: str = PATH) -> str:
    return f"{fake.address}/v1/var/{path}"


def put(fake: FakeNomad, op: str | None, body: Any, path: str = PATH, **query: str) -> requests.Response:
    params = {**query}
    if op:
        params[op] = ""
    return requests.put(url(fake, path), params=params, json=body, timeout=5)


def acquire(fake: FakeNomad, lock: dict[str, Any] | None = None, **extra: Any) -> requests.Response:
    body: dict[str, Any] = {"Path": PATH, **extra}
    if lock is not None:
        body["Lock"] = lock
    return put(fake, "lock-acquire", body)


def text_error(resp: requests.Response, status: int, text: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    assert resp.text == text, repr(resp.text)


def zero_value(resp: requests.Response, ns: str = "default") -> None:
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert set(body) >= ZERO_KEYS and set(body) <= ZERO_KEYS | {"Items", "Lock"}
    assert body["Namespace"] == ns and body["Path"] == PATH
    assert body["CreateIndex"] == body["ModifyIndex"] == body["CreateTime"] == body["ModifyTime"] == 0
    assert body.get("Items") is None and body.get("Lock") is None


def test_acquire_defaults_ttl_and_delay_to_15s_and_needs_no_items(fake_nomad: FakeNomad, now: list[float]) -> None:
    got = acquire(fake_nomad)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["Lock"]["TTL"] == "15s" and body["Lock"]["LockDelay"] == "15s"
    assert len(body["Lock"]["ID"]) == 36
    assert "Items" not in body


def test_durations_are_echoed_in_go_format_and_accept_nanoseconds(fake_nomad: FakeNomad, now: list[float]) -> None:
    got = acquire(fake_nomad, {"TTL": "1m", "LockDelay": 90 * 10**9})
    assert got.status_code == 200, got.text
    assert got.json()["Lock"]["TTL"] == "1m0s" and got.json()["Lock"]["LockDelay"] == "1m30s"


@pytest.mark.parametrize("ttl", ["5s", "25h", 9 * 10**9])
def test_ttl_outside_10s_to_24h_is_a_double_wrapped_400(fake_nomad: FakeNomad, now: list[float], ttl: Any) -> None:
    text_error(
        acquire(fake_nomad, {"TTL": ttl}),
        400,
        "RPC Error:: 400,1 error occurred:\n\t* TTL must be between 10 seconds and 24 hours\n\n",
    )


@pytest.mark.parametrize("delay", ["0s", "48h"])
def test_lock_delay_has_no_bounds_beyond_non_negative(fake_nomad: FakeNomad, now: list[float], delay: str) -> None:
    assert acquire(fake_nomad, {"TTL": "10s", "LockDelay": delay}).status_code == 200


def test_negative_lock_delay_is_rejected(fake_nomad: FakeNomad, now: list[float]) -> None:
    got = acquire(fake_nomad, {"TTL": "10s", "LockDelay": "-1s"})
    assert got.status_code == 400 and "Lock delay and TTL must be positive" in got.text


def test_a_client_supplied_id_is_kept_and_the_holder_may_reacquire(fake_nomad: FakeNomad, now: list[float]) -> None:
    lock_id = "8c4b6a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21"
    first = acquire(fake_nomad, {"ID": lock_id})
    assert first.json()["Lock"]["ID"] == lock_id
    again = acquire(fake_nomad, {"ID": lock_id})
    assert again.status_code == 200 and again.json()["Lock"]["ID"] == lock_id


def test_a_second_holder_gets_the_zero_value_409(fake_nomad: FakeNomad, now: list[float]) -> None:
    assert acquire(fake_nomad).status_code == 200
    zero_value(acquire(fake_nomad))


def test_acquire_overwrites_the_items(fake_nomad: FakeNomad, now: list[float]) -> None:
    fake_nomad.put_variable(PATH, {"old": "x"})
    got = acquire(fake_nomad, Items={"holder": "a"})
    assert got.json()["Items"] == {"holder": "a"}
    lock_id = got.json()["Lock"]["ID"]
    assert acquire(fake_nomad, {"ID": lock_id}).status_code == 200  # no Items this time
    assert (fake_nomad.variable(PATH) or {}).get("Items") in (None, {})


def test_renew_errors(fake_nomad: FakeNomad, now: list[float]) -> None:
    text_error(put(fake_nomad, "lock-renew", {"Lock": {"ID": "x"}}), 404, "variable doesn't exist")
    fake_nomad.put_variable(PATH, {"a": "b"})
    text_error(put(fake_nomad, "lock-renew", {"Lock": {"ID": "x"}}), 409, "variable doesn't hold a lock")
    lock_id = acquire(fake_nomad).json()["Lock"]["ID"]
    text_error(put(fake_nomad, "lock-renew", {"Lock": {"ID": "other"}}), 409, "attempting to modify locked variable")
    text_error(put(fake_nomad, "lock-renew", {"Lock": {}}), 500, "1 error occurred:\n\t* missing lock ID\n\n")
    assert put(fake_nomad, "lock-renew", {"Lock": {"ID": lock_id}}).status_code == 200


def test_renew_is_not_a_write(fake_nomad: FakeNomad, now: list[float]) -> None:
    got = acquire(fake_nomad, Items={"a": "b"})
    index = got.json()["ModifyIndex"]
    renewed = put(fake_nomad, "lock-renew", {"Lock": {"ID": got.json()["Lock"]["ID"]}})
    assert renewed.status_code == 200
    body = renewed.json()
    assert body["ModifyIndex"] == index and "Items" not in body and body["Lock"]["ID"] == got.json()["Lock"]["ID"]
    assert "X-Nomad-Index" not in renewed.headers


def test_renew_reads_the_namespace_from_the_query_only(fake_nomad: FakeNomad, now: list[float]) -> None:
    fake_nomad.namespaces.add("prod")
    got = put(fake_nomad, "lock-acquire", {"Namespace": "prod", "Path": PATH})
    assert got.status_code == 200 and got.json()["Namespace"] == "prod"
    body = {"Namespace": "prod", "Lock": {"ID": got.json()["Lock"]["ID"]}}
    text_error(put(fake_nomad, "lock-renew", body), 404, "variable doesn't exist")
    assert put(fake_nomad, "lock-renew", body, namespace="prod").status_code == 200


def test_acquire_takes_the_body_namespace_over_the_query(fake_nomad: FakeNomad, now: list[float]) -> None:
    fake_nomad.namespaces.add("prod")
    got = put(fake_nomad, "lock-acquire", {"Namespace": "prod", "Path": PATH}, namespace="default")
    assert got.status_code == 200 and got.json()["Namespace"] == "prod"
    assert fake_nomad.variable(PATH, namespace="prod") is not None
    assert fake_nomad.variable(PATH) is None


def test_release_errors_and_success(fake_nomad: FakeNomad, now: list[float]) -> None:
    text_error(put(fake_nomad, "lock-release", {"Lock": {"ID": "x"}}), 404, "variable doesn't exist")
    fake_nomad.put_variable(PATH, {"a": "b"})
    text_error(put(fake_nomad, "lock-release", {"Lock": {"ID": "x"}}), 409, "variable doesn't hold a lock")
    got = acquire(fake_nomad, Items={"holder": "a"})
    lock_id = got.json()["Lock"]["ID"]
    text_error(
        put(fake_nomad, "lock-release", {"Lock": {"ID": lock_id}, "Items": {}}),
        400,
        "RPC Error:: 400,lock release operation doesn't take variable items",
    )
    text_error(put(fake_nomad, "lock-release", {"Path": PATH}), 400, "RPC Error:: 400,missing lock information")
    zero_value(put(fake_nomad, "lock-release", {"Lock": {"ID": "other"}}))
    released = put(fake_nomad, "lock-release", {"Lock": {"ID": lock_id}, "Items": None})
    assert released.status_code == 200
    assert set(released.json()) == ZERO_KEYS and released.json()["ModifyIndex"] > got.json()["ModifyIndex"]
    stored = fake_nomad.variable(PATH) or {}
    assert stored.get("Items") == {"holder": "a"} and not stored.get("Lock")


def test_expiry_takes_twice_the_ttl_then_the_lock_delay(fake_nomad: FakeNomad, now: list[float]) -> None:
    got = acquire(fake_nomad, {"TTL": "10s", "LockDelay": "5s"}, Items={"holder": "a"})
    lock_id = got.json()["Lock"]["ID"]
    now[0] += 15  # past the TTL, not past 2×TTL: still held, and renewable
    zero_value(acquire(fake_nomad))
    assert put(fake_nomad, "lock-renew", {"Lock": {"ID": lock_id}}).status_code == 200
    now[0] += 20.5  # 2×TTL after the renew: the server timer fired
    text_error(put(fake_nomad, "lock-renew", {"Lock": {"ID": lock_id}}), 409, "attempting to modify locked variable")
    zero_value(acquire(fake_nomad))  # inside the lock-delay the lock is still there
    now[0] += 5  # …and the delay is over: released by the server, Items kept
    stored = fake_nomad.variable(PATH) or {}
    assert stored.get("Items") == {"holder": "a"}
    assert acquire(fake_nomad).status_code == 200


def test_a_locked_variable_cannot_be_deleted(fake_nomad: FakeNomad, now: list[float]) -> None:
    acquire(fake_nomad, Items={"a": "b"})
    zero_value(requests.delete(url(fake_nomad), timeout=5))
    assert fake_nomad.variable(PATH) is not None


def test_writing_a_locked_variable_needs_the_holders_id(fake_nomad: FakeNomad, now: list[float]) -> None:
    lock_id = acquire(fake_nomad, Items={"a": "b"}).json()["Lock"]["ID"]
    zero_value(put(fake_nomad, None, {"Path": PATH, "Items": {"a": "c"}}))
    assert put(fake_nomad, None, {"Path": PATH, "Items": {"a": "c"}, "Lock": {"ID": lock_id}}).status_code == 200


def test_a_plain_write_may_not_carry_a_lock_definition(fake_nomad: FakeNomad, now: list[float]) -> None:
    text_error(
        put(fake_nomad, None, {"Path": PATH, "Items": {"a": "b"}, "Lock": {"TTL": "15s"}}),
        400,
        "RPC Error:: 400,variable should not contain lock definition",
    )


def test_lock_operations_cannot_be_combined(fake_nomad: FakeNomad, now: list[float]) -> None:
    text_error(put(fake_nomad, "lock-acquire", {}, **{"lock-renew": ""}), 400, "multiple lock operations")
    text_error(put(fake_nomad, "lock-acquire", {}, cas="0"), 400, "CAS can't be used with lock operations")


def test_invalid_paths_and_methods(fake_nomad: FakeNomad, now: list[float]) -> None:
    text_error(put(fake_nomad, None, {"Items": {"a": "b"}}, path="a.b"), 400, 'RPC Error:: 400,invalid path "a.b"')
    text_error(requests.patch(url(fake_nomad), json={}, timeout=5), 400, "Invalid method")


def test_a_read_shows_the_lock(fake_nomad: FakeNomad, now: list[float]) -> None:
    lock_id = acquire(fake_nomad, Items={"a": "b"}).json()["Lock"]["ID"]
    got = requests.get(url(fake_nomad), timeout=5)
    assert got.json()["Lock"]["ID"] == lock_id
