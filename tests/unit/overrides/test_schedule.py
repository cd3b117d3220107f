"""Schedule rules: recurrence, lead time, DST, dated exceptions, one-off windows, validation and conflicts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pytest

from autoscaler.config import load_config
from autoscaler.core.errors import ConfigError
from autoscaler.core.timeutil import parse_when, to_utc, zone
from overrides.checks import check_config, find_conflicts
from overrides.schedule import Schedule, parse_days, parse_schedule, transition_times
from tests import REPO
from tests.cli_helpers import run_cli, write_config

LEADS = {"ocr": timedelta(minutes=10), "face": timedelta(minutes=15)}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def sched(text: str, leads: dict[str, timedelta] = LEADS) -> Schedule:
    return parse_schedule(dedent(text), Path("schedule.yaml"), leads)


def floors(s: Schedule, pool: str, at: datetime) -> dict[str, int]:
    return {e.name: e.value for e in s.effects(pool, at) if e.kind == "min"}


def ceilings(s: Schedule, pool: str, at: datetime) -> dict[str, int]:
    return {e.name: e.value for e in s.effects(pool, at) if e.kind == "max"}


STORES = """
rules:
  - name: stores-open
    pool: ocr
    timezone: Asia/Kolkata
    days: mon-fri
    window: "09:00-18:00"
    min: 50
