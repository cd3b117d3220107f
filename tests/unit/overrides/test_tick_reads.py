"""The override store is read once per tick, whatever the number of pools (it was once per pool: the file store's
cost grew with pools², the Nomad Variables store read each variable twice), and the Variables store keeps text as
UTF-8 (no 6-byte \\u escapes). Effects and expiries are the same as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.nomad.client import NomadClient
from autoscaler.policy.tick import run_tick
from overrides.manual import ManualOverride, PoolRecords
from overrides.nomad_store import NomadVariablesStore, variable_size
from overrides.provider import Overrides
from overrides.schedule import Schedule
from overrides.store import FileStore
from tests.fakes.nomad import FakeNomad
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POOLS = [f"p{i}" for i in range(8)]


def override(pool: str, ov_id: str, *, kind: str = "min", value: int = 5, hours: float = 1, reason: str = "x") -> Any:
    return ManualOverride(
        id=ov_id, pool=pool, kind=kind, value=value, reason=reason, author="t",  # type: ignore[arg-type]
        created_at=T0 - timedelta(hours=2), expires_at=T0 + timedelta(hours=hours),
    )  # fmt: skip


def seed(store: Any) -> None:
    store.modify("p1", lambda r: r.active.append(override("p1", "ov-floor", value=9)))
    store.modify("p2", lambda r: r.active.append(override("p2", "ov-old", hours=-0.5)))  # expired 30 min ago


class CountingFileStore(FileStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.loads = 0

    def _load(self, path: Path) -> dict[str, PoolRecords]:
        self.loads += 1
        return super()._load(path)


def tick_with(store: Any) -> Any:
    cfg = make_config(*(pool_dict(p) for p in POOLS))
    provider = Overrides(Schedule(), store, POOLS)
    deps = make_deps(cfg, FlatMetrics({p.query: 20.0 for p in cfg.pools}), overrides=provider, workers=4)
    return run_tick(deps)


def check(report: Any) -> None:
    by_pool = {o.pool: o for o in report.outcomes}
    assert by_pool["p1"].decision.desired == 9 and "manual_floor" in by_pool["p1"].decision.reason_codes()
    assert [(e.kind, e.pool) for e in report.events] == [("override_expired", "p2")]


def test_the_file_store_is_loaded_once_per_tick(tmp_path: Path) -> None:
    store = CountingFileStore(tmp_path / "overrides.json")
    seed(store)
    store.loads = 0
    check(tick_with(store))
    assert store.loads == 2  # the tick's one read, and the expiry's locked read-modify-write of p2


def test_each_nomad_variable_is_read_once_per_tick(fake_nomad: FakeNomad, nomad_settings: NomadSettings) -> None:
    store = NomadVariablesStore(NomadClient(nomad_settings, sleep=lambda _s: None), "forescale/overrides")
    seed(store)
    fake_nomad.clear_requests()
    check(tick_with(store))
    reads: dict[str, int] = {}
    for r in fake_nomad.requests_to("GET"):
        if r.path.startswith("/v1/var/"):
            reads[r.path.rsplit("/", 1)[-1]] = reads.get(r.path.rsplit("/", 1)[-1], 0) + 1
    # once each; p2's expiry reads it again (modify: read, then a check-and-set write)
    assert reads == {p: 2 if p == "p2" else 1 for p in POOLS}
    assert [r.path for r in fake_nomad.requests_to("PUT")] == ["/v1/var/forescale/overrides/p2"]


def test_the_variables_store_keeps_non_ascii_text_as_utf8(fake_nomad: FakeNomad, nomad_settings: NomadSettings) -> None:
    store = NomadVariablesStore(NomadClient(nomad_settings, sleep=lambda _s: None), "forescale/overrides")
    reason = "Дивали: кампания 🎉 über alles"
    store.modify("p1", lambda r: r.active.append(override("p1", "ov-1", reason=reason)))
    items = fake_nomad.variable("forescale/overrides/p1")["Items"]  # type: ignore[index]
    assert reason in items["active"] and "\\u" not in items["active"]
    escaped = json.dumps(json.loads(items["active"]), separators=(",", ":"))  # what was stored before
    assert variable_size(items) < variable_size({**items, "active": escaped}) - 2 * len(reason)
    assert store.read(["p1"])["p1"].active[0].reason == reason
