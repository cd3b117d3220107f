"""`forescale deploy`: register rendered jobs through Nomad's HTTP API without resetting autoscaled counts.

For each job: ``POST /v1/jobs/parse`` (Nomad turns the HCL into its JSON job), ``GET /v1/job/:id`` (what runs
now), a diff of the two, then ``POST /v1/jobs`` with ``PreserveCounts: true`` so every existing group keeps the
count forescale scaled it to (the jobspec's ``count`` only seeds new groups). ``--dry-run`` stops after the diff.

The diff covers the fields the rendered job sets (server-side defaults Nomad adds are not reported), so it
reads like a plan; ``EnforceIndex`` makes the register fail if someone changed the job after it was read.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from autoscaler.core.errors import ForescaleError, JobIndexConflict, NomadError, NomadNotFound
from autoscaler.core.settings.forescale import Config
from autoscaler.jobspec.render import RenderedJob
from autoscaler.nomad.client import NomadClient

# Fields Nomad manages itself; never part of a plan.
SERVER_FIELDS = {
    "Status", "StatusDescription", "Stable", "Version", "CreateIndex", "ModifyIndex", "JobModifyIndex",
    "SubmitTime", "ParentID", "Payload", "Stop", "Dispatched", "VersionTag", "NomadTokenID",
}  # fmt: skip
MAX_VALUE_CHARS = 120


@dataclass
class DeployResult:
    """What deploy did (or would do) to one job."""

    job_id: str
    action: str  # "create", "update", "unchanged" (+ " (dry run)")
    changes: list[str] = field(default_factory=list)
    kept_counts: dict[str, int] = field(default_factory=dict)
    eval_id: str = ""
    job_modify_index: int | None = None


def deploy_jobs(
    config: Config,
    jobs: list[RenderedJob],
    *,
    dry_run: bool,
    console: Console | None = None,
    client: NomadClient | None = None,
) -> list[DeployResult]:
    """Parse, diff and (unless ``dry_run``) register each job; print a plan per job on ``console``."""
    client = client or NomadClient(config.nomad)
    results = []
    for job in jobs:
        result = deploy_one(client, job, dry_run=dry_run)
        if console is not None:
            print_result(console, result, dry_run)
        results.append(result)
    return results


def deploy_one(client: NomadClient, job: RenderedJob, *, dry_run: bool) -> DeployResult:
    parsed = client.post_json("jobs/parse", {"JobHCL": job.hcl, "Canonicalize": True}, retry=True).body
    if not isinstance(parsed, dict) or parsed.get("ID") != job.job_id:
        got = parsed.get("ID") if isinstance(parsed, dict) else type(parsed).__name__
        raise NomadError(f"Nomad parsed job {job.job_id} into an unexpected job ({got})")
    try:
        current: dict[str, Any] | None = client.get_json(f"job/{quote(job.job_id, safe='')}").body
    except NomadNotFound:
        current = None

    kept = _kept_counts(current, parsed)
    _check_counts_fit(job.job_id, parsed, kept)
    changes = diff_jobs(current, parsed)
    action = "create" if current is None else ("update" if changes else "unchanged")
    result = DeployResult(job.job_id, action, changes, kept)
    if dry_run or action == "unchanged":
        return result
    body: dict[str, Any] = {"Job": parsed, "PreserveCounts": True, "EnforceIndex": True}
    body["JobModifyIndex"] = int(current.get("JobModifyIndex") or 0) if current else 0
    try:
        reply = client.post_json("jobs", body).body or {}
    except JobIndexConflict as exc:
        raise JobIndexConflict(
            f"job {job.job_id} changed in Nomad while deploying ({exc}); run `forescale deploy --dry-run` again "
            "to see the new diff",
            exc.status,
            exc.body,
        ) from None
    result.eval_id = str(reply.get("EvalID") or "")
    result.job_modify_index = reply.get("JobModifyIndex")
    return result


def _kept_counts(current: dict[str, Any] | None, parsed: dict[str, Any]) -> dict[str, int]:
    """Groups that exist in Nomad keep their live count (PreserveCounts)."""
    if current is None:
        return {}
    now = {tg.get("Name"): tg.get("Count") for tg in current.get("TaskGroups") or []}
    return {
        tg["Name"]: int(now[tg["Name"]]) for tg in parsed.get("TaskGroups") or [] if now.get(tg["Name"]) is not None
    }


def _check_counts_fit(job_id: str, parsed: dict[str, Any], kept: dict[str, int]) -> None:
    """A preserved count outside the new scaling bounds makes Nomad reject the register: say so first."""
    for tg in parsed.get("TaskGroups") or []:
        scaling = tg.get("Scaling") or {}
        count = kept.get(tg["Name"])
        lo, hi = scaling.get("Min"), scaling.get("Max")
        if count is None or lo is None or hi is None:
            continue
        if not lo <= count <= hi:
            raise ForescaleError(
                f"job {job_id} group {tg['Name']} runs {count} allocation(s), outside the new scaling bounds "
                f"{lo}..{hi}; Nomad would reject the register. Change the pool's min/max to include {count}, "
                f"or scale the group into {lo}..{hi} first"
            )


# ---------------------------------------------------------------- diff


def diff_jobs(current: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Changes from ``current`` to ``new`` as ``+ path: value`` / ``~ path: old → new`` / ``- group`` lines."""
    if current is None:
        groups = ", ".join(f"{tg['Name']} (count {tg.get('Count')})" for tg in new.get("TaskGroups") or [])
        return [f"+ job {new.get('ID')}: new, groups {groups}"]
    return list(_diff(current, new, "", top=True))


