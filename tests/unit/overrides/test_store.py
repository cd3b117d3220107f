"""The file store: atomic replace, fcntl lock, many concurrent writers, and broken files never emptied."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.core.errors import OverrideError
from overrides.manual import ManualOverride, PoolRecords
from overrides.store import FileStore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WRITERS = 6
PER_WRITER = 20


def override(ov_id: str, pool: str = "ocr") -> ManualOverride:
    return ManualOverride(
        id=ov_id,
        pool=pool,
        kind="min",
        value=3,
        reason="test",
        author="t",
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )


def test_round_trip_and_format(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sub" / "overrides.json")
    assert store.read(["ocr"]) == {"ocr": PoolRecords()}  # a missing file is an empty store
    store.modify("ocr", lambda r: r.active.append(override("ov-1")))
    doc = json.loads((tmp_path / "sub" / "overrides.json").read_text())
    assert doc["format"] == "forescale-overrides/1"
    assert [o["id"] for o in doc["pools"]["ocr"]["active"]] == ["ov-1"]
    assert store.read(["ocr", "face"])["ocr"].active[0] == override("ov-1")
    assert store.read(["face"])["face"] == PoolRecords()
    assert (tmp_path / "sub" / "overrides.json.last-good").read_text() == (
        tmp_path / "sub" / "overrides.json"
    ).read_text()


def test_a_failing_change_writes_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "overrides.json")
    store.modify("ocr", lambda r: r.active.append(override("ov-1")))
    before = (tmp_path / "overrides.json").read_bytes()

    def bad(r: PoolRecords) -> None:
        r.active.clear()
        raise OverrideError("refused")

    with pytest.raises(OverrideError, match="refused"):
        store.modify("ocr", bad)
    assert (tmp_path / "overrides.json").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "what"),
    [
        ('{"format": "forescale-overrides/1", "pools": {', "not valid JSON (line 1"),
        ("", "the file is empty"),
        ("[1, 2]", "not a forescale override store"),
        ('{"format": "forescale-overrides/1", "pools": {"ocr": {"active": [{"id": "x"}]}}}', "pools.ocr.active.0"),
    ],
)
def test_broken_file_is_reported_with_its_path_and_never_overwritten(tmp_path: Path, content: str, what: str) -> None:
    path = tmp_path / "overrides.json"
    path.write_text(content, encoding="utf-8")
    store = FileStore(path)
    with pytest.raises(OverrideError) as info:
        store.read(["ocr"])
    assert str(path) in str(info.value) and what in str(info.value) and "will not overwrite it" in str(info.value)
    with pytest.raises(OverrideError):
        store.modify("ocr", lambda r: r.active.append(override("ov-1")))
    assert path.read_text(encoding="utf-8") == content


# ------------------------------------------------------------------ concurrency (real processes)


def _writer(path: str, worker: int) -> None:
    store = FileStore(Path(path))
    pool = "ocr" if worker % 2 else "face"
    for k in range(PER_WRITER):
        store.modify(pool, lambda r, k=k: r.active.append(override(f"w{worker}-{k}", pool)))
        if k % 5 == 4:  # clear one of ours now and then: a read-modify-write that removes
            gone = f"w{worker}-{k - 1}"
            store.modify(
                pool, lambda r, gone=gone: [r.end(o, "cleared", T0, "t") for o in list(r.active) if o.id == gone]
            )


def _reader(path: str, stop: mp.synchronize.Event, out: mp.queues.Queue[tuple[int, int]]) -> None:
    reads = bad = 0
    while not stop.is_set():
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        reads += 1
        try:
            json.loads(text)
        except json.JSONDecodeError:
            bad += 1
    out.put((reads, bad))


def test_many_concurrent_writers_lose_no_update_and_readers_always_see_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    results: mp.queues.Queue[tuple[int, int]] = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(path), stop, results))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(str(path), w)) for w in range(WRITERS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
        assert w.exitcode == 0
    stop.set()
    reads, bad = results.get(timeout=30)
    reader.join(timeout=30)
    records = FileStore(path).read(["ocr", "face"])
    active = {o.id for r in records.values() for o in r.active}
    cleared = {o.id for r in records.values() for o in r.history}
    expected_cleared = {f"w{w}-{k - 1}" for w in range(WRITERS) for k in range(PER_WRITER) if k % 5 == 4}
    expected_active = {f"w{w}-{k}" for w in range(WRITERS) for k in range(PER_WRITER)} - expected_cleared
    assert active == expected_active
    assert cleared == expected_cleared
    assert bad == 0 and reads > 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


