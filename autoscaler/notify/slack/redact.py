"""Each Slack transport's secrets stay out of everything it reports: its token or webhook URL (and the URL's path)
are replaced in texts, and slack-sdk's own log lines pass the same redaction."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit


class Redactor:
    """Replaces the secrets of one transport (its token or webhook URL, and the URL's path) in text."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets: set[str] = set()
        for secret in secrets:
            self.secrets.add(secret)
            path = urlsplit(secret).path
            if secret.startswith("http") and len(path) > 8:
                self.secrets.add(path)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


class RedactingLogger:
    """What slack-sdk logs through (its ``logger=``): messages pass this transport's Redactor first.

    slack-sdk logs an ERROR per failed attempt and, at DEBUG, webhook URLs: it stays silent unless forescale
    runs with --debug.
    """

    def __init__(self, redact: Redactor) -> None:
        self._log = logging.getLogger("forescale.slack.sdk")
        self._redact = redact

    @property
    def level(self) -> int:
        return logging.DEBUG if logging.getLogger("forescale").isEnabledFor(logging.DEBUG) else logging.CRITICAL

    def _emit(self, level: int, msg: object, *args: object) -> None:
        if level >= self.level:
            text = str(msg) % args if args else str(msg)
            self._log.log(level, "%s", self._redact(text))

    def debug(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.DEBUG, msg, *args)

    def info(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.INFO, msg, *args)

    def warning(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.WARNING, msg, *args)

    def error(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, *args)

    def exception(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, *args)
