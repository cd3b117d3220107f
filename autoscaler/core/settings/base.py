"""What every section of forescale.yaml (and the schedule file) shares: unknown keys are errors, numbers are
numbers (``min: true`` is not 1, ``.inf``/``.nan``/``1e400`` are not numbers), addresses are http(s) URLs and
``*_env`` settings are environment variable *names* — a value that looks like a token is never echoed back.

The annotated types below also *mark* what a value is (``settings.marks``): a secret, a secret's environment
variable, a URL with credentials, a file and what forescale does with it. Use them for every such field.
"""

from __future__ import annotations

import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

from autoscaler.core.settings.marks import Credentials, FilePath, Secret, SecretEnv

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # pools, Nomad jobs/groups, node pools: what keeps HCL injection out
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"  # an environment variable's name
ENV_NAME = re.compile(ENV_NAME_PATTERN)


def _numeric(annotation: Any) -> bool:
    """int/float (optionally inside Optional/Annotated), but not bool, nor a union with non-numbers."""
    if annotation is bool:
        return False
    if isinstance(annotation, type) and issubclass(annotation, int | float) and not issubclass(annotation, bool):
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric(get_args(annotation)[0])
    if origin in (Union, types.UnionType):  # int | None, float | None (not int | str: those parse their own)
        members = [a for a in get_args(annotation) if a is not type(None)]
        return bool(members) and all(_numeric(a) for a in members)
    return False


class StrictModel(BaseModel):
    """Base of every settings model: extra keys forbidden, no bool-as-number, no non-finite floats."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _numeric(field.annotation):
                raise ValueError("write a number here, not true/false")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number (not .inf, .nan or 1e400)")
        return value


def check_http_url(value: str) -> str:
    """An http(s) URL with a host (and a numeric port, if any). The message never repeats the value."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("not a valid URL; write e.g. http://127.0.0.1:9090 (a numeric port)") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:9090")
    if not parts.hostname:
        raise ValueError("the URL has no host; write e.g. http://127.0.0.1:9090")
    return value.strip()


def check_env_name(value: str) -> str:
    """The NAME of an environment variable; a pasted secret gets a message that does not echo it."""
    if not ENV_NAME.match(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits and _, e.g. SLACK_BOT_TOKEN), "
            "not its value: put the secret itself in the environment (the value given is not shown)"
        )
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url), Credentials()]
"""A config field holding an http(s) URL (its userinfo, if any, is a credential)."""

EnvName = Annotated[str, AfterValidator(check_env_name), SecretEnv()]
"""A config field naming an environment variable (that holds a secret)."""

SecretValue = Annotated[str, Secret()]
"""A secret written in the file whose own key names its environment variable (a command's ``env`` values)."""

UrlWithCredentials = Annotated[str, Credentials()]
"""A URL (validated by its section) whose userinfo, if any, is a credential."""

ConfigPath = Annotated[Path, FilePath("read")]
"""A file forescale reads (relative to the config file); forescale's own job embeds it."""

ExecutablePath = Annotated[Path, FilePath("run")]
"""A program forescale runs (relative to the config file); forescale's own job embeds it as an executable."""

StatePath = Annotated[Path, FilePath("state")]
"""A file forescale writes (relative to the config file); forescale's own job keeps it on the sticky disk."""
