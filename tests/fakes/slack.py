"""A local HTTP server that behaves like Slack's Web API and incoming webhooks (127.0.0.1, free port).

Web API (``base_url`` = ``http://127.0.0.1:PORT/api/``):
- ``POST /api/auth.test`` and ``/api/chat.postMessage`` check ``Authorization: Bearer xoxb-…`` (no header:
  ``not_authed``, wrong token: ``invalid_auth``), parse JSON or form bodies, and answer HTTP 200 with
  ``{"ok": false, "error": …}`` like Slack: ``channel_not_found``, ``not_in_channel``, ``no_text``,
  ``invalid_blocks`` (bad Block Kit: unknown types, >50 blocks, header >150 or section >3000 chars).
Webhooks (``POST /services/T…/B…/secret``): ``200 ok``, ``400 invalid_payload``/``no_text``,
``403 invalid_token`` (wrong secret), ``404 no_service`` (unknown path), ``410 channel_is_archived``.

Scripted answers take precedence, in order, per path: e.g. a 429 with ``Retry-After: 0`` then a 500;
a script entry may ``hold`` the answer until an event is set (to test timeouts and async delivery).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BLOCK_TYPES = {"section", "header", "context", "divider", "actions", "image", "rich_text", "input", "markdown"}
HOLD_LIMIT_S = 10.0  # a held answer is released after this long at most (tests never wait for it)


@dataclass
class Scripted:
    """A canned answer: status, body (dict → JSON, str → text), headers, optional hold."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None


def rate_limited(retry_after: int = 0) -> Scripted:
    return Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 500) -> Scripted:
    return Scripted(status, "<html><body>Internal Server Error</body></html>", {"Content-Type": "text/html"})


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON / form dict / None
    answered: int = 0