def _diff(old: Any, new: Any, path: str, top: bool = False) -> Iterator[str]:
    if isinstance(new, dict) and isinstance(old, dict):
        for key, value in new.items():
            if (top and key in SERVER_FIELDS) or value is None:
                continue  # unset in the jobspec: Nomad keeps its default
            if key == "Count" and path.startswith("TaskGroups["):
                continue  # PreserveCounts: reported separately
            yield from _diff(old.get(key), value, f"{path}.{key}" if path else key)
        return
    if isinstance(new, list) and isinstance(old, list) and _named(new) and _named(old):
        olds = {item["Name"]: item for item in old}
        news = {item["Name"]: item for item in new}
        for name, item in news.items():
            where = f"{path}[{name}]"
            if name not in olds:
                yield f"+ {where}: new"
            else:
                yield from _diff(olds[name], item, where)
        for name in olds:
            if name not in news:
                yield f"- {path}[{name}]: removed (its allocations stop)"
        return
    if _norm(old) != _norm(new):
        if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
            added, removed = _line_changes(old, new)
            yield f"~ {path}: text changed (+{added} -{removed} lines)"
        elif old is None:
            yield f"+ {path}: {_short(new)}"
        else:
            yield f"~ {path}: {_short(old)} → {_short(new)}"


def _line_changes(old: str, new: str) -> tuple[int, int]:
    diff = list(difflib.ndiff(old.splitlines(), new.splitlines()))
    return sum(1 for d in diff if d.startswith("+ ")), sum(1 for d in diff if d.startswith("- "))


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and isinstance(i.get("Name"), str) for i in items)


def _norm(value: Any) -> Any:
    """Nomad returns [] / {} / "" where a parsed job has None: treat empties as equal."""
    if value in ([], {}, ""):
        return None
    return value


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if "\n" in text:
        return f"<{len(text.splitlines())} lines>"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def print_result(console: Console, result: DeployResult, dry_run: bool) -> None:
    title = {"create": "create", "update": "update", "unchanged": "no changes"}[result.action]
    suffix = " (dry run: nothing registered)" if dry_run and result.action != "unchanged" else ""
    console.print(f"[bold]job {result.job_id}[/]: {title}{suffix}", highlight=False)
    for line in result.changes:
        color = {"+": "green", "-": "red", "~": "yellow"}.get(line[0], "")
        console.print(f"  [{color}]{escape(line)}[/]" if color else f"  {escape(line)}", highlight=False)
    for group, count in result.kept_counts.items():
        console.print(escape(f"  = TaskGroups[{group}].Count: kept at {count} (PreserveCounts)"), highlight=False)
    if result.eval_id or result.job_modify_index is not None:
        console.print(
            f"  registered: JobModifyIndex {result.job_modify_index}, evaluation {result.eval_id or '-'}",
            highlight=False,
        )
