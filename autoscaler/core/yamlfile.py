"""The one YAML loader of forescale: files in, validated models out, errors as "file, key path (line N): fix".

forescale.yaml (``autoscaler.config``) and the schedule file (``overrides.schedule``) both load through
``load_model``; a syntax error names the line and column, and every validation problem names the key path
(list items by their ``name:`` when they have one), the line of that key, and what to write instead
(the field's description, or "did you mean …?" for a misspelt key).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autoscaler.core.errors import ConfigError
from autoscaler.core.text import looks_like_secret, redact_urls, safe

M = TypeVar("M", bound=BaseModel)


def read_text(path: Path, missing_fix: str) -> str:
    """The file's text; a missing or unreadable file is a ConfigError naming it (``missing_fix`` says what to do)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [f"file not found; {missing_fix}"]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), ["is a directory, not a file; give the path of a YAML file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), [f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"]
        ) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None


def load_yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse YAML into data plus its node tree (for line numbers); a syntax error names line and column.

    A key written twice in one mapping is an error (YAML would silently keep the last one), and so is
    nesting too deep to be a config file (a parser recursion error otherwise).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"not valid YAML{where}: {safe(problem)}"]) from None
    except RecursionError:
        raise ConfigError(
            str(path), ["nested too deeply to be a forescale file (hundreds of [ or {?): fix or replace the file"]
        ) from None
    duplicates = duplicate_keys(root, data)
    if duplicates:
        raise ConfigError(str(path), duplicates)
    return data, root


def duplicate_keys(root: yaml.Node | None, data: Any) -> list[str]:
    """One problem per key written twice in the same mapping: 'key path (line N): duplicate key …'."""
    problems: list[str] = []
    stack: list[tuple[yaml.Node, list[Any]]] = [(root, [])] if root is not None else []
    while stack:
        node, loc = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                line = key.start_mark.line + 1
                if name is not None and name != "<<":
                    if name in seen:
                        problems.append(
                            f"{key_path([*loc, name], data)} (line {line}): duplicate key '{safe(name)}' (first on "
                            f"line {seen[name]}); YAML would silently keep only the last: keep one of them"
                        )
                    else:
                        seen[name] = line
                stack.append((value, [*loc, name]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*loc, i]) for i, item in enumerate(node.value))
    return sorted(problems, key=_line_of)


def _line_of(problem: str) -> int:
    marker = problem.find("(line ")
    digits = problem[marker + 6 :].split(")", 1)[0] if marker >= 0 else ""
    return int(digits) if digits.isdigit() else 0


def load_model(model: type[M], data: Any, root: yaml.Node | None, path: Path) -> M:
    """Validate ``data`` against ``model``; every problem becomes one "key path (line N): fix" line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), explain(exc, data, root, model)) from None


def explain(exc: ValidationError, data: Any, root: yaml.Node | None, model: type[BaseModel]) -> list[str]:
    """One line per validation error: the key path, its line, and the fix."""
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        line = yaml_line(root, loc)
        where = key_path(loc, data) + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_fix_for(err, loc, model)}")
    return problems


def key_path(loc: list[Any], data: Any) -> str:
    """``pools[0] (ocr).capacity_per_node``: list items are named by their ``name:`` when they have one."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" ({node['name']})"
        else:
            out += ("." if out else "") + safe(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def yaml_line(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the key at ``loc`` in a composed YAML document (the last one found on the way)."""
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == part:
                    nxt, line = v, k.start_mark.line + 1
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def model_at(model: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (walking nested models, lists and optionals)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current else None
        if field is None:
            return None
        current = _inner_model(field.annotation)
        if current is None:
            return None
    return current if isinstance(current, type) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """``PoolConfig`` out of ``list[PoolConfig]``, ``PoolConfig | None`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _fix_for(err: Any, loc: list[Any], root_model: type[BaseModel]) -> str:
    kind = err["type"]
    model = model_at(root_model, loc)
    name = loc[-1] if loc else None
    field = model.model_fields.get(name) if model is not None and isinstance(name, str) else None
    desc = (field.description or "") if field is not None else ""
    if kind == "extra_forbidden":
        fields = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(name), fields, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(fields)}"
        return f"unknown key; {hint}"
    if kind == "missing":
        return f"required key is missing; add it ({desc})" if desc else "required key is missing; add it"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
        msg = str(extra.get("pattern_hint") or msg)
    got = err.get("input")
    got_text = ""
    secret_key = any(isinstance(p, str) and p.endswith(("_env", "token", "webhook_url")) for p in loc)
    if looks_like_secret(got) or secret_key:
        got_text = ""  # never echo a value that may be a secret
    elif got is not None and not isinstance(got, dict | list) and repr(got) not in msg:
        shown = repr(got) if len(repr(got)) <= 80 else repr(got)[:79] + "…"
        got_text = f" (got {safe(redact_urls(shown))})"
    fix = f"; expected: {desc}" if desc else ""
    return f"{msg[0].lower()}{msg[1:]}{got_text}{fix}"
