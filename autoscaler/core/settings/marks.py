"""What a config value *is*, marked on its type in the schema, and the walk that finds every marked value.

A setting may be a secret (a token in the file), the name of the environment variable holding a secret, a URL
whose userinfo is a credential, a file path (and what the daemon does with the file), or a section only
`forescale render` reads. The schema says so on the field's type (``SecretValue``, ``EnvName``, ``HttpUrl``,
``ConfigPath`` … in ``settings.base``); code that must treat such values specially — the loader resolving
relative paths, `render --self` dropping secrets and embedding files — walks the model with ``marked`` instead
of keeping lists of keys. A new section is safe by construction: mark its fields and every walker sees them.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


@dataclass(frozen=True)
class Secret:
    """A secret value written in the file (a token, a webhook URL, an environment value a command gets): never
    printed, never embedded in a job. ``env_field`` names the sibling setting naming the environment variable
    to use instead (``slack.token`` → ``token_env``); None: the value's own key is the variable (a command's
    ``env``)."""

    env_field: str | None = None


@dataclass(frozen=True)
class SecretEnv:
    """The NAME of an environment variable holding a secret (the ``*_env`` settings): forescale's own job gets
    that variable from its Nomad Variable."""


@dataclass(frozen=True)
class Credentials:
    """A URL whose userinfo (``user:password@``) is a credential: shown redacted, never embedded in a job."""


FileUse = Literal["read", "run", "state", "private"]


@dataclass(frozen=True)
class FilePath:
    """A file path (relative paths are relative to the config file) and what forescale does with the file:

    ``read``     reads it (a CA bundle, the schedule file): forescale's own job embeds it as ``name``
    ``run``      runs it (a node provider's command): embedded as an executable
    ``state``    writes it (the audit log, the override file, the lock): the job keeps it on the sticky disk
    ``private``  reads a private key: the job gets it from its Nomad Variable, item ``item``, into secrets/
    """

    use: FileUse
    name: str | None = None
    item: str | None = None


@dataclass(frozen=True)
class RenderOnly:
    """Settings only `forescale render` reads (they name files on the rendering machine): the daemon never
    does, and its own job's config leaves them out."""


Mark = Secret | SecretEnv | Credentials | FilePath | RenderOnly
_MARKS = (Secret, SecretEnv, Credentials, FilePath, RenderOnly)
Key = str | int


@dataclass(frozen=True)
class Marked:
    """One marked value found by ``marked``: where it is (``path``), its mark and value, and its holder (a
    model or a mapping) so a walker can replace it."""

    path: tuple[Key, ...]
    mark: Mark
    value: Any
    owner: Any
    key: Key

    def dotted(self) -> str:
        """The key path as messages write it: ``pools[0].nodes.command.path``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    def replace(self, value: Any) -> None:
        """Put ``value`` where this one was (in the model or mapping that holds it)."""
        if isinstance(self.owner, BaseModel):
            setattr(self.owner, str(self.key), value)
        else:
            self.owner[self.key] = value


def marked(model: BaseModel, kind: type | tuple[type, ...] = _MARKS, *, daemon: bool = False) -> Iterator[Marked]:
    """Every set value of ``model`` (recursively, in schema order) whose type carries a mark of ``kind``.

    ``daemon=True`` stops at ``RenderOnly`` sections (the section itself is still reported): what the daemon's
    config holds.
    """
    yield from _walk_model(model, kind, daemon, ())


def _walk_model(
    model: BaseModel, kind: type | tuple[type, ...], daemon: bool, path: tuple[Key, ...]
) -> Iterator[Marked]:
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        value = getattr(model, name)
        if value is None:
            continue
        here = (*path, name)
        marks = [m for m in field.metadata if isinstance(m, _MARKS)] + marks_of(field.annotation)
        yield from (Marked(here, m, value, model, name) for m in marks if isinstance(m, kind))
        if daemon and any(isinstance(m, RenderOnly) for m in marks):
            continue
        yield from _walk_value(value, field.annotation, kind, daemon, here)


def _walk_value(
    value: Any, annotation: Any, kind: type | tuple[type, ...], daemon: bool, path: tuple[Key, ...]
) -> Iterator[Marked]:
    if isinstance(value, BaseModel):
        yield from _walk_model(value, kind, daemon, path)
        return
    item_type = _item_type(annotation)
    items: list[tuple[Key, Any]]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = list(enumerate(value))
    else:
        return
    item_marks = marks_of(item_type) if item_type is not None else []
    for key, item in items:
        if item is None:
            continue
        yield from (Marked((*path, key), m, item, value, key) for m in item_marks if isinstance(m, kind))
        yield from _walk_value(item, item_type, kind, daemon, (*path, key))


def marks_of(annotation: Any) -> list[Mark]:
    """The marks an annotation carries (through ``Annotated`` and ``X | None``), not those of its items."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *meta = get_args(annotation)
        return [m for m in meta if isinstance(m, _MARKS)] + marks_of(base)
    if origin in (Union, types.UnionType):
        return [m for a in get_args(annotation) if a is not type(None) for m in marks_of(a)]
    return []


def _item_type(annotation: Any) -> Any:
    """The item type of a mapping's values or a sequence's items (None for anything else)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _item_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for member in get_args(annotation):
            found = _item_type(member)
            if found is not None:
                return found
        return None
    args = get_args(annotation)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, tuple, set, frozenset, Sequence) and args:
        return args[0]
    return None
