"""Schedule-file checks that run on the raw rules: when the schema refuses a file, the rules' other problems
(unknown pool, no timezone, a name used twice) are reported in the same go, not one round at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoscaler.core.yamlfile import yaml_line


def raw_rule_problems(data: dict[str, Any], root: Any, pools: dict[str, timedelta]) -> list[str]:
    """The checks below the schema (unknown pool, no timezone, a name used twice) on the raw rules, for a file
    the schema already refused: every problem in one report."""
    rules = data.get("rules")
    if not isinstance(rules, list):
        return []
    file_tz = data.get("timezone")
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(rules):
        if not isinstance(raw, dict):
            continue
        name = raw.get("name")
        where = f"rules[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        line = yaml_line(root, ["rules", i])
        at = f" (line {line})" if line else ""
        if isinstance(name, str):
            if name in seen:
                out.append(f"{where}.name{at}: rule name '{name}' is used twice; give each rule its own name")
            seen.add(name)
        pool = raw.get("pool")
        if isinstance(pool, str) and pool not in pools:
            known = ", ".join(sorted(pools)) or "none"
            out.append(f"{where}.pool{at}: unknown pool '{pool}'; use one of the config's pools ({known})")
        elif raw.get("timezone") is None and file_tz is None:
            out.append(f"{where}.timezone{at}: no timezone; add 'timezone: Area/City' to the rule or the file")
    return out
