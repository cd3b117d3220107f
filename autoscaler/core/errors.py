"""One exception hierarchy for everything a user can cause or meet.

    ForescaleError                 exit 1 unless stated
    ├── ConfigError                a config or schedule file is unreadable or invalid (exit 2)
    ├── UnknownPool                --pool names a pool the config does not have (exit 2)
    ├── MetricsUnavailable         no usable, fresh series: the pool holds
    │   └── NoSamples              the source answered, with no (finite) sample in the range asked
    ├── TargetError                a scaling target failed
    │   └── NomadError             Nomad answered with an error, or could not be reached
    │       ├── DeploymentActive   400 while a deployment runs: retry next tick
    │       ├── ScalingBoundsError 400: count outside the group's scaling {min, max}
    │       ├── NomadAuthError     403
    │       ├── NomadNotFound      404
    │       ├── NomadUnavailable   5xx, 429, timeouts, refused: retried with backoff
    │       ├── CasConflict        409 on a Variables check-and-set
    │       └── JobIndexConflict   500 "Enforcing job modify index": the job changed meanwhile
    ├── NodeProviderError          a node provider (AWS Auto Scaling, a command) failed: machines unchanged
    ├── NotifierError              a notifier cannot be used (never fails a tick)
    ├── OverrideError              an override request is invalid, or the store is unreadable
    └── StartupError               the daemon cannot start (e.g. daemon.listen_port is taken)

The CLI turns any ``ForescaleError`` into one readable line and its ``exit_code`` (a traceback only
with ``--debug``).
"""

from __future__ import annotations

from typing import Any


class ForescaleError(Exception):
    """Base of every error forescale raises on purpose."""

    exit_code = 1


class ConfigError(ForescaleError):
    """A config file is missing, unparseable or invalid.

    ``problems`` holds one line per problem: file, key path and the fix. ``heading`` is what the CLI says
    before the path ("invalid config", or e.g. "cannot render forescale's own job from" when a valid config
    does not suit a use).
    """

    exit_code = 2

    def __init__(self, path: str, problems: list[str], heading: str = "invalid config") -> None:
        self.path = path
        self.problems = problems
        self.heading = heading
        super().__init__(f"{path}: " + "; ".join(problems))


class UnknownPool(ForescaleError):
    """A pool name (``--pool``, ``override set POOL``) that the config does not define."""

    exit_code = 2

    def __init__(self, name: str, known: list[str], source: str) -> None:
        self.name = name
        super().__init__(f"unknown pool '{name}' in {source}; its pools: {', '.join(known) or 'none'}")


class MetricsUnavailable(ForescaleError):
    """The metrics source could not give a usable, fresh series (the pool then holds)."""


class NoSamples(MetricsUnavailable):
    """The source answered, but with no (finite) sample in the range asked (an incremental fetch then reads the
    whole window, as a first fetch would)."""


class TargetError(ForescaleError):
    """Base of errors from a scaling target (Nomad, the simulated cluster)."""


class NomadError(TargetError):
    """Nomad answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class DeploymentActive(NomadError):
    """Nomad refuses to scale while the job has an active deployment: retry next tick."""


class ScalingBoundsError(NomadError):
    """The count is outside the group's ``scaling { min, max }`` in the job."""


class NomadAuthError(NomadError):
    """403: the token is missing, unknown or lacks the capability."""


class NomadNotFound(NomadError):
    """404: the job (or group) does not exist in that namespace/region."""


class NomadUnavailable(NomadError):
    """5xx, timeouts, refused connections: retried with backoff, then given up for this tick."""


class NodeProviderError(ForescaleError):
    """A node provider could not read or change the pool's machines (nothing was changed by the failed call).

    ``retryable`` is True for throttling, timeouts and 5xx: the next tick tries again.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None) -> None:
        self.retryable = retryable
        self.code = code
        super().__init__(message)


class NotifierError(ForescaleError):
    """A notifier failed; never allowed to fail a tick."""


class OverrideError(ForescaleError):
    """An override request is invalid, or the override store is unreadable."""


class StartupError(ForescaleError):
    """The daemon cannot start: the message names the setting to change (e.g. ``daemon.listen_port``)."""


class CasConflict(NomadError):
    """409 on a Variables write/delete with ``?cas=``: someone else changed it. ``current`` is Nomad's copy."""

    def __init__(self, message: str, current: dict[str, Any] | None, status: int | None = 409, body: str = "") -> None:
        self.current = current
        super().__init__(message, status, body)


class JobIndexConflict(NomadError):
    """500 "Enforcing job modify index …": the job changed since it was read (register/scale CAS failed)."""
