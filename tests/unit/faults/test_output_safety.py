"""Fault class 2: user and server text never breaks output, never forges a line, and a store change never
goes without its audit record.

The real CLI entry point runs in-process (``run_cli``) against the fake Nomad, the fake Slack and a hostile
Prometheus on 127.0.0.1; the daemon's console notifier is driven through ``run_tick``.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from autoscaler.core.clock import ManualClock
from autoscaler.core.effects import OverrideEffect
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.policy.tick import run_tick
from tests.cli_helpers import CliResult, run_cli
from tests.fakes.hostile import HostileServer, PrometheusScript, prometheus_error
from tests.fakes.nomad import FakeNomad
from tests.fakes.slack import FakeSlack
from tests.helpers import FlatMetrics, make_config, make_deps, pool_dict

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ESC = "\x1b"


@pytest.fixture
def prom() -> Any:
    script = PrometheusScript(lambda _t, _end: 150.0)
    with HostileServer(script) as server:
        server.script = script  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def world(
    tmp_path: Path, fake_nomad: FakeNomad, fake_slack: FakeSlack, prom: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    fake_nomad.add_job("ml-ocr", groups={"workers": 20}, scaling={"workers": (1, 100)})
    cfg = {
        "prometheus": {"url": prom.url, "timeout": "3s"},
        "nomad": {"address": fake_nomad.address, "retries": 0, "timeout": "3s", "token_env": "OUT_NOMAD_TOKEN"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "overrides": {"path": str(tmp_path / "overrides.json")},
        "predictor": {"model": "trend_lr"},
        "slack": {"channel": "C0123OPS", "base_url": fake_slack.base_url, "async_delivery": False, "timeout": "2s"},
        "pools": [
            {
                "name": "ocr",
                "query": "sum(rate(ocr_requests_total[5m]))",
                "nomad": {"job": "ml-ocr", "group": "workers"},
                "capacity_per_node": 10,
                "min": 1,
                "max": 100,
            }
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    monkeypatch.setenv("FORESCALE_CONFIG", str(path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake_slack.token)
    monkeypatch.setenv("COLUMNS", "250")
    return {"path": path, "tmp": tmp_path, "cfg": cfg}


def cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliResult:
    return run_cli(args, capsys, monkeypatch, clock=ManualClock(NOW))


def audit(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def pin(reason: str, capsys: Any, monkeypatch: Any, by: str = "alice") -> CliResult:
    return cli(
        ["override", "set", "ocr", "--pin", "5", "--for", "1h", "--reason", reason, "--by", by], capsys, monkeypatch
    )


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith(prefix)]


# ---------------------------------------------------------------------------------------- Rich markup


def test_markup_in_a_reason_is_stored_audited_announced_and_printed_literally(
    world: dict[str, Any], fake_slack: FakeSlack, capsys: Any, monkeypatch: Any
) -> None:
    res = pin("[/]", capsys, monkeypatch)
    assert res.code == 0, res.err
    assert "[/]" in res.out
    (record,) = [r for r in audit(world["tmp"]) if r["type"] == "override_set"]
    assert "[/]" in record["message"]
    (posted,) = fake_slack.posted
    assert "[/]" in posted["text"]


@pytest.mark.parametrize(
    "command", [["override", "list"], ["override", "list", "--all"], ["schedule", "show"], ["plan"]]
)
def test_markup_in_a_stored_reason_never_breaks_later_commands(
    world: dict[str, Any], command: list[str], capsys: Any, monkeypatch: Any
) -> None:
    assert pin("[/] [bold red]styled[/]", capsys, monkeypatch).code == 0
    res = cli(command, capsys, monkeypatch)
    assert res.code == 0, res.err
    assert "[/] [bold red]styled[/]" in res.text


def test_markup_in_an_author_is_printed_literally(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    res = pin("campaign", capsys, monkeypatch, by="[red]mallory[/red]")
    assert res.code == 0, res.err
    listed = cli(["override", "list"], capsys, monkeypatch)
    assert "[red]mallory[/red]" in listed.text


def test_markup_in_a_nomad_error_is_one_literal_line(
    world: dict[str, Any], fake_nomad: FakeNomad, capsys: Any, monkeypatch: Any
) -> None:
    fake_nomad.fail_next(500, 5, body="[/] rpc error: [bold]no leader")
    res = cli(["plan"], capsys, monkeypatch)
    assert res.code == 1
    assert "[/] rpc error: [bold]no leader" in res.text


def test_markup_in_a_prometheus_error_is_printed_literally(
    world: dict[str, Any], prom: HostileServer, capsys: Any, monkeypatch: Any
) -> None:
    prom.script.answer = lambda _req: prometheus_error("parse error at char 3: [/] unexpected")  # type: ignore[attr-defined]
    res = cli(["plan"], capsys, monkeypatch)
    assert res.code == 0, res.err  # held, not failed
    assert "[/] unexpected" in res.text


def test_markup_in_a_config_path_is_printed_literally(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    res = cli(["config", "check", str(tmp_path / "a[/]b.yaml")], capsys, monkeypatch)
    assert res.code == 2
    assert "a[/]b.yaml" in res.text and "file not found" in res.text


def test_markup_in_a_bad_parameter_is_one_line(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    res = cli(["plan", "--at", "[/]"], capsys, monkeypatch)
    assert res.code == 2
    assert "[/]" in res.text


# ---------------------------------------------------------------------------------------- control characters


def test_ansi_escapes_in_a_reason_never_reach_the_terminal(
    world: dict[str, Any], capsys: Any, monkeypatch: Any
) -> None:
    res = pin(f"{ESC}[2J{ESC}]0;owned{ESC}\\campaign{ESC}[31m", capsys, monkeypatch)
    assert res.code == 0, res.err
    for command in (["override", "list"], ["plan"]):
        out = cli(command, capsys, monkeypatch)
        assert ESC not in out.out + out.err
        assert "campaign" in out.text


def test_a_newline_in_a_reason_cannot_forge_an_output_line(
    world: dict[str, Any], capsys: Any, monkeypatch: Any
) -> None:
    forged = "2026-12-01 10:00 override_cleared override ov-deadbeef on pool 'ocr'"
    res = pin(f"campaign\n{forged}\r{forged}", capsys, monkeypatch)
    assert res.code == 0, res.err
    assert lines_starting(res.out, "2026-12-01 10:00 override_cleared") == []
    for command in (["override", "list"], ["plan"]):
        out = cli(command, capsys, monkeypatch)
        assert lines_starting(out.out + out.err, "2026-12-01 10:00 override_cleared") == []


def test_a_newline_in_a_nomad_error_cannot_forge_a_log_line(
    world: dict[str, Any], fake_nomad: FakeNomad, capsys: Any, monkeypatch: Any
) -> None:
    cfg = world["cfg"]
    cfg["nomad"]["retries"] = 1
    cfg["nomad"]["retry_backoff"] = "1ms"
    world["path"].write_text(yaml.safe_dump(cfg), encoding="utf-8")
    fake_nomad.fail_next(503, 5, body="busy\n2026-12-01 10:00:00,000 ERROR forescale.daemon: FORGED")
    res = cli(["plan"], capsys, monkeypatch)
    assert res.code == 1
    assert lines_starting(res.out + res.err, "2026-12-01 10:00:00,000 ERROR") == []


# ---------------------------------------------------------------------------------------- the daemon's console


def effect(explanation: str) -> OverrideEffect:
    return OverrideEffect(kind="pin", value=4, source="manual", name="ov-1", explanation=explanation)


class Pinned:
    def __init__(self, explanation: str) -> None:
        self.explanation = explanation

    def effects(self, pool: str, now: datetime) -> list[OverrideEffect]:
        return [effect(self.explanation)]

    def drain_events(self, now: datetime) -> list[Any]:
        return []

    def warnings(self) -> list[Any]:
        return []


@pytest.mark.parametrize(
    ("reason", "shown"),
    [
        ("[/]", "[/]"),
        ("[bold]x[/bold] [link=http://evil]y[/link]", "[bold]x[/bold] [link=http://evil]y[/link]"),
        ("a\nb\rc", "a"),
        (f"{ESC}[31mred", "red"),
    ],
)
def test_the_daemon_console_prints_one_safe_line_per_pool(reason: str, shown: str, caplog: Any) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=True)
    config = make_config(pool_dict("ocr"))
    notifier = ConsoleNotifier(console)
    deps = make_deps(config, FlatMetrics({config.pools[0].query: 30.0}), notifiers=[notifier], overrides=Pinned(reason))
    with caplog.at_level(logging.ERROR):
        run_tick(deps)
    assert not [r for r in caplog.records if "notifier" in r.getMessage()], caplog.text
    text = buf.getvalue()
    assert len(text.strip().splitlines()) == 1, text
    assert "ocr" in text and shown in text
    assert f"{ESC}[31mred" not in text


def test_reasons_with_markup_survive_the_slack_message(fake_slack: FakeSlack) -> None:
    """Held already: Slack text is mrkdwn-escaped; `<!channel>` in a reason never pings."""
    from autoscaler.notify.slack.notifier import SlackNotifier

    config = make_config(
        pool_dict("ocr"), slack={"channel": "C0123OPS", "base_url": fake_slack.base_url, "async_delivery": False}
    )
    slack = SlackNotifier.from_config(config, environ={"SLACK_BOT_TOKEN": fake_slack.token})
    metrics = FlatMetrics({config.pools[0].query: 30.0})
    deps = make_deps(config, metrics, notifiers=[slack], overrides=Pinned("<!channel> [/] campaign"))
    run_tick(deps)
    (posted,) = fake_slack.posted
    assert "<!channel>" not in json.dumps(posted)
    assert "&lt;!channel&gt; [/] campaign" in posted["text"]


# ---------------------------------------------------------------------------------------- one unit


def test_no_store_change_without_its_audit_record(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    cfg = world["cfg"]
    (world["tmp"] / "audit-dir").mkdir()
    cfg["audit_log"] = str(world["tmp"] / "audit-dir")
    world["path"].write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = pin("campaign", capsys, monkeypatch)
    assert res.code != 0
    assert "audit" in res.text and "Traceback" not in res.text
    store = world["tmp"] / "overrides.json"
    assert not store.exists() or json.loads(store.read_text())["pools"] == {}


def test_a_clear_is_not_stored_without_its_audit_record(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    assert pin("campaign", capsys, monkeypatch).code == 0
    before = (world["tmp"] / "overrides.json").read_text()
    cfg = world["cfg"]
    (world["tmp"] / "audit-dir").mkdir()
    cfg["audit_log"] = str(world["tmp"] / "audit-dir")
    world["path"].write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = cli(["override", "clear", "ocr"], capsys, monkeypatch)
    assert res.code != 0
    assert (world["tmp"] / "overrides.json").read_text() == before


def test_slack_down_never_loses_the_change_or_its_audit_record(
    world: dict[str, Any], fake_slack: FakeSlack, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-wrong-token")
    res = pin("campaign", capsys, monkeypatch)
    assert res.code == 0, res.err
    assert [r for r in audit(world["tmp"]) if r["type"] == "override_set"]
    assert json.loads((world["tmp"] / "overrides.json").read_text())["pools"]["ocr"]["active"]
