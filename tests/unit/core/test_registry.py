"""The adapter registry: one schema table per port family (core) and one builder table (adapters), read by the
wiring, `config check` and `render --self`; both sides name the same implementations."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config import adapters_in_use, describe_adapters, load_config
from autoscaler.core.errors import ConfigError
from autoscaler.core.settings import adapters as schema
from autoscaler.core.settings.forescale import Config
from autoscaler.notify import registry as notify_registry
from autoscaler.notify.console import ConsoleNotifier
from autoscaler.notify.log import LogNotifier
from autoscaler.sources import registry as source_registry
from autoscaler.wiring import build_notifiers, build_store
from overrides import registry as store_registry
from overrides.nomad_store import NomadVariablesStore
from overrides.store import FileStore
from tests.helpers import make_config, pool_dict

FAMILIES = [
    ("metrics sources", schema.METRICS_SOURCES, source_registry.METRICS_SOURCES),
    ("notifiers", schema.NOTIFIERS, notify_registry.NOTIFIERS),
    ("override stores", schema.OVERRIDE_STORES, store_registry.OVERRIDE_STORES),
]


@pytest.mark.parametrize(("family", "schema_table", "builder_table"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_schema_table_and_builder_table_have_the_same_keys(family: str, schema_table, builder_table) -> None:
    assert list(schema_table) == list(builder_table), f"{family}: add the row on both sides"
    for name, row in schema_table.items():
        assert row.name == name == builder_table[name].name
        assert row.summary
        if row.section is not None:  # a section is a key of forescale.yaml
            assert row.section in Config.model_fields, f"{family} {name}: no '{row.section}:' section in Config"


def test_selectors_accept_only_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "overrides: {store: redis}\n"
        "pools: [{name: ocr, query: up, nomad: {job: ml, group: ocr}, capacity_per_node: 1, max: 2}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(
        "overrides.store" in p and "unknown override store 'redis': use one of file, nomad" in p
        for p in info.value.problems
    )


def test_the_wiring_builds_the_row_the_config_selects(tmp_path: Path) -> None:
    file_cfg = make_config(pool_dict(), overrides={"path": str(tmp_path / "o.json")})
    assert isinstance(build_store(file_cfg), FileStore)
    nomad_cfg = make_config(pool_dict(), overrides={"store": "nomad"}, nomad={"address": "http://127.0.0.1:1"})
    store = build_store(nomad_cfg)
    assert isinstance(store, NomadVariablesStore) and store.client.address == "http://127.0.0.1:1"
    from autoscaler.nomad.client import NomadClient

    shared = NomadClient(nomad_cfg.nomad)
    built = store_registry.build_store(nomad_cfg, lambda: shared)
    assert isinstance(built, NomadVariablesStore) and built.client is shared  # the runtime's one client
    assert [type(n) for n in build_notifiers(file_cfg, console=True, log_decisions=True)] == [
        ConsoleNotifier,
        LogNotifier,
    ]


def test_config_check_says_which_implementation_each_port_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(
        pool_dict("ocr", nodes={"provider": "command", "node_pool": "gpu", "command": {"path": "/bin/true"}}),
        slack={"channel": "C1"},
        daemon={"log_format": "json"},
    )
    assert adapters_in_use(cfg) == {
        "metrics_source": "prometheus",
        "override_store": "file",
        "notifiers": ["log", "slack"],
        "node_providers": {"ocr": "command"},
    }
    assert describe_adapters(cfg) == "metrics prometheus · overrides file · notify log, slack · nodes ocr=command"


def test_node_provider_schema_and_builder_tables_have_the_same_keys() -> None:
    from autoscaler.core.settings.nodes import PROVIDERS, NodesSettings
    from autoscaler.nodes.registry import BUILDERS

    assert list(PROVIDERS) == list(BUILDERS), "node providers: add the row on both sides"
    for kind, row in PROVIDERS.items():
        assert row.section in NodesSettings.model_fields, f"{kind}: no '{row.section}:' field on NodesSettings"
        assert hasattr(row.settings, "group_key"), f"{kind}: its settings must say which group they name"
