"""One exception hierarchy for everything a user can cause or meet.

The CLI turns any ``ForescaleError`` into one readable line (a traceback only with ``--debug``).
"""

from __future__ import annotations

from typing import Any


class ForescaleError(Exception):
    """Base of every error forescale raises on purpose."""


class ConfigError(ForescaleError):
    """A config file is missing, unparseable or invalid.

    ``problems`` holds one line per problem: file, key path and the fix.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class MetricsUnavailable(ForescaleError):
    """The metrics source could not give a usable, fresh series (the pool then holds)."""


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


class NotifierError(ForescaleError):
    """A notifier failed; never allowed to fail a tick."""


class OverrideError(ForescaleError):
    """An override request is invalid, or the override store is unreadable."""


class CasConflict(NomadError):
    """409 on a Variables write/delete with ``?cas=``: someone else changed it. ``current`` is Nomad's copy."""

    def __init__(self, message: str, current: dict[str, Any] | None, status: int | None = 409, body: str = "") -> None:
        self.current = current
        super().__init__(message, status, body)


class JobIndexConflict(NomadError):
    """500 "Enforcing job modify index …": the job changed since it was read (register/scale CAS failed)."""