"""


# ------------------------------------------------------------------ recurrence and lead


def test_weekday_window_with_lead_is_in_force_from_start_minus_lead_until_end() -> None:
    s = sched(STORES)
    # Tue 2026-12-01: 09:00 IST = 03:30 UTC; lead 10m → floor from 03:20 UTC; 18:00 IST = 12:30 UTC.
    assert floors(s, "ocr", utc(2026, 12, 1, 3, 19, 59)) == {}
    assert floors(s, "ocr", utc(2026, 12, 1, 3, 20)) == {"stores-open": 50}
    assert floors(s, "ocr", utc(2026, 12, 1, 12, 29)) == {"stores-open": 50}
    assert floors(s, "ocr", utc(2026, 12, 1, 12, 30)) == {}
    # Saturday: no floor.
    assert floors(s, "ocr", utc(2026, 12, 5, 6, 0)) == {}
    effect = s.effects("ocr", utc(2026, 12, 1, 3, 25))[0]
    assert effect.explanation.startswith("schedule rule 'stores-open' (Asia/Kolkata, mon-fri 09:00-18:00) floor 50")
    assert "ready for 09:00 IST" in effect.explanation
    assert effect.expires_at == utc(2026, 12, 1, 12, 30)
    assert effect.source == "schedule"


def test_rule_lead_overrides_pool_lead_and_ceilings_lift_one_lead_early() -> None:
    s = sched(
        """
        rules:
          - name: lunch
            pool: ocr
            timezone: UTC
            days: daily
            window: "13:00-14:00"
            max: 20
            lead: 30m
        """
    )
    assert ceilings(s, "ocr", utc(2026, 6, 1, 12, 59)) == {}
    assert ceilings(s, "ocr", utc(2026, 6, 1, 13, 0)) == {"lunch": 20}
    assert ceilings(s, "ocr", utc(2026, 6, 1, 13, 29)) == {"lunch": 20}
    assert ceilings(s, "ocr", utc(2026, 6, 1, 13, 30)) == {}  # lifts at end − lead: ready again at 14:00


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    s = sched(
        """
        rules:
          - name: night
            pool: ocr
            timezone: UTC
            days: fri
            window: "22:00-02:00"
            min: 7
            lead: 0s
        """
    )
    assert floors(s, "ocr", utc(2026, 12, 4, 23, 0)) == {"night": 7}  # Friday night
    assert floors(s, "ocr", utc(2026, 12, 5, 1, 59)) == {"night": 7}  # Saturday early morning
    assert floors(s, "ocr", utc(2026, 12, 5, 2, 0)) == {}
    assert floors(s, "ocr", utc(2026, 12, 5, 23, 0)) == {}  # Saturday night: not a Friday


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat", {5}),
        ("mon,wed,fri", {0, 2, 4}),
        (["mon-tue", "sun"], {0, 1, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("daily", set(range(7))),
        ("Saturday", {5}),
    ],
)
def test_parse_days(text: str | list[str], days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


def test_cron_rule_with_duration() -> None:
    s = sched(
        """
        rules:
          - name: reindex
            pool: face
            timezone: UTC
            cron: "0 */6 * * *"
            duration: 1h
            min: 4
        """
    )
    assert floors(s, "face", utc(2026, 5, 5, 5, 44)) == {}
    assert floors(s, "face", utc(2026, 5, 5, 5, 45)) == {"reindex": 4}  # 06:00 − 15m lead
    assert floors(s, "face", utc(2026, 5, 5, 6, 59)) == {"reindex": 4}
    assert floors(s, "face", utc(2026, 5, 5, 7, 0)) == {}


# ------------------------------------------------------------------ exceptions and one-off windows


def test_closed_on_dates_ranges_and_holiday_lists() -> None:
    s = sched(
        """
        timezone: Asia/Kolkata
        holidays:
          national: [2026-01-26, 2026-08-14]
        rules:
          - name: stores-open
            pool: ocr
            days: mon-fri
            window: "09:00-18:00"
            min: 50
            closed_on: [2026-12-25, "2026-12-28..2026-12-29", national]
        """
    )
    at_10_ist = timedelta(hours=4, minutes=30)
    for closed in (date(2026, 12, 25), date(2026, 12, 28), date(2026, 12, 29), date(2026, 1, 26), date(2026, 8, 14)):
        when = datetime.combine(closed, datetime.min.time(), UTC) + at_10_ist
        assert floors(s, "ocr", when) == {}, closed
    for open_day in (date(2026, 12, 24), date(2026, 12, 30)):
        when = datetime.combine(open_day, datetime.min.time(), UTC) + at_10_ist
        assert floors(s, "ocr", when) == {"stores-open": 50}, open_day


def test_one_off_dated_window() -> None:
    s = sched(
        """
        rules:
          - name: diwali
            pool: ocr
            timezone: Asia/Kolkata
            date: 2026-12-01
            window: 10:00-14:00
            min: 80
        """
    )
    # 10:00 IST = 04:30 UTC; floor from 04:20 (10m lead) to 08:30 UTC, that day only.
    assert floors(s, "ocr", utc(2026, 12, 1, 4, 19)) == {}
    assert floors(s, "ocr", utc(2026, 12, 1, 4, 20)) == {"diwali": 80}
    assert floors(s, "ocr", utc(2026, 12, 1, 8, 29)) == {"diwali": 80}
    assert floors(s, "ocr", utc(2026, 12, 1, 8, 30)) == {}
    assert floors(s, "ocr", utc(2026, 12, 2, 5, 0)) == {}
    assert transition_times_of(s, utc(2026, 11, 1), utc(2027, 1, 1)) == [
        utc(2026, 12, 1, 4, 20),
        utc(2026, 12, 1, 8, 30),
    ]


def transition_times_of(s: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return sorted({t.at for t in s.transitions(start, end)})


# ------------------------------------------------------------------ DST


def test_nine_am_is_nine_am_local_on_both_sides_of_berlin_changes() -> None:
    s = sched(
        """
        rules:
          - name: office
            pool: ocr
            timezone: Europe/Berlin
            days: daily
            window: "09:00-17:00"
            min: 10
            lead: 0s
        """
    )
    # Winter (CET, UTC+1) → 08:00 UTC; summer (CEST, UTC+2) → 07:00 UTC. Changes: 2026-03-29, 2026-10-25.
    starts = [t.at for t in s.transitions(utc(2026, 3, 28), utc(2026, 3, 31)) if t.starts]
    assert starts == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]
    starts = [t.at for t in s.transitions(utc(2026, 10, 24), utc(2026, 10, 27)) if t.starts]
    assert starts == [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]


def test_new_york_spring_forward_gap_starts_at_the_jump() -> None:
    # 02:30 does not exist in New York on 2026-03-08 (02:00 EST → 03:00 EDT): the rule starts at the jump,
    # 03:00 EDT = 07:00 UTC, the first instant the wall clock shows 02:30 or later.
    s = sched(
        """
        rules:
          - name: batch
            pool: ocr
            timezone: America/New_York
            days: daily
            window: "02:30-04:00"
            min: 5
            lead: 0s
        """
    )
    starts = [t.at for t in s.transitions(utc(2026, 3, 7), utc(2026, 3, 10)) if t.starts]
    assert starts == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    assert floors(s, "ocr", utc(2026, 3, 8, 6, 59)) == {}
    assert floors(s, "ocr", utc(2026, 3, 8, 7, 0)) == {"batch": 5}


def test_new_york_fall_back_repeated_time_uses_the_first_occurrence() -> None:
    # 01:30 happens twice on 2026-11-01 (EDT 05:30 UTC, then EST 06:30 UTC): the first one counts, and the
    # window 01:30-03:00 local then lasts 2h30 of real time.
    s = sched(
        """
        rules:
          - name: batch
            pool: ocr
            timezone: America/New_York
            days: daily
            window: "01:30-03:00"
            min: 5
            lead: 0s
        """
    )
    trans = [(t.at, t.starts) for t in s.transitions(utc(2026, 11, 1), utc(2026, 11, 2))]
    assert trans == [(utc(2026, 11, 1, 5, 30), True), (utc(2026, 11, 1, 8, 0), False)]


def test_cron_in_berlin_gap_and_fold() -> None:
    s = sched(
        """
        rules:
          - name: reindex
            pool: face
            timezone: Europe/Berlin
            cron: "30 2 * * *"
            duration: 90m
            min: 8
            lead: 0s
        """
    )
    spring = [t.at for t in s.transitions(utc(2026, 3, 28), utc(2026, 3, 31)) if t.starts]
    # 02:30 CET = 01:30 UTC; on 03-29 02:30 does not exist → 03:00 CEST = 01:00 UTC; then 02:30 CEST = 00:30 UTC.
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    autumn = [t.at for t in s.transitions(utc(2026, 10, 24), utc(2026, 10, 27)) if t.starts]
    # 10-25 02:30 happens twice: once only, the first (CEST, 00:30 UTC). Durations are elapsed time.
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    ends = [t.at for t in s.transitions(utc(2026, 10, 25), utc(2026, 10, 26)) if not t.starts]
    assert ends == [utc(2026, 10, 25, 2, 0)]


def test_to_utc_gap_and_fold_rule() -> None:
    berlin = zone("Europe/Berlin")
    assert to_utc(datetime(2026, 3, 29, 2, 30), berlin) == utc(2026, 3, 29, 1, 0)  # the jump, 03:00 CEST
    assert to_utc(datetime(2026, 3, 29, 2, 0), berlin) == utc(2026, 3, 29, 1, 0)
    assert to_utc(datetime(2026, 10, 25, 2, 30), berlin) == utc(2026, 10, 25, 0, 30)  # first (CEST)
    assert to_utc(datetime(2026, 7, 1, 12, 0), berlin) == utc(2026, 7, 1, 10, 0)


def test_parse_when_forms() -> None:
    now = utc(2026, 12, 1, 10, 0)
    assert parse_when("18:00", now) == utc(2026, 12, 1, 18, 0)
    assert parse_when("09:00", now) == utc(2026, 12, 2, 9, 0)  # already past today: tomorrow
    assert parse_when("2026-12-01 18:00 Asia/Kolkata", now) == utc(2026, 12, 1, 12, 30)
    assert parse_when("2026-12-01T18:00+05:30", now) == utc(2026, 12, 1, 12, 30)
    assert parse_when("2026-12-01T18:00Z", now) == utc(2026, 12, 1, 18, 0)
    assert parse_when("now+3h", now) == utc(2026, 12, 1, 13, 0)
    with pytest.raises(ValueError, match="cannot read the time"):
        parse_when("tomorrow-ish", now)
    with pytest.raises(ValueError, match="did you mean 'Asia/Kolkata'"):
        parse_when("18:00 Asia/Kolkatta", now)


# ------------------------------------------------------------------ transition_times (daemon's extra ticks)


def test_transition_times_from_config(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, STORES))
    got = transition_times(cfg, utc(2026, 11, 30), utc(2026, 12, 2))
    assert got == [
        utc(2026, 11, 30, 3, 20),
        utc(2026, 11, 30, 12, 30),
        utc(2026, 12, 1, 3, 20),
        utc(2026, 12, 1, 12, 30),
    ]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in got)
    assert transition_times(cfg, utc(2026, 11, 30, 3, 20), utc(2026, 11, 30, 3, 21)) == [utc(2026, 11, 30, 3, 20)]
    assert transition_times(cfg, utc(2026, 11, 30, 12, 30), utc(2026, 11, 30, 12, 30)) == []


def test_transition_times_without_schedule_is_empty(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    assert transition_times(cfg, utc(2026, 1, 1), utc(2027, 1, 1)) == []


# ------------------------------------------------------------------ validation errors


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("timezone: Asia/Kolkatta\n    window: 09:00-18:00\n    min: 5", "did you mean 'Asia/Kolkata'"),
        ("timezone: UTC\n    window: 25:00-18:00\n    min: 5", "'25:00' is not a time of day"),
        ("timezone: UTC\n    window: 9am-6pm\n    min: 5", "is not a time; write HH:MM"),
        ("timezone: UTC\n    window: 09:00-18:00\n    min: 9\n    max: 5", "min (9) is above max (5)"),
        ("timezone: UTC\n    cron: '61 * * * *'\n    duration: 1h\n    min: 5", "is not a 5-field cron expression"),
        ("timezone: UTC\n    cron: '0 9 * * *'\n    min: 5", "needs 'duration'"),
        ("timezone: UTC\n    window: 09:00-18:00", "needs 'min' (floor) and/or 'max'"),
        ("timezone: UTC\n    days: mon-fry\n    window: 09:00-18:00\n    min: 5", "'mon-fry' is not a day"),
        ("timezone: UTC\n    window: 09:00-18:00\n    min: 5\n    closed_on: [christmas]", "not a date"),
        ("timezone: UTC\n    window: 09:00-18:00\n    min: 5\n    colsed_on: []", "unknown key"),
        ("window: 09:00-18:00\n    min: 5", "no timezone; add 'timezone: Area/City'"),
    ],
)
def test_validation_errors_name_the_file_key_and_fix(rule: str, expected: str) -> None:
    text = f"rules:\n  - name: r1\n    pool: ocr\n    {rule}\n"
    with pytest.raises(ConfigError) as info:
        parse_schedule(text, Path("/etc/forescale/schedule.yaml"), LEADS)
    assert info.value.path == "/etc/forescale/schedule.yaml"
    joined = "; ".join(info.value.problems)
    assert expected in joined
    assert "rules[0] (r1)" in joined


def test_unknown_pool_is_reported_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        sched("rules:\n  - {name: r1, pool: gpu, timezone: UTC, window: 09:00-10:00, min: 1}\n")
    assert "rules[0] (r1).pool (line 2): unknown pool 'gpu'; use one of the config's pools (face, ocr)" in (
        info.value.problems
    )


def test_duplicate_rule_names() -> None:
    text = "rules:\n" + "".join(
        f"  - {{name: same, pool: ocr, timezone: UTC, window: 0{i}:00-0{i}:30, min: 1}}\n" for i in (1, 2)
    )
    with pytest.raises(ConfigError, match="used twice"):
        sched(text)


# ------------------------------------------------------------------ contradictions (config check)

CONFLICT = """
timezone: Europe/Berlin
rules:
  - name: busy
    pool: ocr
    days: mon-fri
    window: "09:00-18:00"
    min: 50
  - name: lunch-cap
    pool: ocr
    days: mon-fri
    window: "13:00-14:00"
    max: 30
  - name: weekend-cap
    pool: ocr
    days: sat-sun
    window: "00:00-24:00"
    max: 10
