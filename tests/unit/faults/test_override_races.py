"""Fault class 9 (issue 22, item 5): two operators, one pool. One active override per kind, always, and the
loser of a race is told; Nomad Variables writers back off with jitter instead of giving up; an answer that is
not a variable is not reported as a broken one; an expiry forced by overrides.max_duration says so."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core.errors import OverrideError
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.nomad.client import NomadClient
from overrides.manual import ManualOverride, PoolRecords
from overrides.nomad_store import NomadVariablesStore
from overrides.operations import Request, expire, set_override
from overrides.store import FileStore
from tests.fakes.nomad import FakeNomad
from tests.helpers import make_config, pool_dict

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
POOL = make_config(pool_dict("ocr", max=100)).pool("ocr")
MAX = timedelta(days=7)


def request(value: int, author: str, kind: str = "pin") -> Request:
    return Request(
        pool=POOL,
        values={kind: value},
        reason=f"{author}'s campaign",
        author=author,  # type: ignore[dict-item]
        expires_at=T0 + timedelta(hours=3),
    )


def active(store: FileStore | NomadVariablesStore) -> list[ManualOverride]:
    return store.read(["ocr"])["ocr"].active


def test_the_later_writer_whose_now_is_older_is_told_not_silently_ignored(tmp_path: Path) -> None:
    """B took its "now" (10:00:00), then waited for the store lock while A wrote its pin at 10:00:05.
    Before: both pins stayed active, B was told "pinned to 10" and the tick followed A's 40."""
    store = FileStore(tmp_path / "overrides.json")
    set_override(store, request(40, "alice"), T0 + timedelta(seconds=5), MAX)
    with pytest.raises(OverrideError) as err:
        set_override(store, request(10, "bob"), T0, MAX)
    assert "while this command waited for the store, alice pinned ocr to 40" in str(err.value)
    assert "nothing changed: run the command again" in str(err.value)
    assert [(o.author, o.value) for o in active(store)] == [("alice", 40)]


def test_a_later_set_replaces_every_pin_in_force(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "overrides.json")
    set_override(store, request(40, "alice"), T0, MAX)
    created, replaced = set_override(store, request(10, "bob"), T0 + timedelta(seconds=1), MAX)
    assert [o.author for o in replaced] == ["alice"] and [(o.author, o.value) for o in active(store)] == [("bob", 10)]
    assert len(created) == 1


@pytest.fixture
def nomad_store_factory(nomad_settings: NomadSettings) -> object:
    def make(sleeps: list[float] | None = None) -> NomadVariablesStore:
        client = NomadClient(nomad_settings, sleep=lambda _s: None)
        record = sleeps.append if sleeps is not None else (lambda _s: None)
        return NomadVariablesStore(client, "forescale/overrides/", sleep=record)

    return make


def test_thirty_parallel_sets_on_nomad_variables_all_land_or_are_told(
    nomad_store_factory: object, fake_nomad: FakeNomad
) -> None:
    """Before: 8 conflicts and give up, no backoff (13 of 30 refused). Now every writer backs off with jitter;
    each set either lands (and is active or replaced in history) or is told it lost a race; never 'gave up'."""
    results: dict[int, str] = {}

    def one(i: int) -> None:
        store = nomad_store_factory(None)  # type: ignore[operator]
        store.sleep = lambda s: threading.Event().wait(s)  # really wait: the writers must spread out
        try:
            set_override(store, request(10 + i, f"op{i}", kind="min"), T0, MAX)
            results[i] = "ok"
        except OverrideError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 30
    assert not [r for r in results.values() if "gave up" in r], results
    records = nomad_store_factory(None).read(["ocr"])["ocr"]  # type: ignore[operator]
    assert len([o for o in records.active if o.kind == "min"]) == 1
    landed = {o.author for o in [*records.active, *records.history]}
    assert landed == {f"op{i}" for i, r in results.items() if r == "ok"}, "a set that said ok was lost"


def test_conflicts_back_off_with_jitter(nomad_store_factory: object, fake_nomad: FakeNomad) -> None:
    sleeps: list[float] = []
    store = nomad_store_factory(sleeps)  # type: ignore[operator]
    store.modify("ocr", lambda r: r.active.append(_ov("ov-1", T0, T0 + timedelta(hours=1))))
    fake_nomad.fail_next(409, 3, method="PUT", path="/v1/var/forescale/overrides/ocr")
    store.modify("ocr", lambda r: r.active.append(_ov("ov-2", T0, T0 + timedelta(hours=1))))
    assert len(sleeps) == 3 and all(0 <= s <= 1.0 for s in sleeps)
    assert len({round(s, 6) for s in sleeps}) > 1 or sleeps == [0.0] * 3  # random, not a fixed step


def test_a_transient_non_json_answer_is_read_again(nomad_store_factory: object, fake_nomad: FakeNomad) -> None:
    store = nomad_store_factory(None)  # type: ignore[operator]
    store.modify("ocr", lambda r: r.active.append(_ov("ov-1", T0, T0 + timedelta(hours=1))))
    fake_nomad.fail_next(200, 1, body="<html>proxy login</html>", method="GET", path="/v1/var/forescale/overrides/ocr")
    assert [o.id for o in store.read(["ocr"])["ocr"].active] == ["ov-1"]


def test_a_persistent_non_variable_answer_is_not_called_a_broken_variable(
    nomad_store_factory: object, fake_nomad: FakeNomad
) -> None:
    store = nomad_store_factory(None)  # type: ignore[operator]
    store.modify("ocr", lambda r: r.active.append(_ov("ov-1", T0, T0 + timedelta(hours=1))))
    fake_nomad.fail_next(200, 2, body="<html>proxy login</html>", method="GET", path="/v1/var/forescale/overrides/ocr")
    with pytest.raises(OverrideError) as err:
        store.read(["ocr"])
    text = str(err.value)
    assert "move it away" not in text and "not a forescale override store" not in text
    assert "not a variable" in text and "try again" in text


def test_the_expiry_message_names_when_max_duration_ended_it(tmp_path: Path) -> None:
    """A hand-edited expiry (year 9999): the message says when max_duration ended it, not 9999."""
    store = FileStore(tmp_path / "overrides.json")
    forever = datetime(9999, 1, 1, tzinfo=UTC)
    store.modify("ocr", lambda r: r.active.append(_ov("ov-1", T0, forever)))
    from overrides.operations import event_for

    ended = expire(store, ["ocr"], T0 + timedelta(hours=2), max_duration=timedelta(hours=1))
    (message,) = [event_for(o, "override_expired", T0 + timedelta(hours=2)).message for o in ended]
    assert "9999" in message.split("stored expiry was", 1)[1]  # only as what was stored
    assert "expired at 11:00 UTC: overrides.max_duration ended it (1h after it was set" in message, message


def _ov(ov_id: str, created: datetime, expires: datetime) -> ManualOverride:
    return ManualOverride(
        id=ov_id, pool="ocr", kind="min", value=3, reason="test", author="t", created_at=created, expires_at=expires
    )


def test_records_are_json(tmp_path: Path) -> None:
    """The file store stays readable JSON after a refused race (nothing half-written)."""
    store = FileStore(tmp_path / "overrides.json")
    set_override(store, request(40, "alice"), T0 + timedelta(seconds=5), MAX)
    with pytest.raises(OverrideError):
        set_override(store, request(10, "bob"), T0, MAX)
    doc = json.loads((tmp_path / "overrides.json").read_text())
    assert PoolRecords.model_validate(doc["pools"]["ocr"]).active[0].value == 40
