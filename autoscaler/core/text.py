"""Untrusted text on its way out: terminal, logs, Rich markup, the audit log, Slack, /healthz.

Override reasons, authors, Nomad and Prometheus error bodies, file names: any of them may carry ANSI escape
sequences (repaint a terminal), control characters (a newline forges a log line) or Rich markup (``[/]``
crashes a Rich print), and a configured URL may carry ``user:password@``. Every output path runs text through
``safe`` (or ``markup_safe`` before Rich), so none of that reaches a reader:

* ANSI/terminal escape sequences are removed;
* other control characters (C0, DEL, C1, Unicode line/paragraph separators, bidi overrides) become visible
  escapes (``\\n``, ``\\x1b``, ``\\u2028``), so one record stays one line;
* ``scheme://user:password@host`` becomes ``scheme://***@host``;
* every configured secret value (``remember_secrets``: tokens, passwords, a command's env values), credential
  headers in library debug logs and AWS access key ids become ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from rich.markup import escape as _rich_escape

# CSI (ESC [ … final), OSC (ESC ] … BEL or ST), and two-character ESC sequences; 8-bit CSI/OSC too.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x9d[^\x07\x9c]*(?:\x07|\x9c)?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": " "}
# scheme://userinfo@ — userinfo is everything up to the first @ before the host (no /, whitespace or @ in it).
_URL_CREDENTIALS = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]+@")
# Values that look like a credential, never to be echoed (Slack, GitHub, AWS, JWT, bearer tokens, long hex/base64).
_SECRET_SHAPES = re.compile(
    r"^(?:xox[abposr]-|xapp-|ghp_|gho_|github_pat_|glpat-|AKIA|ASIA|eyJ|sk-|Bearer\s|Basic\s)"
    r"|^[A-Fa-f0-9-]{32,}$|^[A-Za-z0-9+/=_-]{40,}$"
    r"|hooks\.slack\.com/services/"
    r"|://[^/\s@]+:[^/\s@]+@"
)


# Credential-bearing HTTP headers as libraries print them in debug logs ("'Authorization': b'AWS4-HMAC-SHA256
# Credential=…'", "x-amz-security-token:IQo…"), and AWS access key ids wherever they appear.
_HEADER_SECRET = re.compile(
    r"(?i)((?:authorization|proxy-authorization|x-amz-security-token|x-api-key|cookie|set-cookie)['\"]?\s*[:=]\s*"
    r"(?:b?['\"])?)[^'\"\n,}]+"
)
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
REDACTED = "[redacted]"
_known_secrets: tuple[str, ...] = ()


def remember_secrets(values: Iterable[str]) -> None:
    """Add configured secret values (``core.settings.secrets.configured_secrets``) to what ``redact`` masks in
    every output of this process: terminal, logs, errors, the audit log, Slack, /healthz."""
    global _known_secrets
    merged = set(_known_secrets) | {v for v in values if v}
    _known_secrets = tuple(sorted(merged, key=len, reverse=True))  # longest first: no half-masked value


def forget_secrets() -> None:
    """For tests: start again with no known secret."""
    global _known_secrets
    _known_secrets = ()


def redact(text: str) -> str:
    """URL credentials, every remembered secret value, credential headers and AWS key ids → masked."""
    text = redact_urls(text)
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text or ":" in text or "=" in text:
        text = _HEADER_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    return _AWS_KEY_ID.sub(REDACTED, text)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """Control characters → visible escapes (no line breaks, no terminal control); ANSI sequences removed."""
    return _CONTROL.sub(_visible, strip_ansi(text))


def redact_urls(text: str) -> str:
    """``https://user:pass@host`` → ``https://***@host`` anywhere in ``text``."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def redact_url(url: str) -> str:
    """A configured URL for display: its userinfo replaced by ``***`` (and nothing else changed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_urls(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def strip_userinfo(url: str) -> str:
    """A URL without its userinfo (``https://user:pass@host/x`` → ``https://host/x``), for a link or an embedded
    address that must carry no credentials (a URL that does not parse gets its credentials redacted instead)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_urls(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def safe(text: object) -> str:
    """Any text for any output: credentials redacted, one line, no terminal control."""
    return one_line(redact(str(text)))


def safe_multiline(text: object) -> str:
    """Like ``safe`` but keeps line breaks (for a block printed on purpose, e.g. a table's cell)."""
    return "\n".join(safe(line) for line in str(text).split("\n"))


def markup_safe(text: object) -> str:
    """``safe`` text escaped for Rich markup: printed literally, ``[/]`` included."""
    return _rich_escape(safe(text))


def looks_like_secret(value: object) -> bool:
    """True for values shaped like a token, key or credential URL (never echo those back)."""
    return isinstance(value, str) and bool(_SECRET_SHAPES.search(value.strip()))


class RedactFilter(logging.Filter):
    """On a handler: every record's message (and traceback text) redacted before any formatter sees it — the
    JSON log formatter too, and third-party loggers (botocore, urllib3) whose debug lines carry headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it always does
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class SafeFormatter(logging.Formatter):
    """A log formatter whose message part is ``safe``: a newline in an override reason or an error body
    cannot forge a log line, and URL credentials never reach a log. Tracebacks (``--debug``) stay multi-line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = safe(record.message)
        return super().formatMessage(record)
