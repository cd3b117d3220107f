"""The HTTP side shared by the Compute Engine and Azure fakes: a threaded server on 127.0.0.1 (optionally TLS)
that hands each request to ``handle(Request) -> Reply`` and records it (tests read ``server.requests``).

Also the test credentials the fakes accept: a service-account key file for Google's Application Default
Credentials (its ``token_uri`` points at the fake, which issues tokens for a signed JWT assertion) and a static
Azure ``TokenCredential``; and a self-signed certificate for the Azure fake (Azure Resource Manager clients
refuse bearer tokens over plain HTTP).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or bytes as is
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    sent: Any = None  # the request's JSON body, if any


class CloudServer:
    """A loopback HTTP(S) server for one fake; ``handle`` is called under no lock of ours (the fake locks)."""

    def __init__(self, handle: Callable[[Request], Reply], *, tls: tuple[Path, Path] | None = None) -> None:
        self.handle = handle
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                req = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                try:
                    reply = outer.handle(req)
                except Exception as exc:  # a bug in the fake: answer 500 and show it in the test
                    reply = Reply(500, {"error": {"code": 500, "message": f"fake crashed: {exc!r}"}})
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                if reply.body is None:
                    data = b""
                with outer._lock:
                    parsed = reply.body if not isinstance(reply.body, bytes) else None
                    try:
                        sent = json.loads(body) if body else None
                    except ValueError:
                        sent = None
                    outer.requests.append(Seen(req.method, req.path, req.query, reply.status, parsed, sent))
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json; charset=UTF-8", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # keep-alive connections of the SDKs must not hold up stop()
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, name="cloud-fake", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CloudServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, needle: str, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if needle in r.path and (method is None or r.method == method)]


# ---------------------------------------------------------------------------------------------- credentials


_RSA_KEY: Any = None


def google_key_file(directory: Path, token_uri: str, project: str) -> Path:
    """A service-account key (a fresh RSA key) whose token_uri is the fake's: the real ADC path, offline."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    global _RSA_KEY
    if _RSA_KEY is None:  # one key per test process: generating one takes a while on a loaded machine
        _RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _RSA_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": f"forescale@{project}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }
    path = directory / "adc.json"
    path.write_text(json.dumps(info))
    return path


class StaticAzureCredential:
    """A ``TokenCredential`` for the tests (production uses DefaultAzureCredential only)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.calls += 1
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        self.calls += 1
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid a day; the certificate doubles as the CA bundle clients trust."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-cloud.pem", directory / "fake-cloud.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class CloudFake:
    """What both cloud fakes share around their world and server: start, stop, the world's own progress
    (``tick``) and scripted faults (``fail_next``: the next ``n`` requests of ``verb``, or of any verb, fail as
    ``kind``). Subclasses set ``world`` (with a ``tick()``) and ``server`` and answer in ``handle``."""

    world: Any
    server: CloudServer

    def __init__(self) -> None:
        self._faults: list[list[Any]] = []  # [kind, remaining, verb]
        self.canned: dict[str, list[Reply]] = {}  # verb → recorded replies to answer first (contract fixtures)
        self._lock = threading.RLock()

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def tick(self) -> None:
        with self._lock:
            self.world.tick()

    def fail_next(self, kind: str, n: int = 1, verb: str | None = None) -> None:
        with self._lock:
            self._faults.append([kind, n, verb])

