"""The schema marks what a value is (a secret, a secret's environment variable, a URL with credentials, a file and
what forescale does with it), and one walk finds every marked value: the loader resolves every path by it,
`render --self` drops every secret by it. These tests keep the marks complete, so a new section is safe by
construction: a field of a secret-bearing kind without its mark fails here, not in a job file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, SecretStr

from autoscaler.config import load_config
from autoscaler.core.settings.base import EnvName, SecretValue
from autoscaler.core.settings.forescale import Config
from autoscaler.core.settings.marks import (
    Credentials,
    FilePath,
    RenderOnly,
    Secret,
    SecretEnv,
    _item_type,
    marked,
    marks_of,
)


def _types(annotation: Any) -> Iterator[Any]:
    """Every type inside an annotation (through Annotated, unions, containers)."""
    yield annotation
    for arg in get_args(annotation):
        if not isinstance(arg, str | int | float) and arg is not Ellipsis:
            yield from _types(arg)


def _models(root: type[BaseModel], daemon: bool) -> Iterator[type[BaseModel]]:
    """Every settings model reachable from ``root`` (``daemon``: not through render-only sections)."""
    seen: set[type[BaseModel]] = set()
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        yield model
        for field in model.model_fields.values():
            if daemon and any(isinstance(m, RenderOnly) for m in field.metadata):
                continue
            for tp in _types(field.annotation):
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    todo.append(tp)


def _fields(daemon: bool) -> Iterator[tuple[str, str, Any, list[Any]]]:
    for model in _models(Config, daemon):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            item = _item_type(field.annotation)
            marks = [*field.metadata, *marks_of(field.annotation), *(marks_of(item) if item is not None else [])]
            yield model.__name__, name, field.annotation, marks


def _has(tp: Any, kind: type) -> bool:
    return any(isinstance(t, type) and issubclass(t, kind) for t in _types(tp))


def test_every_file_path_in_the_schema_says_what_forescale_does_with_it() -> None:
    unmarked = [f"{m}.{n}" for m, n, tp, marks in _fields(False) if _has(tp, Path) and not _kinds(marks, FilePath)]
    assert unmarked == [], "give these fields a FilePath mark (ConfigPath, StatePath, ExecutablePath, …)"


def test_every_secret_the_daemon_reads_is_marked() -> None:
    unmarked = []
    for model, name, tp, marks in _fields(True):
        if _has(tp, SecretStr) and not _kinds(marks, Secret):
            unmarked.append(f"{model}.{name}: a SecretStr without Secret")
        if name.endswith("_env") and not _kinds(marks, SecretEnv):
            unmarked.append(f"{model}.{name}: names an env var without EnvName")
        url = re.search(r"(url|address|endpoint)", name) and not name.endswith("_env")
        if url and not _kinds(marks, Credentials | Secret):
            unmarked.append(f"{model}.{name}: a URL without Credentials (HttpUrl, UrlWithCredentials)")
        if re.search(r"(token|password|secret)", name) and not _kinds(marks, Secret | SecretEnv):
            unmarked.append(f"{model}.{name}: a secret-looking name without a mark")
    assert unmarked == []


def _kinds(marks: list[Any], kind: Any) -> bool:
    return any(isinstance(m, kind) for m in marks)


def test_the_walk_finds_marks_on_fields_and_on_mapping_values() -> None:
    class Section(BaseModel):
        token: SecretValue
        headers_env: dict[str, EnvName] = {}
        ca: Path | None = None

    found = [(m.dotted(), type(m.mark).__name__) for m in marked(Section(token="t", headers_env={"A": "X_AUTH"}))]
    assert found == [("token", "Secret"), ("headers_env.A", "SecretEnv")]


def everything_config(tmp_path: Path) -> dict[str, Any]:
    """A config with every file path relative (and the files there)."""
    for name in ("prom-ca.pem", "nomad-ca.pem", "client.pem", "client-key.pem", "schedule.yaml", "inventory"):
        (tmp_path / name).write_text("x\n" if name != "schedule.yaml" else "rules: []\n")
    return {
        "prometheus": {"ca_cert": "prom-ca.pem"},
        "nomad": {"ca_cert": "nomad-ca.pem", "client_cert": "client.pem", "client_key": "client-key.pem"},
        "audit_log": "state/audit.jsonl",
        "leader": {"lock_file": "state/lock"},
        "overrides": {"path": "state/overrides.json", "schedule_file": "schedule.yaml"},
        "pools": [
            {
                "name": "ocr",
                "query": "up",
                "nomad": {"job": "ml", "group": "ocr"},
                "capacity_per_node": 1,
                "max": 3,
                "nodes": {"provider": "command", "node_pool": "gpu", "command": {"path": "inventory"}},
                "jobspec": {"image": "registry.example.com/ocr:1", "nomad_client_config": "nomad.hcl"},
            }
        ],
    }


def test_every_relative_path_is_resolved_next_to_the_config_by_the_walk(tmp_path: Path) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(everything_config(tmp_path)))
    config = load_config(path)
    paths = {m.dotted(): m.value for m in marked(config, FilePath)}
    assert set(paths) >= {
        "prometheus.ca_cert",
        "nomad.client_key",
        "audit_log",
        "leader.lock_file",
        "overrides.schedule_file",
        "pools[0].nodes.command.path",
        "pools[0].jobspec.nomad_client_config",
    }
    assert all(p.is_absolute() and p.parent in (tmp_path, tmp_path / "state") for p in paths.values()), paths
    assert config.pools[0].nodes.command is not None
    assert config.pools[0].nodes.command.path == tmp_path / "inventory"


@pytest.mark.parametrize("daemon", [True, False])
def test_render_only_sections_are_reported_and_not_entered_for_the_daemon(tmp_path: Path, daemon: bool) -> None:
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(everything_config(tmp_path)))
    config = load_config(path)
    found = [m.dotted() for m in marked(config, (RenderOnly, FilePath), daemon=daemon)]
    assert "pools[0].jobspec" in found
    assert ("pools[0].jobspec.nomad_client_config" in found) is not daemon


def test_annotations_are_plain_types_underneath() -> None:
    """The marks are metadata only: the values keep their types (str, Path, SecretStr)."""
    for tp in (EnvName, SecretValue):
        assert get_origin(tp) is not None and get_args(tp)[0] is str
