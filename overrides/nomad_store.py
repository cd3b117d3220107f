"""Manual overrides in Nomad Variables: shared by a team, and Nomad ACLs decide who may write.

One variable per pool at ``<overrides.nomad_variable_prefix>/<pool>`` (so ACL policies can grant a team
write access to its own pools only), with items ``format``, ``active`` and ``history`` (JSON text:
Variables hold strings). Every change is a check-and-set write (``?cas=<ModifyIndex>``; 0 = create);
on a 409 conflict the store re-reads (Nomad's 409 body is the current variable), re-applies the change
and tries again after a backoff with full jitter (a random wait up to 50 ms × 2^attempt, capped at 1 s: the
AWS Architecture Blog's "Exponential Backoff And Jitter"), so many writers at once spread out instead of
colliding again; at most ``MAX_ATTEMPTS`` tries. A pool left with no records is deleted (204) with CAS too.

An answer that is not a variable at all (a proxy's page, a cut body, JSON null) is read once more, then
reported as what it is — Nomad's answer — never as a broken variable to move away.

Reads: ``read`` reads each pool's variable once, several at a time (a tick's calls are bounded by
``nomad.max_in_flight``); a tick reads the store once and expires from that read (``overrides.provider``), so a
variable is read again only to expire an override in it (``modify`` reads, then writes with check-and-set).

Text is stored as UTF-8 (``ensure_ascii=False``): a non-ASCII reason costs its UTF-8 bytes, not 6 per character
of ``\\uXXXX`` escapes, against the 64 KiB limit.

Size: Nomad caps a variable at 64 KiB (Σ len(key) + len(value) of its items) and answers a bigger write with
``400 variables are limited to 64KiB in total size``. Before writing, the store drops the oldest *ended*
overrides (history) until the items fit; active overrides are never dropped: if they alone do not fit, the
change is refused with a clear error and nothing is written (the overrides in force stay as they were).
"""

from __future__ import annotations

import contextvars
import json
import random
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import ValidationError

from autoscaler.core.errors import CasConflict, NomadError, NomadNotFound, OverrideError
from autoscaler.core.ports import OverrideStore
from overrides.manual import ManualOverride, PoolRecords
from overrides.store import FORMAT

if TYPE_CHECKING:
    from autoscaler.nomad.client import NomadClient

T = TypeVar("T")
MAX_ATTEMPTS = 20
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0
VARIABLE_MAX_BYTES = 65536  # nomad/structs/variables.go: Items.Size() limit


