"""Config loading: valid files load; every error names the file, the key path and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.config import load_config
from autoscaler.core.durations import format_duration, parse_duration
from autoscaler.core.errors import ConfigError, UnknownPool
from tests import REPO

EXAMPLE = REPO / "forescale.example.yaml"

VALID = """
prometheus:
  url: http://127.0.0.1:9090
audit_log: audit.jsonl
pools:
  - name: ocr
    query: sum(rate(http_requests_total{job="ocr"}[5m]))
    nomad: {job: ml-ocr, group: workers}
    capacity_per_node: 32
    max: 40
    lead_time: 12m
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forescale.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == str(path)
    return info.value.problems


def test_valid_config_loads_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    pool = cfg.pool("ocr")
    assert pool.lead_time == timedelta(minutes=12)
    assert pool.target_utilization == 1.0  # headroom comes from the SLO, not a utilisation target
    assert cfg.daemon.interval == timedelta(minutes=20)
    assert cfg.audit_log == tmp_path / "audit.jsonl"
    assert cfg.nomad.verify_tls is True
    assert cfg.daemon.listen_host == "127.0.0.1"


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.pools, "the example documents at least one pool"


def test_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "forescale.example.yaml" in info.value.problems[0]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, "pools:\n  - name: [unclosed\n")
    assert "not valid YAML" in msg and "line" in msg


def test_wrong_value_names_pool_key_line_and_fix(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("capacity_per_node: 32", "capacity_per_node: -3"))
    assert msg.startswith("pools[0] (ocr).capacity_per_node (line 9)")
    assert "greater than 0" in msg
    assert "req/s one node sustains" in msg  # the fix: what the key means


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("max: 40", "max: 40\n    lead_tme: 5m"))
    assert "pools[0] (ocr).lead_tme" in msg
    assert "did you mean 'lead_time'" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("    max: 40\n", ""))
    assert msg.startswith("pools[0] (ocr).max")
    assert "required key is missing" in msg


def test_bad_duration_explains_the_format(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("lead_time: 12m", "lead_time: soon"))
    assert "pools[0] (ocr).lead_time" in msg and "1h30m" in msg


def test_min_above_max(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("max: 40", "max: 4\n    min: 9"))
    assert "min (9) is above max (4)" in msg


def test_name_injection_is_rejected(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID.replace("name: ocr", 'name: "ocr\\" ${attr}"'))
    assert "pools[0]" in msg and "lowercase letters, digits and '-'" in msg


def test_duplicate_pool_names(tmp_path: Path) -> None:
    text = VALID + VALID.split("pools:\n", 1)[1]
    (msg,) = problems(tmp_path, text)
    assert "used twice" in msg


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = VALID.replace("capacity_per_node: 32", "capacity_per_node: 0").replace("max: 40", "max: 0")
    found = problems(tmp_path, text)
    assert len(found) == 2


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, "- just\n- a list\n")
    assert "pools" in msg


def test_unknown_pool_lookup_lists_known_pools(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    with pytest.raises(UnknownPool, match=r"unknown pool 'asr' in .*forescale.yaml; its pools: ocr"):
        cfg.pool("asr")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), (45, 45), ("1.5h", 5400)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5x", "-5m", True])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("1h30m", "20m", "1d2h", "45s"):
        assert format_duration(parse_duration(text)) == text


def test_absolute_paths_are_kept_and_relative_ones_follow_the_file(tmp_path: Path) -> None:
    text = VALID.replace(
        "audit_log: audit.jsonl",
        "audit_log: audit.jsonl\nnomad:\n  ca_cert: /etc/nomad/ca.pem\n  client_cert: certs/client.pem\n"
        "overrides:\n  schedule_file: /etc/forescale/schedule.yaml\n",
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.nomad.ca_cert == Path("/etc/nomad/ca.pem")
    assert cfg.nomad.client_cert == tmp_path / "certs/client.pem"
    assert cfg.overrides.schedule_file == Path("/etc/forescale/schedule.yaml")


def test_every_relative_path_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not to the working directory: a cron job started elsewhere finds the same audit log, store and rules."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "rules.yaml").write_text("rules: []\n")
    text = VALID.replace("audit_log: audit.jsonl", "audit_log: state/audit.jsonl") + (
        "overrides: {path: state/overrides.json, schedule_file: rules.yaml}\n"
        "nomad: {ca_cert: tls/ca.pem, client_cert: tls/c.pem, client_key: tls/k.pem}\n"
    )
    text = text.replace("  url: http://127.0.0.1:9090", "  url: http://127.0.0.1:9090\n  ca_cert: tls/prom.pem")
    jobspec = "    jobspec: {image: x:1, nomad_client_config: agent.hcl}"
    text = text.replace("    lead_time: 12m", "    lead_time: 12m\n" + jobspec)
    path = conf / "forescale.yaml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("etc/forescale.yaml"))
    assert cfg.audit_log == Path("etc/state/audit.jsonl")
    assert cfg.overrides.path == Path("etc/state/overrides.json")
    assert cfg.overrides.schedule_file == Path("etc/rules.yaml")
    assert cfg.prometheus.ca_cert == Path("etc/tls/prom.pem")
    assert (cfg.nomad.ca_cert, cfg.nomad.client_cert, cfg.nomad.client_key) == (
        Path("etc/tls/ca.pem"),
        Path("etc/tls/c.pem"),
        Path("etc/tls/k.pem"),
    )
    settings = cfg.pool("ocr").jobspec
    assert settings is not None and settings.nomad_client_config == Path("etc/agent.hcl")


def test_the_example_starts_in_shadow_and_overrides_nothing_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "https://nomad.internal:4646")
    cfg = load_config(EXAMPLE)
    assert {p.mode for p in cfg.pools} == {"shadow"}
    assert cfg.nomad.address == "https://nomad.internal:4646" and cfg.nomad.address_origin == "$NOMAD_ADDR"
    assert cfg.overrides.schedule_file is None  # the sample rules are not switched on by copying the file
    assert all(p.max_step_down == "25%" for p in cfg.pools)


