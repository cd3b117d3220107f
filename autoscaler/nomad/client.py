"""A thin wrapper over python-nomad: settings → client, Nomad's HTTP errors → forescale's exceptions.

Why a wrapper: python-nomad verifies TLS only when asked, falls back to ``NOMAD_*`` environment variables
behind the config's back, raises its own exceptions with the response inside, and has no job-scale or
``?cas=`` helpers that return headers. Everything here goes through python-nomad's ``Requester.request``
(its escape hatch) or its endpoint methods; there is no second HTTP client.

Threads: one client serves every pool of a tick at once (policy/runner.py). Its requests session is shared: the
connection pool (urllib3) is thread-safe and holds ``nomad.max_in_flight`` connections; python-nomad's
``Requester.request`` keeps nothing per call on the instance (headers and params are built per call); the bounded
adapter keeps each call's state in a ContextVar; nothing here mounts adapters or changes the session after
``__init__``. The leader lock's renewals share it too and are never queued behind the tick (``boundedhttp``).

Retries: reads are retried on ``NomadUnavailable`` (5xx, 429, timeouts, refused connections) with tenacity's
exponential backoff, ``settings.retries`` times. Writes are **not** retried unless the caller says the write
is idempotent (``retry=True``): a write whose answer was lost may already be applied (see ``NomadTarget.scale``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import nomad
import requests
import tenacity
from nomad.api.base import Requester
from nomad.api.exceptions import BaseNomadException

from autoscaler.boundedhttp import BoundedAdapter, CallDeadlineExceeded, ResponseTooLarge, mount
from autoscaler.core import deadline as deadlines
from autoscaler.core.errors import (
    CasConflict,
    DeploymentActive,
    JobIndexConflict,
    NomadAuthError,
    NomadError,
    NomadNotFound,
    NomadUnavailable,
    ScalingBoundsError,
)
from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.core.text import redact_url, redact_urls

log = logging.getLogger("forescale.nomad")

T = TypeVar("T")
MAX_BACKOFF_S = 10.0
MAX_BODY_IN_MESSAGE = 300


class NomadResponse(NamedTuple):
    """One answer: status, parsed body (JSON, text, or None when empty) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def nomad_index(self) -> int | None:
        """``X-Nomad-Index`` (the Raft index of a read or write), if Nomad sent it."""
        raw = self.headers.get("X-Nomad-Index")
        return int(raw) if raw and raw.isdigit() else None


class _OutOfTime(tenacity.stop.stop_base):
    """Stop retrying once the tick's deadline has passed."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        ambient = deadlines.current()
        return ambient is not None and ambient.expired()


class _PathRequester(Requester):
    """python-nomad's Requester addressed by API path segments (``request("job", id, "scale")``)."""

    ENDPOINT = ""

    def _endpoint_builder(self, *args: str) -> str:
        return f"{self.version}/" + "/".join(a.strip("/") for a in args if a)