class NomadVariablesStore(OverrideStore[PoolRecords]):
    """OverrideStore on Nomad Variables, through forescale's NomadClient (python-nomad underneath)."""

    def __init__(
        self,
        client: NomadClient,
        prefix: str,
        max_attempts: int = MAX_ATTEMPTS,
        *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.client = client
        self.sleep = sleep
        self.jitter = jitter
        self.prefix = prefix.strip("/")
        self.max_attempts = max_attempts
        self.location = f"Nomad variables {self.prefix}/<pool> (namespace '{client.namespace}')"

    blocking_version = True

    def version(self, after: Hashable | None = None, wait_s: float = 0.0) -> Hashable | None:
        """The Raft index of the variables under the prefix (``X-Nomad-Index`` of ``GET /v1/vars``); with
        ``after`` and ``wait_s`` a blocking query that returns as soon as one of them changes."""
        params: dict[str, Any] = {"prefix": self.prefix + "/"}
        timeout: float | None = None
        if isinstance(after, int) and wait_s > 0:
            params |= {"index": after, "wait": f"{max(1, round(wait_s))}s"}
            timeout = wait_s + self.client.settings.timeout.total_seconds()  # Nomad adds up to wait/16 of jitter
        try:
            resp = self.client.get_json("vars", params, retry=False, timeout_s=timeout)
        except NomadError as exc:
            raise OverrideError(f"cannot watch Nomad variables under '{self.prefix}/': {exc}") from None
        return resp.nomad_index

    def var_path(self, pool: str) -> str:
        return f"{self.prefix}/{pool}"

    def read(self, pools: Sequence[str]) -> dict[str, PoolRecords]:
        """Each pool's records: one GET per pool, several at once."""
        names = list(dict.fromkeys(pools))
        workers = min(len(names), self.client.settings.max_in_flight)
        if workers <= 1:
            got = [self._get(p) for p in names]
        else:  # each call in a copy of the caller's context: the tick's deadline bounds it
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="forescale-vars") as pool:
                futures = [pool.submit(contextvars.copy_context().run, self._get, p) for p in names]
                got = [f.result() for f in futures]
        return {p: r for p, (r, _) in zip(names, got, strict=True)}

    def modify(self, pool: str, fn: Callable[[PoolRecords], T]) -> T:
        records, index = self._get(pool)
        for attempt in range(self.max_attempts):
            if attempt:  # after a conflict: wait a random share of an exponentially growing window
                self.sleep(self.jitter(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
            before = records.model_dump(mode="json")
            out = fn(records)
            if records.model_dump(mode="json") == before:
                return out
            try:
                self._write(pool, records, index)
                return out
            except CasConflict as exc:
                # Someone else wrote first: start again from their version (the 409 body, or a re-read).
                current = exc.current
                if current is not None and "Items" in current:
                    records, index = self._parse(pool, current), int(current.get("ModifyIndex") or 0)
                else:
                    records, index = self._get(pool)
            except NomadError as exc:
                raise OverrideError(self._write_error(pool, exc)) from None
        raise OverrideError(
            f"gave up writing Nomad variable '{self.var_path(pool)}' after {self.max_attempts} check-and-set "
            "conflicts (others keep changing it); try again"
        )

    # ------------------------------------------------------------------ internals

    def _url(self, pool: str) -> str:
        return "var/" + quote(self.var_path(pool), safe="/")

    def _get(self, pool: str) -> tuple[PoolRecords, int]:
        body: Any = None
        for _attempt in range(2):  # an answer that is not a variable is read once more before it is reported
            try:
                resp = self.client.get_json(self._url(pool))
            except NomadNotFound:
                return PoolRecords(), 0
            except NomadError as exc:
                raise OverrideError(f"cannot read Nomad variable '{self.var_path(pool)}': {exc}") from None
            body = resp.body
            if isinstance(body, dict) and isinstance(body.get("Items"), dict):
                return self._parse(pool, body), int(body.get("ModifyIndex") or 0)
        shape = "text that is not JSON" if isinstance(body, str) else _shape(body)
        raise OverrideError(
            f"cannot read Nomad variable '{self.var_path(pool)}': Nomad at {self.client.shown_address} answered twice "
            f"with {shape}, not a variable (a proxy's page or a cut answer; usually passing); the variable was not "
            "read or changed: try again"
        )

    def _parse(self, pool: str, var: dict[str, Any]) -> PoolRecords:
        items = var.get("Items") or {}
        where = f"Nomad variable '{self.var_path(pool)}'"
        if items.get("format") != FORMAT:
            raise OverrideError(
                f"{where} is not a forescale override store (items.format is {items.get('format')!r}, "
                f"expected '{FORMAT}'); move it away or set overrides.nomad_variable_prefix to a free path"
            )
        try:
            active = [ManualOverride.model_validate(o) for o in json.loads(items.get("active") or "[]")]
            history = [ManualOverride.model_validate(o) for o in json.loads(items.get("history") or "[]")]
        except (json.JSONDecodeError, TypeError, ValidationError, RecursionError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
            raise OverrideError(
                f"{where} is unreadable ({type(exc).__name__}: {detail}); "
                "forescale will not overwrite it: fix its items by hand (nomad var get/put)"
            ) from None
        return PoolRecords(active=active, history=history)

    def _write(self, pool: str, records: PoolRecords, index: int) -> None:
        if records.empty():
            if index:
                self.client.delete(self._url(pool), params={"cas": index})
            return
        items = self._fit(pool, records)
        body = {"Namespace": self.client.namespace, "Path": self.var_path(pool), "Items": items}
        self.client.put_json(self._url(pool), body, params={"cas": index})

    def _fit(self, pool: str, records: PoolRecords) -> dict[str, str]:
        """The variable's items within Nomad's 64 KiB: the oldest ended overrides go first, active ones never."""
        while True:
            items = _items(records)
            size = variable_size(items)
            if size <= VARIABLE_MAX_BYTES:
                return items
            if not records.history:
                raise OverrideError(
                    f"cannot store the overrides of pool {pool}: the {len(records.active)} active override(s) take "
                    f"{size} bytes and a Nomad variable ('{self.var_path(pool)}') holds at most {VARIABLE_MAX_BYTES}; "
                    "nothing was written and the overrides in force are unchanged; shorten the reasons or clear "
                    "an override"
                )
            records.history = records.history[1:]  # oldest first

    def _write_error(self, pool: str, exc: NomadError) -> str:
        text = str(exc.body or exc)
        where = f"Nomad variable '{self.var_path(pool)}'"
        if "limited to 64KiB" in text:
            return (
                f"cannot write {where}: Nomad refused it as larger than 64 KiB; nothing was written and the "
                "overrides in force are unchanged; shorten the reasons or clear an override"
            )
        if "invalid path" in text:
            return (
                f"cannot write {where}: Nomad refused the path ({text.strip()}); fix overrides.nomad_variable_prefix "
                "(letters, digits, - _ ~ / only, at most 128 characters with the pool name)"
            )
        return f"cannot write {where}: {exc}"


def _items(records: PoolRecords) -> dict[str, str]:
    def text(overrides: list[ManualOverride]) -> str:  # UTF-8 as is: "é" is 2 bytes, not a 6-byte "\\u00e9"
        return json.dumps([o.to_json() for o in overrides], separators=(",", ":"), ensure_ascii=False)

    return {"format": FORMAT, "active": text(records.active), "history": text(records.history)}


def variable_size(items: dict[str, str]) -> int:
    """Nomad's ``VariableItems.Size()``: the bytes of every key and value."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in items.items())


def _shape(value: Any) -> str:
    if value is None:
        return "an empty body"
    names = {dict: "a JSON object without Items", list: "a JSON list", str: "a JSON string", bool: "a JSON boolean"}
    return names.get(type(value), "a JSON number")
