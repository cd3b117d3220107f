"""Builds the notifiers a config asks for (console by default; Slack when configured)."""

from __future__ import annotations

from autoscaler.config import Config
from autoscaler.console_notifier import ConsoleNotifier
from autoscaler.interfaces import Notifier


def build_notifiers(config: Config, console: bool = True) -> list[Notifier]:
    out: list[Notifier] = []
    if console:
        out.append(ConsoleNotifier())
    return out
