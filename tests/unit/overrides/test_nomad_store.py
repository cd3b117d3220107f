"""The Nomad Variables store against the fake Nomad: CAS writes, 409 retry with re-read, DELETE 204, ACL errors, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.errors import OverrideError
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.nomad.client import NomadClient
from overrides.manual import ManualOverride, PoolRecords
from overrides.nomad_store import NomadVariablesStore, variable_size
from overrides.provider import Overrides
from overrides.schedule import Schedule
from tests.cli_helpers import POOLS_YAML, run_cli
from tests.fakes.nomad import FakeNomad

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
VAR = "forescale/overrides/ocr"
URL = "/v1/var/" + VAR


def ov(ov_id: str, value: int = 3) -> ManualOverride:
    return ManualOverride(
        id=ov_id,
        pool="ocr",
        kind="min",
        value=value,
        reason="test",
        author="t",
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )


@pytest.fixture
def store(nomad_settings: NomadSettings) -> NomadVariablesStore:
    client = NomadClient(nomad_settings, sleep=lambda _s: None)
    return NomadVariablesStore(client, "forescale/overrides/", sleep=lambda _s: None)  # backoff: no real waits


def items_of(fake: FakeNomad) -> dict[str, str]:
    var = fake.variable(VAR)
    assert var is not None
    return dict(var["Items"])


def test_round_trip_creates_with_cas_zero_then_updates_with_modify_index(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    assert store.read(["ocr"]) == {"ocr": PoolRecords()}  # 404 → empty
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    items = items_of(fake_nomad)
    assert items["format"] == "forescale-overrides/1"
    assert [o["id"] for o in json.loads(items["active"])] == ["ov-1"]
    first_index = fake_nomad.variable(VAR)["ModifyIndex"]  # type: ignore[index]
    store.modify("ocr", lambda r: r.active.append(ov("ov-2")))
    puts = fake_nomad.requests_to("PUT", URL)
    assert [p.query.get("cas") for p in puts] == ["0", str(first_index)]
    assert [o.id for o in store.read(["ocr"])["ocr"].active] == ["ov-1", "ov-2"]


def test_cas_conflict_is_retried_on_the_current_variable_and_no_update_is_lost(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    calls = 0

    def racing(r: PoolRecords) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # another writer commits between our read and our write
            other = NomadVariablesStore(store.client, "forescale/overrides")
            other.modify("ocr", lambda r2: r2.active.append(ov("ov-other")))
        r.active.append(ov("ov-mine"))

    store.modify("ocr", racing)
    assert calls == 2
    assert [o.id for o in store.read(["ocr"])["ocr"].active] == ["ov-1", "ov-other", "ov-mine"]
    statuses = [r.status for r in fake_nomad.requests_to("PUT", URL)]
    assert statuses == [200, 200, 409, 200]


def test_conflict_without_items_in_the_body_re_reads(store: NomadVariablesStore, fake_nomad: FakeNomad) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    fake_nomad.clear_requests()
    fake_nomad.fail_next(409, body="cas conflict", method="PUT", path=URL)
    store.modify("ocr", lambda r: r.active.append(ov("ov-2")))
    assert [o.id for o in store.read(["ocr"])["ocr"].active] == ["ov-1", "ov-2"]
    methods = [r.method for r in fake_nomad.requests if r.path == URL]
    assert methods[:4] == ["GET", "PUT", "GET", "PUT"]


def test_endless_conflicts_give_up_after_a_bounded_number_of_attempts(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    before = items_of(fake_nomad)

    def always_racing(r: PoolRecords) -> None:
        fake_nomad.put_variable(VAR, before)  # someone rewrites it every time (bumps ModifyIndex)
        r.active.append(ov("ov-x"))

    with pytest.raises(OverrideError, match=r"after 20 check-and-set conflicts"):
        store.modify("ocr", always_racing)
    assert items_of(fake_nomad) == before


def test_empty_pool_is_deleted_with_cas_and_204(store: NomadVariablesStore, fake_nomad: FakeNomad) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    index = fake_nomad.variable(VAR)["ModifyIndex"]  # type: ignore[index]

    def wipe(r: PoolRecords) -> None:
        r.active.clear()
        r.history.clear()

    store.modify("ocr", wipe)
    (delete,) = fake_nomad.requests_to("DELETE", URL)
    assert delete.status == 204 and delete.query["cas"] == str(index)
    assert fake_nomad.variable(VAR) is None


def test_foreign_or_broken_variable_is_reported_and_not_overwritten(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    fake_nomad.put_variable(VAR, {"user": "me"})
    with pytest.raises(OverrideError, match="is not a forescale override store"):
        store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    fake_nomad.put_variable(VAR, {"format": "forescale-overrides/1", "active": "[{", "history": "[]"})
    with pytest.raises(OverrideError, match="will not overwrite it"):
        store.read(["ocr"])
    assert items_of(fake_nomad)["active"] == "[{"


def test_acl_denial_is_an_override_error_and_the_tick_keeps_the_last_good_read(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1", value=40)))
    provider = Overrides(Schedule(), store, ["ocr"])
    assert [e.value for e in provider.effects("ocr", T0)] == [40]
    fake_nomad.enable_acl("management-secret")  # our client has no token now → 403
    assert [e.value for e in provider.effects("ocr", T0 + timedelta(minutes=20))] == [40]
    (event,) = provider.drain_events(T0 + timedelta(minutes=20))
    assert event.kind == "override_store_unreadable"
    assert "cannot read Nomad variable 'forescale/overrides/ocr'" in event.message
    with pytest.raises(OverrideError, match="cannot read Nomad variable"):
        store.modify("ocr", lambda r: r.active.clear())


def test_cli_on_the_nomad_store(
    tmp_path: Path, fake_nomad: FakeNomad, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(
        f"audit_log: audit.jsonl\nnomad:\n  address: {fake_nomad.address}\n  token_env: FORESCALE_TEST_NOMAD_TOKEN\n"
        "overrides:\n  store: nomad\n  nomad_variable_prefix: team-a/forescale\n" + POOLS_YAML,
        encoding="utf-8",
    )
    monkeypatch.setenv("COLUMNS", "200")
    args: list[Any] = ["override", "set", "ocr", "--pin", "40", "--for", "2h", "-r", "campaign", "--by", "alice"]
    res = run_cli([*args, "-c", str(cfg)], capsys, monkeypatch)
    assert res.code == 0, res.text
    var = fake_nomad.variable("team-a/forescale/ocr")
    assert var is not None
    (stored,) = json.loads(var["Items"]["active"])
    assert (stored["kind"], stored["value"], stored["author"]) == ("pin", 40, "alice")
    res = run_cli(["override", "list", "-c", str(cfg)], capsys, monkeypatch)
    assert res.code == 0 and stored["id"] in res.text and "Nomad variables team-a/forescale/<pool>" in res.text
    res = run_cli(
        ["override", "set", "ocr", "--min", "500", "--for", "1h", "-r", "x", "-c", str(cfg)], capsys, monkeypatch
    )
    assert res.code == 1 and "above the pool's max" in res.text
    res = run_cli(["override", "clear", stored["id"], "-c", str(cfg)], capsys, monkeypatch)
    assert res.code == 0, res.text
    var = fake_nomad.variable("team-a/forescale/ocr")
    assert var is not None and json.loads(var["Items"]["active"]) == []
    assert [json.loads(line)["type"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()] == [
        "override_set",
        "override_cleared",
    ]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("nomad/jobs/x", "reserved by Nomad"),
        ("bad prefix!", "use a Nomad variable path"),
        ("/", "use a Nomad"),
        ("team.a/overrides", "no dots or spaces"),  # Nomad's path rule has no '.' (the old check allowed it)
        ("t/" + "o" * 63, "keep the prefix to 64"),  # <prefix>/<63-character pool> must fit in 128
    ],
)
def test_bad_variable_prefix_is_a_config_error(tmp_path: Path, prefix: str, message: str) -> None:
    from autoscaler.config import load_config
    from autoscaler.core.errors import ConfigError

    cfg = tmp_path / "forescale.yaml"
    cfg.write_text(f"overrides:\n  store: nomad\n  nomad_variable_prefix: '{prefix}'\n" + POOLS_YAML, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "overrides.nomad_variable_prefix" in info.value.problems[0] and message in info.value.problems[0]


# ---------------------------------------------------------------- Nomad's limits: 64 KiB per variable, path rule


def long_ov(ov_id: str, *, chars: int = 500, ended: bool = False) -> ManualOverride:
    base = ov(ov_id).model_copy(update={"reason": "r" * chars})
    if ended:
        base = base.model_copy(update={"ended": "expired", "ended_at": T0 + timedelta(hours=1)})
    return base


def test_a_64_character_prefix_is_the_longest_allowed(tmp_path: Path) -> None:
    from autoscaler.config import load_config

    cfg = tmp_path / "forescale.yaml"
    cfg.write_text("overrides:\n  store: nomad\n  nomad_variable_prefix: '" + "p" * 64 + "'\n" + POOLS_YAML)
    assert load_config(cfg).overrides.nomad_variable_prefix == "p" * 64  # 64 + "/" + 63 = 128: the limit


def test_history_is_trimmed_by_bytes_so_a_write_never_hits_the_cap(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    def fill(records: PoolRecords) -> None:
        records.active = [long_ov(f"ov-a{i}") for i in range(3)]
        records.history = [long_ov(f"ov-h{i:03d}", ended=True) for i in range(200)]  # ~160 KB of history

    store.modify("ocr", fill)  # the fake Nomad enforces 64 KiB: without trimming this write is a 400
    items = items_of(fake_nomad)
    assert variable_size(items) <= 65536
    assert [o["id"] for o in json.loads(items["active"])] == ["ov-a0", "ov-a1", "ov-a2"]
    history = [o["id"] for o in json.loads(items["history"])]
    assert 0 < len(history) < 200 and history[-1] == "ov-h199", "the oldest ended overrides went first"
    assert history == [f"ov-h{i:03d}" for i in range(200 - len(history), 200)]


def test_active_overrides_too_big_for_a_variable_are_refused_and_nothing_is_lost(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-keep")))
    before = fake_nomad.variable(VAR)
    with pytest.raises(OverrideError) as err:
        store.modify("ocr", lambda r: r.active.extend(long_ov(f"ov-big{i}", chars=30_000) for i in range(3)))
    message = str(err.value)
    assert "cannot store the overrides of pool ocr" in message and "holds at most 65536" in message
    assert "nothing was written and the overrides in force are unchanged" in message
    assert fake_nomad.variable(VAR) == before
    assert [o.id for o in store.read(["ocr"])["ocr"].active] == ["ov-keep"]


def test_nomads_size_and_path_refusals_are_clear_errors(
    store: NomadVariablesStore, fake_nomad: FakeNomad, nomad_settings: NomadSettings
) -> None:
    store.modify("ocr", lambda r: r.active.append(ov("ov-1")))
    before = fake_nomad.variable(VAR)
    fake_nomad.fail_next(400, body="RPC Error:: 400,variables are limited to 64KiB in total size", method="PUT")
    with pytest.raises(OverrideError, match="Nomad refused it as larger than 64 KiB; nothing was written"):
        store.modify("ocr", lambda r: r.active.append(ov("ov-2")))
    assert fake_nomad.variable(VAR) == before
    dotted = NomadVariablesStore(NomadClient(nomad_settings, sleep=lambda _s: None), "team.a/overrides")
    with pytest.raises(OverrideError, match=r'invalid path "team\.a/overrides/ocr".*overrides\.nomad_variable_prefix'):
        dotted.modify("ocr", lambda r: r.active.append(ov("ov-3")))


def test_reason_and_author_lengths_are_capped() -> None:
    from overrides.manual import MAX_REASON_CHARS, make_override

    args: dict[str, Any] = {"pool": "ocr", "kind": "pin", "value": 3, "author": "alice", "now": T0}
    args |= {"expires_at": T0 + timedelta(hours=1), "max_duration": timedelta(days=7)}
    assert make_override(reason="x" * MAX_REASON_CHARS, **args).reason == "x" * 500
    with pytest.raises(OverrideError, match="--reason is 501 characters; keep it to 500"):
        make_override(reason="x" * 501, **args)
    with pytest.raises(OverrideError, match="--by is 65 characters"):
        make_override(reason="ok", **{**args, "author": "a" * 65})
def test_the_daemon_watch_wakes_on_a_variable_change_by_blocking_query(
    store: NomadVariablesStore, fake_nomad: FakeNomad
) -> None:
    """With the Variables store the daemon does not poll: a blocking `GET /v1/vars?index=` returns on the write."""
    import threading

    from autoscaler.core.clock import ManualClock
    from autoscaler.daemon.watch import OverrideWatcher

    changed: list[list[str]] = []
    watcher = OverrideWatcher(store, ["ocr", "face"], ManualClock(T0), on_change=lambda p: changed.append(list(p)))
    assert watcher.blocking and watcher.status()["how"] == "blocking query"
    result: list[list[str]] = []
    waiting = threading.Thread(target=lambda: result.append(watcher.check(wait_s=30)))
    waiting.start()
    blocked = fake_nomad.wait_for_request(lambda r: r.path == "/v1/vars" and "index" in r.query)
    assert blocked.query["prefix"] == "forescale/overrides/" and blocked.query["wait"] == "30s"
    store.modify("ocr", lambda r: r.active.append(ov("ov-watch")))  # another process sets an override
    waiting.join(timeout=10)
    assert not waiting.is_alive(), "the blocking query did not return on the change"
    assert result == [["ocr"]] and changed == [["ocr"]]
    assert [ident for _pool, ident, _at in watcher.expiries()] == ["ov-watch"]
