"""The schema side of the adapter registry: every implementation of a port that forescale.yaml can select.

One table per port family. A row names the implementation (what the selector in forescale.yaml says), the
top-level section holding its settings (None: it has none) and one line for people. The config validates its
selectors against these tables, `config check` prints what the config selects, and `render --self` asks them
which sections the daemon uses. The builder side — how each row becomes a running part — sits with the
adapters (``autoscaler.sources.registry``, ``autoscaler.notify.registry``, ``overrides.registry``; node providers:
``autoscaler.nodes``); a unit test keeps both sides' keys equal.

Adding an implementation: its settings model (if any) and its adapter module, one row here, one row in the
adapter family's builder table (docs/architecture.md, "Adding an adapter").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator


@dataclass(frozen=True)
class AdapterSchema:
    """One implementation of a port as forescale.yaml knows it."""

    name: str
    summary: str
    section: str | None = None  # the top-level key of forescale.yaml holding its settings


METRICS_SOURCES: Mapping[str, AdapterSchema] = {
    "prometheus": AdapterSchema(
        "prometheus", "Prometheus range queries (pools' query is PromQL)", section="prometheus"
    ),
}
"""Where pools' request rates come from (``metrics.source``)."""

NOTIFIERS: Mapping[str, AdapterSchema] = {
    "console": AdapterSchema("console", "decisions on the terminal (every command, unless --json)"),
    "log": AdapterSchema("log", "decisions as JSON log records (daemon.log_format: json)"),
    "slack": AdapterSchema("slack", "Slack: a bot token and channel, or an incoming webhook", section="slack"),
}
"""Who is told (every one whose section is present, or that the command asks for)."""

OVERRIDE_STORES: Mapping[str, AdapterSchema] = {
    "file": AdapterSchema("file", "one local JSON file (overrides.path)"),
    "nomad": AdapterSchema("nomad", "Nomad Variables <overrides.nomad_variable_prefix>/<pool> (shared, ACL-guarded)"),
}
"""Where manual overrides are kept (``overrides.store``)."""


def one_of(table: Mapping[str, AdapterSchema], what: str) -> Callable[[str], str]:
    """A validator: the value names a row of ``table`` (the message lists the rows)."""

    def check(value: str) -> str:
        if value not in table:
            raise ValueError(f"unknown {what} '{value}': use one of {', '.join(table)}")
        return value

    return check


MetricsSourceName = Annotated[str, AfterValidator(one_of(METRICS_SOURCES, "metrics source"))]
OverrideStoreName = Annotated[str, AfterValidator(one_of(OVERRIDE_STORES, "override store"))]