"""


def test_find_conflicts_reports_a_floor_above_a_ceiling_at_the_same_time() -> None:
    s = sched(CONFLICT)
    problems = find_conflicts(s, {"ocr": (2, 100), "face": (1, 20)}, utc(2026, 11, 30), utc(2026, 12, 30))
    assert len(problems) == 1  # weekend-cap (sat-sun) never meets the mon-fri floor
    assert "rules 'busy' (floor 50) and 'lunch-cap' (ceiling 30) of pool 'ocr'" in problems[0]
    assert "2026-11-30 13:00 CET (2026-11-30 12:00 UTC)" in problems[0]


def test_floor_lead_can_overlap_a_ceiling_and_is_reported() -> None:
    s = sched(
        """
        timezone: UTC
        rules:
          - {name: early, pool: ocr, days: daily, window: "09:00-10:00", min: 40}
          - {name: before, pool: ocr, days: daily, window: "08:00-09:05", max: 20}
        """
    )
    problems = find_conflicts(s, {"ocr": (2, 100)}, utc(2026, 1, 1), utc(2026, 1, 3))
    # The floor starts 10m (lead) before 09:00; the ceiling lifts 10m before 09:05: both hold 08:50-08:55.
    assert len(problems) == 1 and "08:50 UTC" in problems[0]
    s2 = sched(
        """
        timezone: UTC
        rules:
          - {name: early, pool: ocr, days: daily, window: "09:00-10:00", min: 40}
          - {name: before, pool: ocr, days: daily, window: "08:00-09:00", max: 20}
        """
    )
    # Back-to-back windows do not clash: the ceiling lifts at 08:50, exactly when the floor starts.
    assert find_conflicts(s2, {"ocr": (2, 100)}, utc(2026, 1, 1), utc(2026, 1, 3)) == []


def test_rule_bounds_outside_pool_limits_are_reported() -> None:
    s = sched("rules:\n  - {name: big, pool: face, timezone: UTC, window: 09:00-10:00, min: 25, max: 30}\n")
    problems = find_conflicts(s, {"face": (1, 20)}, utc(2026, 1, 1), utc(2026, 1, 2))
    assert problems == [
        "rule 'big': floor 25 is above pool 'face' max 20; lower the rule's min or raise the pool's max"
    ]


def test_config_check_cli_reports_contradictory_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, CONFLICT)
    res = run_cli(["config", "check", str(path)], capsys, monkeypatch)
    assert res.code == 2
    assert "schedule.yaml: rules 'busy' (floor 50) and 'lunch-cap' (ceiling 30)" in res.text
    ok = write_config(tmp_path, STORES)
    res = run_cli(["config", "check", str(ok)], capsys, monkeypatch)
    assert res.code == 0, res.text


def test_config_check_reports_schedule_syntax_errors(tmp_path: Path) -> None:
    cfg = load_config(
        write_config(
            tmp_path, "rules:\n  - {name: r, pool: ocr, timezone: Mars/Olympus, window: 09:00-10:00, min: 1}\n"
        )
    )
    problems = check_config(cfg)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'schedule.yaml'}: rules[0] (r).timezone")
    assert "unknown timezone 'Mars/Olympus'" in problems[0]


def test_example_schedule_file_is_valid_and_consistent() -> None:
    example = REPO / "overrides" / "schedule.yaml"
    s = parse_schedule(
        example.read_text(), example, {"ocr": timedelta(minutes=10), "face-match": timedelta(minutes=15)}
    )
    assert {r.name for r in s.rules} >= {"stores-open", "lunch-dip", "nightly-reindex", "diwali-campaign"}
    assert find_conflicts(s, {"ocr": (2, 100), "face-match": (1, 20)}, utc(2026, 1, 1), utc(2027, 1, 1)) == []
    # Christmas (a Friday) is closed; the day before is not.
    assert floors(s, "ocr", utc(2026, 12, 25, 5)) == {}
    assert floors(s, "ocr", utc(2026, 12, 24, 5)) == {"stores-open": 50}