class NomadClient:
    """forescale's Nomad connection, built from ``NomadSettings``. The token is never logged or put in messages."""

    def __init__(
        self,
        settings: NomadSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.address = settings.address.rstrip("/")
        self.shown_address = redact_url(self.address)  # for messages: never the address's credentials
        self.namespace = settings.namespace
        self._sleep = sleep
        self.session = session or requests.Session()
        token = settings.token()
        self._has_token = token is not None
        verify: bool | str = settings.verify_tls
        if settings.verify_tls and settings.ca_cert is not None:
            verify = str(settings.ca_cert)  # requests takes a CA bundle path in `verify`
        cert: tuple[str, str] | tuple[()] = ()
        if settings.client_cert is not None and settings.client_key is not None:
            cert = (str(settings.client_cert), str(settings.client_key))
        self.session.verify = verify
        timeout = settings.timeout.total_seconds()
        # Every call: at most `timeout` in total (and never past the tick's deadline), at most max_response_size.
        mount(
            self.session,
            BoundedAdapter(
                timeout,
                int(settings.max_response_size),
                what=f"Nomad at {self.shown_address}",
                max_in_flight=settings.max_in_flight,  # the tick's pools share this many requests at once
            ),
        )
        self.api = nomad.Nomad(
            address=self.address,
            token=token,
            namespace=settings.namespace,
            region=settings.region,
            timeout=timeout,  # requests takes float seconds
            verify=verify,  # python-nomad passes it on to requests unchanged (bool or CA bundle path)
            cert=cert,
            session=self.session,
        )
        self._raw = _PathRequester(
            address=self.address,
            namespace=None,
            token=token,
            timeout=timeout,
            verify=verify,
            cert=cert,
            region=settings.region,
            session=self.session,
        )
        self._pin(token, verify, cert)

    def _pin(self, token: str | None, verify: bool | str, cert: tuple[str, ...]) -> None:
        """python-nomad falls back to NOMAD_TOKEN/NOMAD_NAMESPACE/NOMAD_REGION/NOMAD_CLIENT_*: config wins."""
        for endpoint in vars(self.api).values():
            if isinstance(endpoint, Requester):
                endpoint.token = token
                endpoint.namespace = self.settings.namespace
                endpoint.region = self.settings.region
                endpoint.verify = verify
                endpoint.cert = cert

    # ------------------------------------------------------------------ generic helpers

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        retry: bool = True,
        timeout_s: float | None = None,
    ) -> NomadResponse:
        """GET ``/v1/<path>``; retried on NomadUnavailable. Raises a mapped NomadError on any error status.

        ``timeout_s`` replaces ``nomad.timeout`` for this request (a blocking query waits longer than that).
        """
        return self.call("GET", path, params=params, retry=retry, timeout_s=timeout_s)

    def put_json(
        self, path: str, body: Any, params: Mapping[str, Any] | None = None, *, retry: bool = False
    ) -> NomadResponse:
        return self.call("PUT", path, body=body, params=params, retry=retry)

    def post_json(
        self, path: str, body: Any, params: Mapping[str, Any] | None = None, *, retry: bool = False
    ) -> NomadResponse:
        return self.call("POST", path, body=body, params=params, retry=retry)

    def delete(self, path: str, params: Mapping[str, Any] | None = None, *, retry: bool = False) -> NomadResponse:
        return self.call("DELETE", path, params=params, retry=retry)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        retry: bool = False,
        timeout_s: float | None = None,
    ) -> NomadResponse:
        """One request to ``/v1/<path>`` (``path`` without ``/v1``; segments already quoted by the caller).

        ``namespace`` defaults to the configured one; pass ``namespace=None`` in ``params`` to send none.
        """
        query = {"namespace": self.namespace, **(params or {})}
        query = {k: v for k, v in query.items() if v is not None}
        clean = path.strip("/")
        if clean.startswith("v1/"):
            clean = clean[3:]

        def once() -> NomadResponse:
            return self._send(method, clean, body, dict(query), timeout_s)

        return self.retrying(once) if retry else once()

    def retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` with bounded exponential backoff on NomadUnavailable (``settings.retries`` retries)."""
        base = max(self.settings.retry_backoff.total_seconds(), 0.0)

        def sleep(seconds: float) -> None:  # never past the tick's deadline
            self._sleep(max(0.0, deadlines.budget(seconds)))

        retryer = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.retries + 1) | _OutOfTime(),
            wait=tenacity.wait_exponential(multiplier=base, min=base, max=MAX_BACKOFF_S),
            retry=tenacity.retry_if_exception_type(NomadUnavailable),
            sleep=sleep,
            reraise=True,
            before_sleep=lambda state: log.warning(
                "Nomad unavailable (attempt %d of %d): %s",
                state.attempt_number,
                self.settings.retries + 1,
                state.outcome.exception() if state.outcome else "",
            ),
        )
        return retryer(fn)

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any], timeout_s: float | None = None
    ) -> NomadResponse:
        kwargs: dict[str, Any] = {"method": method.lower(), "params": params}
        if body is not None:
            kwargs["json"] = body
        if timeout_s is not None:
            kwargs["timeout"] = timeout_s
        try:
            response = self._raw.request(path, **kwargs)
        except BaseNomadException as exc:
            raise self._map(exc, method, path, params) from None
        log.debug("%s /v1/%s → %s", method, path, response.status_code)
        return _to_response(response)

    def wrap(self, fn: Callable[[], T], method: str, path: str, params: Mapping[str, Any] | None = None) -> T:
        """Call a python-nomad endpoint method, mapping its exceptions like ``call`` does."""
        try:
            return fn()
        except BaseNomadException as exc:
            raise self._map(exc, method, path, dict(params or {})) from None
        except ValueError:  # python-nomad's .json() on a 200 that is not JSON (a proxy's page, a cut answer)
            raise NomadError(
                f"Nomad at {self.shown_address} answered {method} /v1/{path} with a body that is not JSON "
                "(is nomad.address the Nomad API, not a proxy or the UI?)"
            ) from None

    # ------------------------------------------------------------------ typed helpers used by the target

    def read_job(self, job_id: str, *, retry: bool = True) -> dict[str, Any]:
        """``GET /v1/job/:id`` via python-nomad's ``job.get_job``; 404 → NomadNotFound naming job and namespace."""
        path = f"job/{quote(job_id, safe='')}"

        def once() -> dict[str, Any]:
            job = self.wrap(lambda: self.api.job.get_job(job_id, namespace=self.namespace), "GET", path)
            if not isinstance(job, dict) or not isinstance(job.get("TaskGroups") or [], list):
                raise NomadError(
                    f"Nomad at {self.shown_address} answered GET /v1/{path} with {_shape(job)}, not a job "
                    "(is nomad.address the Nomad API?)"
                )
            return job

        return self.retrying(once) if retry else once()

    def job_allocations(self, job_id: str) -> list[dict[str, Any]]:
        """``GET /v1/job/:id/allocations`` (200 [] for an unknown job: callers read the job first)."""
        path = f"job/{quote(job_id, safe='')}/allocations"
        allocs = self.retrying(
            lambda: self.wrap(lambda: self.api.job.get_allocations(job_id, namespace=self.namespace), "GET", path)
        )
        if not isinstance(allocs, list) or not all(isinstance(a, dict) for a in allocs):
            raise NomadError(
                f"Nomad at {self.shown_address} answered GET /v1/{path} with {_shape(allocs)}, not a list of "
                "allocations (is nomad.address the Nomad API?)"
            )
        return allocs

    def job_summary(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/job/:id/summary``: per group Queued (what Nomad cannot place), Starting, Running, …"""
        body = self.get_json(f"job/{quote(job_id, safe='')}/summary").body
        if not isinstance(body, dict):
            raise NomadError(f"Nomad answered the summary of job '{job_id}' with {type(body).__name__}")
        return body

    def job_evaluations(self, job_id: str) -> list[dict[str, Any]]:
        """``GET /v1/job/:id/evaluations`` (``[]`` for an unknown job)."""
        body = self.get_json(f"job/{quote(job_id, safe='')}/evaluations").body
        return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []

    def scale_job(self, job_id: str, body: Mapping[str, Any]) -> NomadResponse:
        """One ``POST /v1/job/:id/scale``, never retried here (see ``NomadTarget.scale``)."""
        return self.post_json(f"job/{quote(job_id, safe='')}/scale", dict(body))

    def plan_job(self, job_id: str, job: Mapping[str, Any], *, diff: bool = True) -> dict[str, Any]:
        """``POST /v1/job/:id/plan``: Nomad's scheduler dry run and diff against the stored job. Nothing is stored,
        so it is retried like a read."""
        body = {"Job": dict(job), "Diff": diff, "PolicyOverride": False}
        reply = self.post_json(f"job/{quote(job_id, safe='')}/plan", body, retry=True).body
        if not isinstance(reply, dict):
            raise NomadError(f"Nomad answered the plan of job '{job_id}' with {type(reply).__name__}, not an object")
        return reply

    def scale_status(self, job_id: str, *, retry: bool = True) -> dict[str, Any]:
        """``GET /v1/job/:id/scale``: desired/placed/running counts and recent scaling events per group."""
        body = self.get_json(f"job/{quote(job_id, safe='')}/scale", retry=retry).body
        return body if isinstance(body, dict) else {}

    # ------------------------------------------------------------------ error mapping

    def _map(self, exc: BaseNomadException, method: str, path: str, params: Mapping[str, Any]) -> NomadError:
        what = f"{method} /v1/{path}"
        resp = exc.nomad_resp
        if isinstance(resp, ResponseTooLarge):  # not transient: never retried
            return NomadError(f"Nomad refused {what}: {resp} (nomad.max_response_size)")
        if not isinstance(resp, requests.Response):
            return self._unreachable(resp, what)
        status = resp.status_code
        text = (resp.text or "").strip()
        flat = redact_urls(" ".join(text.split()))  # one line: Nomad's multi-errors come as "1 error occurred:\n\t* …"
        short = flat if len(flat) <= MAX_BODY_IN_MESSAGE else flat[:MAX_BODY_IN_MESSAGE] + "…"
        ns = params.get("namespace") or self.namespace
        if status == 400:
            if "active deployment" in text:
                return DeploymentActive(
                    f"Nomad refused to scale {_subject(path)}: the job has an active deployment ({short})", 400, text
                )
            if "scaling policy" in text:
                return ScalingBoundsError(
                    f"Nomad refused to scale {_subject(path)}: {short}; the count must stay within the group's "
                    "scaling { min, max } in the jobspec: align the pool's min/max with it or change the jobspec",
                    400,
                    text,
                )
            return NomadError(f"Nomad rejected {what} (400): {short}", 400, text)
        if status == 403:
            return NomadAuthError(self._auth_message(text, what, ns), 403, text)
        if status == 404:
            return NomadNotFound(f"{_subject(path)} not found in namespace '{ns}'{self._region()} ({short})", 404, text)
        if status == 409:
            current = _json_or_none(resp)
            return CasConflict(f"{_subject(path)} changed concurrently (check-and-set conflict)", current, 409, text)
        if "No path to region" in text:
            return NomadError(
                f"Nomad at {self.shown_address} has no path to region '{params.get('region') or self.settings.region}' "
                f"({short}): fix nomad.region or leave it empty for the agent's own region",
                status,
                text,
            )
        if "Enforcing job modify index" in text:
            return JobIndexConflict(f"{_subject(path)} changed concurrently: {short}", status, text)
        if status == 500 and ("error occurred:" in text or "errors occurred:" in text):
            return NomadError(f"Nomad rejected {what} (validation failed): {short}", status, text)  # not transient
        if status == 429 or status >= 500:
            return NomadUnavailable(f"Nomad at {self.shown_address} answered {status} to {what}: {short}", status, text)
        return NomadError(f"Nomad answered {status} to {what}: {short}", status, text)

    def _unreachable(self, cause: object, what: str) -> NomadUnavailable:
        reason = _reason(cause)
        if isinstance(cause, requests.exceptions.SSLError):
            reason += " (TLS: set nomad.ca_cert to the CA that signed Nomad's certificate)"
        origin = self.settings.address_origin
        return NomadUnavailable(f"cannot reach Nomad at {self.shown_address} (address from {origin}; {what}): {reason}")

    def _auth_message(self, text: str, what: str, ns: str) -> str:
        env = self.settings.token_env
        if not self._has_token:
            return (
                f"Nomad denied {what} in namespace '{ns}' ({text}): no ACL token is set; "
                f"put a token's SecretID in the environment variable {env}"
            )
        if "ACL token not found" in text:
            return (
                f"Nomad does not know the ACL token in ${env} (ACL token not found): it is wrong, expired "
                f"or from another cluster/region; set {env} to a valid SecretID"
            )
        return (
            f"Nomad denied {what} in namespace '{ns}' (Permission denied): the token in ${env} lacks "
            f"{_capability(what)} in namespace '{ns}'; see docs/nomad.md for the ACL policy"
        )

    def _region(self) -> str:
        return f", region '{self.settings.region}'" if self.settings.region else ""


def _to_response(response: requests.Response) -> NomadResponse:
    """Status, body and headers; a body that claims JSON but is not stays text (callers check the shape)."""
    if response.status_code == 204 or not response.content:
        body: Any = None
    elif "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
        except ValueError:
            log.warning("Nomad answered %s with a body that is not JSON", response.status_code)
            body = response.text
    else:
        body = response.text
    return NomadResponse(response.status_code, body, response.headers)


def _shape(value: Any) -> str:
    """'a JSON list', 'JSON null'…: what an answer was, for messages (never its content)."""
    if value is None:
        return "JSON null"
    names = {dict: "a JSON object", list: "a JSON list", str: "a JSON string", bool: "a JSON boolean"}
    return names.get(type(value), "a JSON number" if isinstance(value, int | float) else type(value).__name__)


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _subject(path: str) -> str:
    """'job "x"' / 'variable "a/b"' from an API path, for messages."""
    parts = path.split("/")
    if parts[0] == "job" and len(parts) > 1:
        return f"job '{parts[1]}'"
    if parts[0] == "var" and len(parts) > 1:
        return f"variable '{'/'.join(parts[1:])}'"
    return f"/v1/{path}"


def _capability(what: str) -> str:
    method, _, path = what.partition(" ")
    if path.startswith("/v1/var"):
        return "variables capabilities (read/write/destroy on the path)"
    if path.endswith("/scale") and method != "GET":
        return "the scale-job capability"
    if path.startswith("/v1/jobs/parse"):
        return "the parse-job (or submit-job) capability"
    if method in ("POST", "PUT", "DELETE"):
        return "the submit-job capability"
    return "the read-job capability"


def _refused(cause: BaseException) -> bool:
    text = repr(cause)
    return "Connection refused" in text or "NewConnectionError" in text or "Name or service not known" in text


def _reason(cause: object) -> str:
    if isinstance(cause, CallDeadlineExceeded):
        return str(cause)
    if isinstance(cause, requests.exceptions.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return "timed out connecting"
    if isinstance(cause, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, requests.exceptions.ConnectionError):
        return "connection refused" if _refused(cause) else "connection failed"
    return type(cause).__name__
