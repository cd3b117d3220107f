"""Config checks owned by the jobspec renderer (names, kill_timeout, GPU memory), for `forescale config check`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoscaler.core.settings.forescale import Config


def check_config(config: Config) -> list[str]:
    """One line per problem: file, key path, the fix. Warnings (lead time vs image pull) are not problems."""
    from autoscaler.jobspec.workers import check_config as render_checks

    return render_checks(config).problems
