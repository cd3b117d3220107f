"""The ``command`` node provider: your executable provisions machines (Terraform, on-prem, other clouds).

forescale runs ``nodes.command.path`` with ``args`` — directly, never through a shell — writes one JSON request
on its stdin and reads one JSON reply from its stdout (docs/nodes.md, "Writing a command provider"):

    request  {"version": 1, "pool": "ocr", "action": "describe" | "scale_out" | "cancel" | "terminate",
              "desired": 5 | null, "remove": ["<machine id>", …], "replace": false}
    reply    {"desired": 5, "machines": ["<id>" | {"id": …, "launched_at": "<RFC 3339>", "state": …,
              "healthy": true, "protected": false}, …], "min": 0, "max": 20,
              "failed": {"<machine id>": "<why>"}, "launch_failures": [{"id": …, "message": …, "at": …}],
              "message": "…"}

``desired`` is required in every reply (the capacity after the action); the other keys are optional.
``cancel`` lowers the capacity to ``desired`` without removing any machine that exists (launches that never
came); ``terminate`` with ``replace`` keeps the capacity (replace the machines). A non-zero exit, a timeout
(the whole process group is killed) or a reply that is not such a JSON object (``machines`` a list, each entry
an id or an object with one) is a failed action whose error carries the command's stderr: nothing is assumed to
have changed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from autoscaler.core.durations import format_duration
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import GroupState, LaunchFailure, Machine, MachineGroup, MachinePhase, TerminateResult
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import CommandSettings
from autoscaler.nodes.cloud_calls import refuse_above_max

log = logging.getLogger("forescale.nodes.command")

PROTOCOL_VERSION = 1
MAX_REPLY = 4 * 2**20  # bytes of stdout read back; more is garbage by definition
STDERR_IN_ERROR = 600
HOSTNAME_ATTRIBUTE = "unique.hostname"
PHASES: dict[str, MachinePhase] = {
    "pending": "booting",
    "booting": "booting",
    "provisioning": "booting",
    "starting": "booting",
    "standby": "standby",
    "stopped": "standby",
    "terminating": "leaving",
    "deleting": "leaving",
}


class CommandProvider:
    """Implements ``NodeProvider`` by running the configured executable once per action."""

    kind = "command"

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    @property
    def where(self) -> str:
        return f"command {self.settings.path.name}"

    def describe(self, pool: PoolConfig) -> MachineGroup:
        return self._group(self.run(pool, "describe", None, []))

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        return attributes.get(self.node_key(pool)) or None

    def node_key(self, pool: PoolConfig) -> str:
        return pool.nodes.instance_attribute or HOSTNAME_ATTRIBUTE

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        return self._resize(pool, group, "cancel", desired, lambda after: after == desired, "Refused")

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        refuse_above_max(self.where, group, desired, "max")
        return self._resize(pool, group, "scale_out", desired, lambda after: after >= desired, "Short")

    def _resize(
        self, pool: PoolConfig, group: MachineGroup, action: str, desired: int, ok: Callable[[int], bool], code: str
    ) -> str:
        """Run ``action`` towards ``desired``; the reply's capacity must satisfy ``ok`` (else NodeProviderError)."""
        reply = self.run(pool, action, desired, [])
        after = _int(reply, "desired", self.where)
        message = str(reply.get("message") or "").strip()
        if not ok(after):
            raise NodeProviderError(
                f"{self.where}: asked for a capacity of {desired} ({action}), it answered desired={after}"
                + (f" ({message})" if message else ""),
                code=code,
            )
        return f"{self.where}: capacity {group.desired} → {after}" + (f" ({message})" if message else "")

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        desired = group.desired if replace else max(group.desired - len(machines), 0)
        try:
            reply = self.run(pool, "terminate", desired, list(machines), replace=replace)
        except NodeProviderError as exc:
            return [TerminateResult(m, False, str(exc)) for m in machines]
        failed = reply.get("failed") or {}
        if not isinstance(failed, dict):
            failed = {}
        return [
            TerminateResult(m, False, f"{self.where}: {failed[m]}") if m in failed else TerminateResult(m, True)
            for m in machines
        ]

    # ------------------------------------------------------------------ running the command

    def request(
        self, pool: PoolConfig, action: str, desired: int | None, remove: list[str], replace: bool = False
    ) -> dict[str, Any]:
        return {
            "version": PROTOCOL_VERSION,
            "pool": pool.name,
            "action": action,
            "desired": desired,
            "remove": remove,
            "replace": replace,
        }

    def run(
        self, pool: PoolConfig, action: str, desired: int | None, remove: list[str], *, replace: bool = False
    ) -> dict[str, Any]:
        """Run the command once; its parsed reply. Raises NodeProviderError with the cause and stderr."""
        path = self.settings.path
        if not path.is_file() or not os.access(path, os.X_OK):
            raise NodeProviderError(
                f"nodes.command.path {path} is not an executable file: fix the path or `chmod +x` it", code="NotFound"
            )
        argv = [str(path), *self.settings.args]
        payload = json.dumps(self.request(pool, action, desired, remove, replace)).encode()
        timeout = self.settings.timeout.total_seconds()
        env = {**os.environ, **self.settings.env, "FORESCALE_POOL": pool.name, "FORESCALE_ACTION": action}
        try:
            proc = subprocess.Popen(  # a list of arguments, never a shell
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills everything it started
            )
        except OSError as exc:
            raise NodeProviderError(f"{self.where}: cannot start {path}: {exc}", code="Exec") from None
        try:
            out, err = proc.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            raise NodeProviderError(
                f"{self.where} ({action}) did not answer within {format_duration(self.settings.timeout)} and was "
                f"killed; nothing is assumed changed{_stderr(err)}",
                retryable=True,
                code="Timeout",
            ) from None
        if proc.returncode != 0:
            raise NodeProviderError(
                f"{self.where} ({action}) exited with status {proc.returncode}{_stderr(err)}", code="Exit"
            )
        reply = _parse(out, self.where, action, err)
        log.info("%s %s for pool %s: %s", self.where, action, pool.name, reply.get("message") or "ok")
        return reply

    def _group(self, reply: dict[str, Any]) -> MachineGroup:
        raw_machines = reply.get("machines", [])
        if not isinstance(raw_machines, list):
            raise NodeProviderError(
                f"{self.where}: 'machines' must be a list of ids or objects (got {_shape(raw_machines)}); nothing "
                "assumed",
                code="Garbage",
            )
        machines = [self._machine(raw) for raw in raw_machines]
        ids = [m.id for m in machines]
        if len(set(ids)) != len(ids):
            raise NodeProviderError(f"{self.where}: 'machines' lists an id twice; nothing assumed", code="Garbage")
        return MachineGroup(
            name=self.where,
            desired=_int(reply, "desired", self.where),
            machines=tuple(machines),
            min=_opt_int(reply, "min", self.where),
            max=_opt_int(reply, "max", self.where),
            state=GroupState(failures=self._failures(reply.get("launch_failures"))),
        )

    def _machine(self, raw: Any) -> Machine:
        if isinstance(raw, str) and raw:
            return Machine(raw)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
            state = str(raw.get("state") or "running")
            return Machine(
                raw["id"],
                state,
                _time(raw.get("launched_at"), self.where),
                phase=PHASES.get(state.lower(), "in_service"),
                healthy=raw.get("healthy") is not False,
                protected=raw.get("protected") is True,
            )
        raise NodeProviderError(
            f"{self.where}: 'machines' entries must be ids or objects with an 'id' (got {raw!r:.80})", code="Garbage"
        )

    def _failures(self, raw: Any) -> tuple[LaunchFailure, ...]:
        if not isinstance(raw, list):
            return ()
        out = []
        for item in raw:
            if isinstance(item, dict) and item.get("message"):
                message = str(item["message"])[:300]
                out.append(
                    LaunchFailure(
                        str(item.get("id") or message), message, _time(item.get("at"), self.where), item.get("code")
                    )
                )
        return tuple(out)


