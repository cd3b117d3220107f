"""Untrusted text on its way out (autoscaler.core.text): one line, no terminal control, no URL credentials."""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from autoscaler.core.text import SafeFormatter, looks_like_secret, markup_safe, redact_url, redact_urls, safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab here"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b]0;title\x07x", "x"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("bell\x07", "bell\\x07"),
        ("line\u2028sep", "line\\u2028sep"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
        ("plain: ok ✓", "plain: ok ✓"),
    ],
)
def test_safe_is_one_visible_line(raw: str, shown: str) -> None:
    assert safe(raw) == shown


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("cannot reach http://user:pa55@host:4646/v1", "cannot reach http://***@host:4646/v1"),
        ("https://token@example.com", "https://***@example.com"),
        ("two: http://a:b@x and https://c:d@y/z", "two: http://***@x and https://***@y/z"),
        ("mail alice@example.com, not a URL", "mail alice@example.com, not a URL"),
        ("http://host/path@v2", "http://host/path@v2"),
    ],
)
def test_url_credentials_are_redacted(raw: str, shown: str) -> None:
    assert redact_urls(raw) == shown


def test_redact_url_keeps_everything_but_the_userinfo() -> None:
    assert redact_url("https://u:p@nomad.example.com:4646/ui?x=1") == "https://***@nomad.example.com:4646/ui?x=1"
    assert redact_url("http://127.0.0.1:9090") == "http://127.0.0.1:9090"


@pytest.mark.parametrize("text", ["[/]", "[bold red]x[/]", "[link=http://evil]y[/link]", "\\[/]", "[[/]]"])
def test_markup_safe_prints_literally(text: str) -> None:
    console = Console(record=True, width=200)
    console.print(markup_safe(text))
    assert console.export_text().rstrip("\n") == text


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("xoxb-1234-abcd", True),
        ("https://hooks.slack.com/services/T0/B0/abc", True),
        ("Bearer abc.def", True),
        ("http://u:p@host", True),
        ("0123456789abcdef0123456789abcdef", True),
        ("SLACK_BOT_TOKEN", False),
        ("NOMAD_TOKEN", False),
        ("http://127.0.0.1:4646", False),
    ],
)
def test_looks_like_secret(value: str, secret: bool) -> None:
    assert looks_like_secret(value) is secret


def test_the_safe_formatter_keeps_one_record_on_one_line() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "reason: %s", ("a\nERROR forged http://u:p@h",), None)
    assert formatter.format(record) == "WARNING reason: a\\nERROR forged http://***@h"