class FakeSlack:
    """The fake. ``posted`` holds the payloads Slack accepted (chat.postMessage and webhooks)."""

    def __init__(
        self,
        token: str = "xoxb-1111-2222-fakefakefake",
        channels: dict[str, str] | None = None,
        member_of: set[str] | None = None,
        webhook_secret: str = "XXXXsecretXXXX",
    ) -> None:
        self.token = token
        self.channels = channels or {"C0123OPS": "ops-scaling", "C0456GEN": "general"}
        self.member_of = member_of if member_of is not None else set(self.channels)
        self.webhook_path = f"/services/T0000/B0000/{webhook_secret}"
        self.archived_webhooks: set[str] = set()
        self.requests: list[Recorded] = []
        self.posted: list[dict[str, Any]] = []
        self.scripts: dict[str, deque[Scripted]] = {}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.received = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-slack", daemon=True)
        self._holds: list[threading.Event] = []
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.set()
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.webhook_path}"

    # -- scripting and inspection ----------------------------------------------------------------------
    def script(self, path: str, *answers: Scripted) -> None:
        """Answer the next requests to ``path`` (e.g. '/api/chat.postMessage') with these, in order."""
        with self._lock:
            self.scripts.setdefault(path, deque()).extend(answers)
            self._holds.extend(a.hold for a in answers if a.hold is not None)

    def calls(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for_requests(self, path: str, count: int, timeout_s: float = 5.0) -> bool:
        """Block until ``count`` requests to ``path`` arrived (bounded)."""
        with self.received:
            return self.received.wait_for(
                lambda: sum(1 for r in self.requests if r.path == path) >= count, timeout=timeout_s
            )

    # -- the behaviour ----------------------------------------------------------------------------------
    def _answer(self, rec: Recorded) -> Scripted:
        with self._lock:
            queue = self.scripts.get(rec.path)
            if queue:
                return queue.popleft()
        if rec.path.startswith("/api/"):
            return self._web_api(rec)
        if rec.path.startswith("/services/"):
            return self._webhook(rec)
        return Scripted(404, "not found", {"Content-Type": "text/plain"})

    def _web_api(self, rec: Recorded) -> Scripted:
        method = rec.path[len("/api/") :]
        auth = rec.headers.get("authorization", "")
        if not auth:
            return _err("not_authed")
        if auth != f"Bearer {self.token}":
            return _err("invalid_auth")
        if method == "auth.test":
            return Scripted(
                200,
                {
                    "ok": True,
                    "url": "https://acme.slack.com/",
                    "team": "Acme",
                    "user": "forescale",
                    "team_id": "T0000",
                    "user_id": "U0000",
                    "bot_id": "B0000",
                },
            )
        if method != "chat.postMessage":
            return _err("unknown_method")
        body = rec.body
        if not isinstance(body, dict):
            return _err("invalid_json" if "json" in rec.headers.get("content-type", "") else "invalid_form_data")
        channel = self._channel_id(str(body.get("channel") or ""))
        if channel is None:
            return _err("channel_not_found")
        if channel not in self.member_of:
            return _err("not_in_channel")
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return _err("invalid_blocks_format")
        if not body.get("text") and not blocks:
            return _err("no_text")
        problem = validate_blocks(blocks) if blocks is not None else None
        if problem:
            return Scripted(200, {"ok": False, "error": "invalid_blocks", "errors": [problem]})
        ts = f"1700000000.{next(self._ts):06d}"
        with self._lock:
            self.posted.append(body)
        return Scripted(200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text", "")}})

    def _webhook(self, rec: Recorded) -> Scripted:
        if not rec.path.startswith("/services/T0000/B0000/"):
            return _text(404, "no_service")
        if rec.path != self.webhook_path:
            return _text(403, "invalid_token")
        if rec.path in self.archived_webhooks:
            return _text(410, "channel_is_archived")
        body = rec.body
        if not isinstance(body, dict) or "json" not in rec.headers.get("content-type", ""):
            return _text(400, "invalid_payload")
        if "channel" in body:
            return _text(400, "invalid_payload")  # webhooks post to their own channel
        if not body.get("text") and not body.get("blocks"):
            return _text(400, "no_text")
        if body.get("blocks") is not None and validate_blocks(body["blocks"]):
            return _text(400, "invalid_blocks")
        with self._lock:
            self.posted.append(body)
        return _text(200, "ok")

    def _channel_id(self, name: str) -> str | None:
        if name in self.channels:
            return name
        bare = name.lstrip("#")
        return next((cid for cid, n in self.channels.items() if n == bare), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:
                self._reply(Scripted(405, "method_not_allowed", {"Content-Type": "text/plain"}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = Recorded("POST", self.path, headers, raw, _parse(raw, headers.get("content-type", "")))
                with fake.received:
                    fake.requests.append(rec)
                    fake.received.notify_all()
                answer = fake._answer(rec)
                if answer.hold is not None:
                    answer.hold.wait(HOLD_LIMIT_S)
                rec.answered = answer.status
                self._reply(answer)

            def _reply(self, answer: Scripted) -> None:
                if isinstance(answer.body, dict):
                    payload = json.dumps(answer.body).encode()
                    ctype = "application/json; charset=utf-8"
                else:
                    payload = answer.body.encode()
                    ctype = "text/html" if answer.body.startswith("<") else "text/plain"
                headers = {"Content-Type": ctype, **answer.headers}
                try:
                    self.send_response(answer.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        return Handler


def _err(code: str) -> Scripted:
    return Scripted(200, {"ok": False, "error": code})


def _text(status: int, body: str) -> Scripted:
    return Scripted(status, body, {"Content-Type": "text/plain"})


def _parse(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return None
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(text).items()}
    return None


def validate_blocks(blocks: Any) -> str | None:
    """Slack's Block Kit limits the notifier must respect; a message describing the first violation."""
    if not isinstance(blocks, list):
        return "blocks must be an array"
    if len(blocks) > 50:
        return f"must provide fewer than 50 blocks (got {len(blocks)})"
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") not in BLOCK_TYPES:
            return f"blocks[{i}]: unknown block type"
        text = b.get("text")
        bad_header = not isinstance(text, dict) or text.get("type") != "plain_text" or len(text.get("text", "")) > 150
        if b["type"] == "header" and bad_header:
            return f"blocks[{i}].text: header needs plain_text of at most 150 characters"
        if b["type"] == "section":
            if text is not None and (not isinstance(text, dict) or len(text.get("text", "")) > 3000):
                return f"blocks[{i}].text: must be at most 3000 characters"
            if text is None and not b.get("fields"):
                return f"blocks[{i}]: section needs text or fields"
        if b["type"] == "context":
            elements = b.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                return f"blocks[{i}].elements: 1 to 10 elements"
    return None
