"""Output for machines and pipes: --json on override list, schedule show/next and config check; no hard wrapping
into a pipe; `schedule show` names the floor that wins; `override set/clear` say when the change takes effect."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.cli.effect import takes_effect
from autoscaler.core.clock import ManualClock
from tests import REPO
from tests.cli_helpers import CliResult, run_cli, write_config

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # Tuesday 09:30 in Kolkata: stores open
SCHEDULE = """
rules:
  - name: stores-open
    pool: ocr
    timezone: Asia/Kolkata
    days: mon-fri
    window: "09:00-18:00"
    min: 50
  - name: morning-batch
    pool: ocr
    timezone: Asia/Kolkata
    days: daily
    window: "08:00-11:00"
    min: 30
"""


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(tmp_path, SCHEDULE)
    monkeypatch.setenv("FORESCALE_CONFIG", str(path))
    monkeypatch.setattr("autoscaler.wiring.build_notifiers", lambda config, console=True: [])
    return path


def cli(args: list[str], capsys: Any, monkeypatch: Any) -> CliResult:
    return run_cli(args, capsys, monkeypatch, clock=ManualClock(NOW))


def test_schedule_show_says_which_floor_wins(cfg: Path, capsys: Any, monkeypatch: Any) -> None:
    res = cli(["schedule", "show", "--pool", "ocr"], capsys, monkeypatch)
    assert res.code == 0, res.text
    assert (
        "ocr: floor 50 (schedule rule 'stores-open') wins: the highest of 2 floors; not binding: min 30 "
        "(schedule rule 'morning-batch')" in res.text
    )
    assert "ocr: whatever the forecast, 50..100 nodes (pool min 2 / max 100)" in res.text


def test_a_manual_pin_wins_over_every_floor(cfg: Path, capsys: Any, monkeypatch: Any) -> None:
    args = ["override", "set", "ocr", "--pin", "40", "--for", "1h", "-r", "Diwali", "--by", "alice", "--wait", "0"]
    assert cli(args, capsys, monkeypatch).code == 0
    res = cli(["schedule", "show", "--pool", "ocr", "--json"], capsys, monkeypatch)
    doc = json.loads(res.out)
    ocr = doc["pools"]["ocr"]
    assert (ocr["lowest"], ocr["highest"]) == (40, 40)
    (line,) = ocr["wins"]
    assert line.startswith("pin 40 (manual ov-") and "wins: a pin beats floors, ceilings and the forecast" in line
    assert sorted(e["source"] for e in ocr["effects"]) == ["manual", "schedule", "schedule"]
    assert {r["rule"] for r in doc["rules"]} == {"stores-open", "morning-batch"}
    assert doc["at"] == NOW.isoformat() and doc["warnings"] == []


def test_schedule_next_json(cfg: Path, capsys: Any, monkeypatch: Any) -> None:
    res = cli(["schedule", "next", "--count", "2", "--json"], capsys, monkeypatch)
    assert res.code == 0
    changes = json.loads(res.out)["changes"]
    assert [(c["at"], c["rule"], c["kind"], c["value"], c["starts"]) for c in changes] == [
        ("2026-12-01T05:30:00+00:00", "morning-batch", "min", 30, False),
        ("2026-12-01T12:30:00+00:00", "stores-open", "min", 50, False),
    ]
    assert changes[0]["local"] == "2026-12-01T11:00:00+05:30" and changes[0]["timezone"] == "Asia/Kolkata"


def test_override_list_json(cfg: Path, capsys: Any, monkeypatch: Any) -> None:
    args = ["override", "set", "face", "--min", "3", "--for", "1h", "-r", "batch", "--by", "bob", "--wait", "0"]
    assert cli(args, capsys, monkeypatch).code == 0
    assert cli(["override", "clear", "face", "--wait", "0"], capsys, monkeypatch).code == 0
    doc = json.loads(cli(["override", "list", "--json"], capsys, monkeypatch).out)
    assert doc["overrides"] == [] and doc["store"] == str(cfg.parent / "overrides.json")
    everything = json.loads(cli(["override", "list", "--all", "--json"], capsys, monkeypatch).out)["overrides"]
    (ended,) = everything
    assert (ended["pool"], ended["kind"], ended["value"], ended["author"], ended["status"]) == (
        "face",
        "min",
        3,
        "bob",
        "cleared",
    )


def test_config_check_json_ok_and_invalid(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://nomad.internal:4646")
    res = cli(["config", "check", str(REPO / "forescale.example.yaml"), "--json"], capsys, monkeypatch)
    assert res.code == 0, res.text
    doc = json.loads(res.out)
    assert doc["ok"] is True and doc["problems"] == []
    assert [(p["name"], p["mode"]) for p in doc["pools"]] == [("ocr", "shadow"), ("face-match", "shadow")]
    assert (doc["nomad_address"], doc["nomad_address_from"]) == ("http://nomad.internal:4646", "$NOMAD_ADDR")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools:\n  - name: ocr\n    capacity_per_node: -1\n")
    res = cli(["config", "check", str(bad), "--json"], capsys, monkeypatch)
    assert res.code == 2
    doc = json.loads(res.out)
    assert doc["ok"] is False and doc["path"] == str(bad) and len(doc["problems"]) >= 3


def test_config_check_says_where_the_nomad_address_comes_from(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.delenv("NOMAD_ADDR", raising=False)
    res = cli(["config", "check", str(REPO / "forescale.example.yaml")], capsys, monkeypatch)
    assert "Nomad: http://127.0.0.1:4646 (from the default: neither nomad.address nor $NOMAD_ADDR is set)" in res.text
    own = tmp_path / "f.yaml"
    (tmp_path / "nomad.hcl").write_text((REPO / "nomad.hcl").read_text())  # the example's relative client config
    own.write_text((REPO / "forescale.example.yaml").read_text().replace("  # address: https://", "  address: https://"))
    res = cli(["config", "check", str(own)], capsys, monkeypatch)
    assert f"Nomad: https://nomad.example.com:4646 (from nomad.address in {own})" in res.text


# ------------------------------------------------------------------ when does it take effect


def health_seq(*docs: dict[str, Any] | None):  # type: ignore[no-untyped-def]
    seq = list(docs)
    return lambda: seq.pop(0) if len(seq) > 1 else seq[0]


WATCHING = {"store": "/srv/overrides.json", "poll_s": 2.0}


def test_no_daemon_means_the_next_tick() -> None:
    effect = takes_effect(health_seq(None), "http://127.0.0.1:9464/healthz", "/srv/overrides.json", ["ocr"], NOW, 15)
    assert effect.text == (
        "takes effect at the next `forescale tick` (cron or a Nomad periodic job): no `forescale run` answers at "
        "http://127.0.0.1:9464/healthz"
    )
    assert not effect.confirmed


def test_a_daemon_watching_another_store_is_named() -> None:
    doc = {"overrides": {"store": "/elsewhere.json", "poll_s": 2.0}}
    effect = takes_effect(health_seq(doc), "URL", "/srv/overrides.json", ["ocr"], NOW, 15)
    assert "the daemon at URL watches /elsewhere.json, not /srv/overrides.json" in effect.text


def test_waits_until_the_daemon_ticked_the_pool_after_the_change() -> None:
    before = {"overrides": WATCHING, "pools": {"ocr": {"last_tick": (NOW - timedelta(minutes=5)).isoformat()}}}
    after = {
        "overrides": WATCHING,
        "pools": {
            "ocr": {
                "last_tick": (NOW + timedelta(seconds=2)).isoformat(),
                "status": "applied",
                "current": 12,
                "desired": 40,
            }
        },
    }
    ticks = iter([0.0, 0.2, 0.4, 0.6])
    pauses: list[float] = []
    effect = takes_effect(
        health_seq(before, before, after),
        "URL",
        "/srv/overrides.json",
        ["ocr"],
        NOW,
        15,
        monotonic=lambda: next(ticks),
        pause=pauses.append,
    )
    assert effect.confirmed
    assert effect.text == "in effect: the daemon ticked ocr at 04:00:02 UTC: 12 → 40 (applied)"
    assert pauses == [0.2, 0.2]


def test_gives_up_after_the_wait_and_says_so() -> None:
    stale = {"overrides": WATCHING, "pools": {}}
    clock = iter([0.0, 5.0, 16.0])
    effect = takes_effect(
        health_seq(stale),
        "URL",
        "/srv/overrides.json",
        ["ocr"],
        NOW,
        15,
        monotonic=lambda: next(clock),
        pause=lambda _s: None,
    )
    assert not effect.confirmed
    assert effect.text == (
        "the daemon at URL watches /srv/overrides.json (within 2s) but has not ticked ocr within 15s; see its log"
    )


def test_no_wait_just_says_how_soon() -> None:
    effect = takes_effect(health_seq({"overrides": WATCHING}), "URL", "/srv/overrides.json", ["ocr"], NOW, 0)
    assert effect.text == "the daemon at URL watches /srv/overrides.json and ticks ocr within 2s"


def test_shadow_ticks_are_reported_as_would_scale() -> None:
    doc = {
        "overrides": {"store": "s", "poll_s": 0.0},
        "pools": {"ocr": {"last_tick": NOW.isoformat(), "status": "shadow", "current": 3, "desired": 40}},
    }
    effect = takes_effect(health_seq(doc), "URL", "s", ["ocr"], NOW, 5)
    assert effect.text == (
        "in effect: the daemon ticked ocr at 04:00:00 UTC: would scale 3 → 40 (shadow: Nomad not changed)"
    )
