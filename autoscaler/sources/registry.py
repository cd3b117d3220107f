"""The builder side of the metrics-source registry: ``metrics.source`` → a running ``MetricsSource``.

One row per source, keyed like ``autoscaler.core.settings.adapters.METRICS_SOURCES`` (the schema side; a
unit test keeps the keys equal). ``build_metrics_source`` is the one constructor: the wiring (daemon, `tick`,
`plan`) and the backtest's history (`backtest -c`, `--prometheus`) both call it. A row imports its adapter
only when built, so `forescale --help` never pays for a client library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from autoscaler.core.ports import MetricsSource
from autoscaler.core.settings.forescale import Config


@dataclass(frozen=True)
class SourceBuilder:
    """How one metrics source is built from the config."""

    name: str
    build: Callable[[Config], MetricsSource]


def _prometheus(config: Config) -> MetricsSource:
    from autoscaler.sources.prometheus import PrometheusSource

    return PrometheusSource(config.prometheus)


METRICS_SOURCES: Mapping[str, SourceBuilder] = {
    "prometheus": SourceBuilder("prometheus", _prometheus),
}


def build_metrics_source(config: Config) -> MetricsSource:
    """The source ``metrics.source`` selects, built from its section (validated names only: the schema refused
    any other)."""
    return METRICS_SOURCES[config.metrics.source].build(config)