def _shape(value: Any) -> str:
    return "an object" if isinstance(value, dict) else type(value).__name__


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _stderr(err: bytes) -> str:
    text = " ".join(err.decode("utf-8", "replace").split())
    if not text:
        return ""
    if len(text) > STDERR_IN_ERROR:
        text = "…" + text[-STDERR_IN_ERROR:]
    return f"; stderr: {text}"


def _parse(out: bytes, where: str, action: str, err: bytes) -> dict[str, Any]:
    if len(out) > MAX_REPLY:
        raise NodeProviderError(f"{where} ({action}) printed more than {MAX_REPLY} bytes", code="Garbage")
    text = out.decode("utf-8", "replace").strip()
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        shown = text[:200] + ("…" if len(text) > 200 else "")
        raise NodeProviderError(
            f"{where} ({action}) printed no JSON object on stdout (got {shown!r}); print exactly one JSON object "
            f"and send logs to stderr{_stderr(err)}",
            code="Garbage",
        ) from None
    if not isinstance(reply, dict):
        raise NodeProviderError(
            f"{where} ({action}) printed JSON that is not an object: {text[:200]!r}", code="Garbage"
        )
    _int(reply, "desired", where)
    return reply


def _int(reply: dict[str, Any], key: str, where: str) -> int:
    value = reply.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeProviderError(
            f"{where}: the reply needs '{key}' as a non-negative integer (got {value!r:.60})", code="Garbage"
        )
    return value


def _opt_int(reply: dict[str, Any], key: str, where: str) -> int | None:
    return None if reply.get(key) is None else _int(reply, key, where)


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise NodeProviderError(f"{where}: launched_at {value!r:.60} is not an RFC 3339 time", code="Garbage") from None
    if when.tzinfo is None:
        raise NodeProviderError(f"{where}: launched_at {value!r:.60} needs a timezone (e.g. Z)", code="Garbage")
    return when