def test_default_step_down_is_a_quarter_and_can_be_turned_off(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, VALID))
    pool = cfg.pool("ocr")
    assert pool.max_step_down == "25%" and pool.max_step_up is None and pool.mode == "active"
    assert [pool.step_down_nodes(n) for n in (1, 4, 5, 12, 40)] == [1, 1, 2, 3, 10]
    off = load_config(write(tmp_path, VALID + "    max_step_down: null\n")).pool("ocr")
    assert off.step_down_nodes(40) is None


def test_a_bad_step_limit_names_the_key_and_the_fix(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, VALID + "    max_step_down: 150%\n")
    assert "pools[0]" in msg and "max_step_down" in msg and "between 0% and 100%" in msg
def test_config_check_warns_about_settings_that_never_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cooldown shorter than the tick never holds a tick back; a window of one tick holds nothing; a
    guard as slow as the tick never runs between ticks. Warnings name the key and the fix; exit 0."""
    from autoscaler.config import config_warnings
    from tests.cli_helpers import run_cli

    text = VALID + "    scale_in_cooldown: 15m\n    scale_in_window: 20m\n    guard: {interval: 20m}\n"
    path = write(tmp_path, text)
    warnings = config_warnings(load_config(path))
    assert [w.split(":")[0] for w in warnings] == [
        "pools[0] (ocr).scale_in_cooldown",
        "pools[0] (ocr).scale_in_window",
        "pools[0] (ocr).guard.interval",
    ]
    assert "15m is shorter than daemon.interval (20m)" in warnings[0] and "0s to turn it off" in warnings[0]
    res = run_cli(["config", "check", str(path)], capsys, monkeypatch)
    assert res.code == 0
    assert res.text.count("warning:") == 3 and "is valid" in res.text
    # The defaults (and an explicit 0s: off) raise no warning.
    assert config_warnings(load_config(write(tmp_path, VALID))) == []
    off = VALID + "    scale_in_cooldown: 0s\n    scale_in_window: 0s\n    guard: {enabled: false, interval: 1h}\n"
    assert config_warnings(load_config(write(tmp_path, off))) == []
    assert config_warnings(load_config(EXAMPLE)) == []


def test_scale_in_cooldown_and_window_count_in_ticks_unless_set(tmp_path: Path) -> None:
    """Unset, the cooldown is one tick and the window three (20m and 1h at the default interval): a pool
    ticking every 5m is not held for an hour. A value written in the file is kept as written, and a config
    given another interval later (backtest --interval) derives the unset ones again."""
    default = load_config(write(tmp_path, VALID)).pool("ocr")
    assert (default.scale_in_cooldown, default.scale_in_window) == (timedelta(minutes=20), timedelta(hours=1))
    fast = load_config(write(tmp_path, "daemon: {interval: 5m}\n" + VALID))
    pool = fast.pool("ocr")
    assert (pool.scale_in_cooldown, pool.scale_in_window) == (timedelta(minutes=5), timedelta(minutes=15))
    fixed = load_config(write(tmp_path, "daemon: {interval: 5m}\n" + VALID + "    scale_in_window: 2h\n"))
    assert fixed.pool("ocr").scale_in_window == timedelta(hours=2)
    assert fixed.pool("ocr").scale_in_cooldown == timedelta(minutes=5)
    slower = fixed.with_interval(timedelta(minutes=10))
    assert slower.daemon.interval == timedelta(minutes=10)
    assert slower.pool("ocr").scale_in_window == timedelta(hours=2)  # written in the file: kept
    assert slower.pool("ocr").scale_in_cooldown == timedelta(minutes=10)  # derived: follows the interval
    assert slower.audit_log == fixed.audit_log and slower.pool("ocr").lead_time == timedelta(minutes=12)
    from autoscaler.config import config_warnings

    assert config_warnings(slower) == []
