"""`forescale override …` and `forescale schedule …` from the command line: happy paths and every bad input."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.clock import ManualClock
from autoscaler.core.report import Event, TickReport
from tests.cli_helpers import CliResult, run_cli, write_config

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # Tuesday
SCHEDULE = """
rules:
  - name: stores-open
    pool: ocr
    timezone: Asia/Kolkata
    days: mon-fri
    window: "09:00-18:00"
    min: 50
"""


class Recorder:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def notify(self, report: TickReport) -> None:
        self.events.extend(report.events)

    def announce(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, ManualClock, Recorder]:
    cfg = write_config(tmp_path, SCHEDULE)
    clock = ManualClock(NOW)
    monkeypatch.setattr(sys.modules[__name__], "CLOCK", clock)
    recorder = Recorder()
    monkeypatch.setattr("autoscaler.wiring.build_notifiers", lambda config, console=True: [recorder])
    monkeypatch.setenv("FORESCALE_CONFIG", str(cfg))
    monkeypatch.setenv("COLUMNS", "200")
    return cfg, clock, recorder


CLOCK: ManualClock | None = None  # the env fixture's clock, handed to the CLI through its context


def cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliResult:
    return run_cli(args, capsys, monkeypatch, clock=CLOCK)


def store_bytes(cfg: Path) -> bytes | None:
    path = cfg.parent / "overrides.json"
    return path.read_bytes() if path.exists() else None


def audit(cfg: Path) -> list[dict[str, Any]]:
    path = cfg.parent / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------ happy paths


def test_set_list_clear_with_audit_and_notifiers(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _clock, recorder = env
    res = cli(
        ["override", "set", "ocr", "--pin", "40", "--until", "18:00", "--reason", "Diwali campaign", "--by", "alice"],
        capsys,
        monkeypatch,
    )
    assert res.code == 0, res.text
    assert "alice pinned ocr to 40 until 18:00 UTC: Diwali campaign" in res.text
    assert "takes effect at the next `forescale tick`" in res.text and "no `forescale run` answers at" in res.text
    doc = json.loads(store_bytes(cfg) or b"{}")
    (ov,) = doc["pools"]["ocr"]["active"]
    assert (ov["kind"], ov["value"], ov["author"], ov["expires_at"]) == ("pin", 40, "alice", "2026-12-01T18:00:00Z")
    assert [e.kind for e in recorder.events] == ["override_set"]
    assert [r["type"] for r in audit(cfg)] == ["override_set"]
    assert audit(cfg)[0]["details"]["id"] == ov["id"]

    res = cli(["override", "list"], capsys, monkeypatch)
    assert res.code == 0 and ov["id"] in res.text and "Diwali campaign" in res.text and "active" in res.text

    res = cli(["schedule", "show", "--pool", "ocr"], capsys, monkeypatch)
    assert res.code == 0
    assert "pinned to 40 by alice" in res.text and "schedule rule 'stores-open'" in res.text

    res = cli(["override", "clear", ov["id"], "--by", "bob"], capsys, monkeypatch)
    assert res.code == 0 and f"cleared {ov['id']}" in res.text
    assert [r["type"] for r in audit(cfg)] == ["override_set", "override_cleared"]
    assert recorder.events[-1].kind == "override_cleared" and "bob cleared" in recorder.events[-1].message
    res = cli(["override", "list"], capsys, monkeypatch)
    assert "no active manual overrides" in res.text
    res = cli(["override", "list", "--all"], capsys, monkeypatch)
    assert ov["id"] in res.text and "cleared" in res.text


def test_set_replaces_the_same_kind_and_author_defaults_to_os_user(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _clock, recorder = env
    monkeypatch.setattr("overrides.manual.getpass.getuser", lambda: "sre-on-call")
    assert cli(["override", "set", "ocr", "--min", "20", "--for", "1h", "-r", "a"], capsys, monkeypatch).code == 0
    res = cli(["override", "set", "ocr", "--min", "30", "--for", "2h", "-r", "b"], capsys, monkeypatch)
    assert res.code == 0 and "replaced" in res.text
    doc = json.loads(store_bytes(cfg) or b"{}")
    assert [(o["value"], o["author"]) for o in doc["pools"]["ocr"]["active"]] == [(30, "sre-on-call")]
    assert [e.kind for e in recorder.events] == ["override_set", "override_replaced", "override_set"]


def test_clear_a_whole_pool_and_min_max_together(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env
    res = cli(["override", "set", "face", "--min", "3", "--max", "9", "--for", "1h", "-r", "band"], capsys, monkeypatch)
    assert res.code == 0, res.text
    res = cli(["override", "clear", "face"], capsys, monkeypatch)
    assert res.code == 0 and res.text.count("cleared ov-") == 2
    assert json.loads(store_bytes(cfg) or b"{}")["pools"]["face"]["active"] == []


def test_expiry_is_reported_once_by_the_next_cli_change(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, clock, recorder = env
    assert cli(["override", "set", "ocr", "--pin", "40", "--for", "1h", "-r", "x"], capsys, monkeypatch).code == 0
    clock.advance(timedelta(hours=2))
    res = cli(["override", "list"], capsys, monkeypatch)
    assert "expired (not yet reported)" in res.text  # listing never changes the store
    assert cli(["override", "set", "face", "--min", "2", "--for", "1h", "-r", "y"], capsys, monkeypatch).code == 0
    assert cli(["override", "set", "face", "--min", "3", "--for", "1h", "-r", "z"], capsys, monkeypatch).code == 0
    kinds = [r["type"] for r in audit(cfg)]
    assert kinds.count("override_expired") == 1
    assert [e.kind for e in recorder.events].count("override_expired") == 1


def test_schedule_show_at_and_next(env: Any, capsys: Any, monkeypatch: Any) -> None:
    res = cli(["schedule", "show", "--at", "2026-12-01 09:30", "--tz", "Asia/Kolkata"], capsys, monkeypatch)
    assert res.code == 0
    assert "floor 50 until 18:00 IST" in res.text
    res = cli(["schedule", "show", "--at", "2026-12-05 12:00 Asia/Kolkata"], capsys, monkeypatch)  # Saturday
    assert res.code == 0 and "not in force" in res.text
    res = cli(["schedule", "next", "--count", "3"], capsys, monkeypatch)
    assert res.code == 0
    # After Tue 10:00 UTC (15:30 IST): ends 12:30 UTC; Wed starts 03:20 UTC (lead) and ends 12:30 UTC.
    assert "2026-12-01 12:30" in res.text and "2026-12-02 03:20" in res.text and "2026-12-02 12:30" in res.text
    assert "floor 50 starts (10m lead: ready for 2026-12-02 09:00 IST)" in res.text


# ------------------------------------------------------------------ bad input: clear error, non-zero, store unchanged


def _seed(cfg: Path, capsys: Any, monkeypatch: Any) -> bytes:
    res = cli(["override", "set", "ocr", "--max", "60", "--for", "1h", "-r", "seed"], capsys, monkeypatch)
    assert res.code == 0, res.text
    data = store_bytes(cfg)
    assert data is not None
    return data


BAD = [
    (["override", "set", "gpu", "--pin", "3"], "unknown pool 'gpu' in"),
    (["override", "set", "ocr", "--pin", "-3"], "--pin must be 0 or more nodes (got -3)"),
    (["override", "set", "ocr", "--pin", "4.5"], "--pin must be a whole number of nodes, 0 or more (got '4.5')"),
    (["override", "set", "ocr", "--min", "ten"], "--min must be a whole number of nodes"),
    (["override", "set", "ocr", "--min", "30", "--max", "20"], "--min 30 is above --max 20"),
    (["override", "set", "ocr", "--min", "101"], "--min 101 is above the pool's max: pool 'ocr' allows 2..100 nodes"),
    (["override", "set", "ocr", "--min", "70"], "--min 70 is above the active manual ceiling 60"),
    (["override", "set", "ocr", "--pin", "500"], "--pin 500 is outside what pool 'ocr' allows 2..100 nodes"),
    (["override", "set", "ocr", "--max", "1"], "--max 1 is below the pool's min"),
    (["override", "set", "ocr", "--pin", "3", "--min", "2"], "--pin cannot be combined with --min/--max"),
    (["override", "set", "ocr"], "give one of --pin N, --min N or --max N"),
]
EXPIRY_BAD = [
    (["--until", "2026-12-01 09:00"], "is not in the future"),
    (["--until", "2026-11-01T00:00Z"], "is not in the future"),
    (["--for", "8d"], "beyond the hard maximum of 7d (overrides.max_duration)"),
    (["--until", "2026-12-20 10:00"], "beyond the hard maximum"),
    (["--for", "soon"], "--for: 'soon' is not a duration"),
    (["--for", "0s"], "--for must be longer than 0s"),
    (["--until", "half past six"], "--until: cannot read the time 'half past six'"),
    (["--until", "25:99"], "--until: '25:99' is not a time of day"),
    (["--until", "18:00", "--tz", "Asia/Kolkatta"], "unknown timezone 'Asia/Kolkatta'; did you mean 'Asia/Kolkata'?"),
    (["--until", "18:00 Europe/Berlinn"], "unknown timezone 'Europe/Berlinn'; did you mean 'Europe/Berlin'?"),
    ([], "give exactly one expiry: --for 3h or --until 18:00"),
    (["--for", "1h", "--until", "18:00"], "give exactly one expiry"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_override_values(env: Any, capsys: Any, monkeypatch: Any, args: list[str], message: str) -> None:
    cfg, _, recorder = env
    before = _seed(cfg, capsys, monkeypatch)
    audit_before = audit(cfg)
    res = cli([*args, "--for", "1h", "--reason", "r"], capsys, monkeypatch)
    assert res.code != 0
    assert message in res.text
    assert "Traceback" not in res.text
    assert store_bytes(cfg) == before
    assert audit(cfg) == audit_before
    assert [e.kind for e in recorder.events] == ["override_set"]  # only the seed


@pytest.mark.parametrize(("expiry", "message"), EXPIRY_BAD)
def test_bad_expiry(env: Any, capsys: Any, monkeypatch: Any, expiry: list[str], message: str) -> None:
    cfg, _, _ = env
    before = _seed(cfg, capsys, monkeypatch)
    res = cli(["override", "set", "ocr", "--pin", "5", *expiry, "--reason", "r"], capsys, monkeypatch)
    assert res.code != 0
    assert message in res.text
    assert store_bytes(cfg) == before


def test_reason_is_required_and_not_blank(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env
    res = cli(["override", "set", "ocr", "--pin", "5", "--for", "1h"], capsys, monkeypatch)
    assert res.code == 2 and "--reason" in res.text
    res = cli(["override", "set", "ocr", "--pin", "5", "--for", "1h", "--reason", "  "], capsys, monkeypatch)
    assert res.code == 1 and "--reason is required and cannot be empty" in res.text
    assert store_bytes(cfg) is None


def test_clear_unknown_target(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env
    before = _seed(cfg, capsys, monkeypatch)
    res = cli(["override", "clear", "ov-nope"], capsys, monkeypatch)
    assert res.code == 1 and "'ov-nope' is neither a pool (ocr, face) nor the id of an active override" in res.text
    assert store_bytes(cfg) == before


def test_corrupt_store_refuses_changes_and_is_left_alone(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env
    path = cfg.parent / "overrides.json"
    path.write_text('{"format": "forescale-overrides/1", "pools": {"ocr": ', encoding="utf-8")
    for args in (
        ["override", "set", "ocr", "--pin", "5", "--for", "1h", "-r", "x"],
        ["override", "clear", "ocr"],
        ["override", "list"],
    ):
        res = cli(args, capsys, monkeypatch)
        assert res.code == 1
        assert f"override store {path} is unreadable: not valid JSON" in res.text
    assert path.read_text(encoding="utf-8") == '{"format": "forescale-overrides/1", "pools": {"ocr": '


def test_schedule_commands_bad_input(env: Any, capsys: Any, monkeypatch: Any) -> None:
    res = cli(["schedule", "show", "--at", "someday"], capsys, monkeypatch)
    assert res.code == 1 and "cannot read the time 'someday'" in res.text
    res = cli(["schedule", "show", "--pool", "gpu"], capsys, monkeypatch)
    assert res.code == 2 and "unknown pool 'gpu' in" in res.text and "its pools: ocr, face" in res.text
    res = cli(["schedule", "next", "--count", "0"], capsys, monkeypatch)
    assert res.code == 2
    res = cli(["schedule", "show", "--at", "10:00", "--tz", "Mars/Base"], capsys, monkeypatch)
    assert res.code == 1 and "unknown timezone 'Mars/Base'" in res.text


def test_invalid_schedule_file_is_a_config_error(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env
    (cfg.parent / "schedule.yaml").write_text(SCHEDULE.replace("Asia/Kolkata", "Asia/Kolkatta"), encoding="utf-8")
    res = cli(["schedule", "show"], capsys, monkeypatch)
    assert res.code == 2
    assert "schedule.yaml" in res.text and "rules[0] (stores-open).timezone" in res.text
    assert "did you mean 'Asia/Kolkata'" in res.text


def test_notifier_failure_does_not_undo_the_change(env: Any, capsys: Any, monkeypatch: Any) -> None:
    cfg, _, _ = env

    class Broken(Recorder):
        def announce(self, event: Event) -> None:
            raise RuntimeError("slack is down")

    monkeypatch.setattr("autoscaler.wiring.build_notifiers", lambda config, console=True: [Broken()])
    res = cli(["override", "set", "ocr", "--pin", "5", "--for", "1h", "-r", "x"], capsys, monkeypatch)
    assert res.code == 0
    assert "Broken could not announce: slack is down" in res.text
    assert [r["type"] for r in audit(cfg)] == ["override_set"]
