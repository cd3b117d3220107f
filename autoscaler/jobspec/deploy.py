"""`forescale deploy`: register rendered jobs through Nomad's HTTP API without resetting autoscaled counts.

For each job: ``POST /v1/jobs/parse`` (Nomad turns the HCL into its JSON job), ``GET /v1/job/:id`` (the live
counts), ``POST /v1/job/:id/plan`` with ``Diff: true`` (Nomad's own diff against the stored job and a dry run of
its scheduler), then ``POST /v1/jobs`` with ``PreserveCounts`` and ``EnforceIndex``. ``--dry-run`` stops after
the plan.

Why plan and not a diff of our own: Nomad adds implicit constraints when it stores a job (e.g. native service
discovery) and the parse output has empty policy IDs and zero indexes, so a client-side diff of the parsed job
against ``GET /v1/job/:id`` never comes out empty. The plan's ``Diff.Type`` (``None``/``Added``/``Edited``) is the
verdict, and its ``FailedTGAllocs`` say when Nomad could not place the job's allocations at all.

Counts: plan has no ``PreserveCounts`` (nomad-facts §4), so each existing group is planned, and registered, with
its live count; the jobspec's ``count`` only seeds new groups. Nomad validates the *submitted* count against the
new ``scaling`` bounds and only then swaps in the preserved one without re-checking it (nomad-facts §5): a live
count outside new bounds is therefore submitted clamped into them, kept by Nomad as it is, and reported as a
warning; forescale's next tick scales the group into the bounds (``Job.Scale`` is checked against them).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from autoscaler.core.errors import JobIndexConflict, NomadError, NomadNotFound
from autoscaler.core.settings.forescale import Config
from autoscaler.core.text import markup_safe
from autoscaler.jobspec.workers import RenderedJob
from autoscaler.nomad.client import NomadClient
from autoscaler.nomad.placement import explain_metric, unplaced

MAX_VALUE_CHARS = 120
IDENTITY_FIELDS = ("DestPath", "Name", "LTarget", "Label", "PortLabel")


@dataclass
class DeployResult:
    """What deploy did (or would do) to one job."""

    job_id: str
    action: str  # "create", "update", "unchanged"
    changes: list[str] = field(default_factory=list)
    kept_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
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
    """Parse, plan and (unless ``dry_run``) register each job; print the plan per job on ``console``."""
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
        current: dict[str, Any] | None = client.read_job(job.job_id)
    except NomadNotFound:
        current = None

    kept = live_counts(current, parsed)
    submitted, warnings = with_live_counts(job.job_id, parsed, kept)
    plan = client.plan_job(job.job_id, submitted)
    diff = plan.get("Diff") or {}
    changes = plan_changes(diff, submitted)
    new_job = current is None or diff.get("Type") == "Added"
    action = "create" if new_job else ("update" if changes else "unchanged")
    warnings += placement_warnings(plan)
    result = DeployResult(job.job_id, action, changes, kept, warnings)
    if dry_run or action == "unchanged":
        return result
    body: dict[str, Any] = {"Job": submitted, "PreserveCounts": True, "EnforceIndex": True}
    body["JobModifyIndex"] = int(plan.get("JobModifyIndex") or 0)  # the job the plan was diffed against
    try:
        reply = client.post_json("jobs", body).body or {}
    except JobIndexConflict as exc:
        raise JobIndexConflict(
            f"job {job.job_id} changed in Nomad while deploying ({exc}); run `forescale deploy --dry-run` again "
            "to see the new plan",
            exc.status,
            exc.body,
        ) from None
    result.eval_id = str(reply.get("EvalID") or "")
    result.job_modify_index = reply.get("JobModifyIndex")
    return result


def live_counts(current: Mapping[str, Any] | None, parsed: Mapping[str, Any]) -> dict[str, int]:
    """Groups that exist in Nomad keep their live count (PreserveCounts)."""
    if current is None:
        return {}
    now = {tg.get("Name"): tg.get("Count") for tg in current.get("TaskGroups") or []}
    return {
        tg["Name"]: int(now[tg["Name"]]) for tg in parsed.get("TaskGroups") or [] if now.get(tg["Name"]) is not None
    }


def with_live_counts(
    job_id: str, parsed: Mapping[str, Any], kept: Mapping[str, int]
) -> tuple[dict[str, Any], list[str]]:
    """The job to plan and register: existing groups at their live count, clamped into the new scaling bounds
    (Nomad validates the submitted count); a warning for each live count outside them."""
    job = json.loads(json.dumps(parsed))
    warnings = []
    for tg in job.get("TaskGroups") or []:
        live = kept.get(tg["Name"])
        if live is None:
            continue
        scaling = tg.get("Scaling") or {}
        lo, hi = scaling.get("Min"), scaling.get("Max")
        count = live
        if lo is not None and count < lo:
            count = int(lo)
        if hi is not None and count > hi:
            count = int(hi)
        tg["Count"] = count
        if count != live:
            warnings.append(
                f"group {tg['Name']} of job {job_id} runs {live} allocation(s), outside the new scaling bounds "
                f"{lo}..{hi}: Nomad validates the submitted count ({count}) and then keeps {live} (PreserveCounts "
                f"does not re-check bounds); forescale's next tick scales it into {lo}..{hi}"
            )
    return job, warnings


def placement_warnings(plan: Mapping[str, Any]) -> list[str]:
    """Nomad's dry run could not place some allocations: say which and why (AllocMetric of FailedTGAllocs)."""
    out = []
    for group, metric in sorted((plan.get("FailedTGAllocs") or {}).items()):
        metric = metric or {}
        out.append(f"Nomad could not place {unplaced(metric)} allocation(s) of group {group}: {explain_metric(metric)}")
    return out


# ---------------------------------------------------------------- the plan's diff, as lines


def plan_changes(diff: Mapping[str, Any], job: Mapping[str, Any]) -> list[str]:
    """Nomad's JobDiff as ``+ path: value`` / ``~ path: old → new`` / ``- path`` lines (counts left out: they are
    kept by PreserveCounts and reported separately)."""
    kind = diff.get("Type")
    if kind == "Added":
        groups = ", ".join(f"{tg['Name']} (count {tg.get('Count')})" for tg in job.get("TaskGroups") or [])
        return [f"+ job {job.get('ID')}: new, groups {groups}"]
    if kind in (None, "None"):
        return []
    lines = list(_fields("", diff.get("Fields") or []))
    lines += _objects("", diff.get("Objects") or [])
    for tg in diff.get("TaskGroups") or []:
        path = f"TaskGroups[{tg.get('Name')}]"
        if tg.get("Type") == "Added":
            lines.append(f"+ {path}: new")
            continue
        if tg.get("Type") == "Deleted":
            lines.append(f"- {path}: removed (its allocations stop)")
            continue
        lines += [line for line in _fields(path, tg.get("Fields") or []) if not line.startswith(f"~ {path}.Count:")]
        lines += _objects(path, tg.get("Objects") or [])
        for task in tg.get("Tasks") or []:
            tpath = f"{path}.Tasks[{task.get('Name')}]"
            if task.get("Type") == "Added":
                lines.append(f"+ {tpath}: new")
            elif task.get("Type") == "Deleted":
                lines.append(f"- {tpath}: removed")
            else:
                lines += list(_fields(tpath, task.get("Fields") or []))
                lines += _objects(tpath, task.get("Objects") or [])
    return lines


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# Nomad's diff gives durations as integer nanoseconds ("90000000000"): fields of these names are shown as 1m30s.
DURATION_SUFFIXES = ("Timeout", "Delay", "Deadline", "Interval", "Duration", "HealthyTime", "Period")


def _human(name: str, value: str) -> str:
    """``KillTimeout: 90000000000`` → ``1m30s``; anything else unchanged."""
    if not name.endswith(DURATION_SUFFIXES) or not value.isdigit() or len(value) > 20:
        return value
    from datetime import timedelta

    from autoscaler.core.durations import format_duration

    return format_duration(timedelta(microseconds=int(value) / 1000)) if int(value) else "0s"


def _fields(path: str, fields: list[Mapping[str, Any]]) -> Iterator[str]:
    for f in fields:
        name = str(f.get("Name"))
        kind, where = f.get("Type"), _join(path, name)
        old, new = _human(name, str(f.get("Old") or "")), _human(name, str(f.get("New") or ""))
        if kind == "Edited":
            if "\n" in old or "\n" in new:
                added, removed = _line_changes(old, new)
                yield f"~ {where}: text changed (+{added} -{removed} lines)"
            else:
                yield f"~ {where}: {_short(old)} → {_short(new)}"
        elif kind == "Added":
            yield f"+ {where}: {_short(new)}"
        elif kind == "Deleted":
            yield f"- {where}: {_short(old)} (removed)"


def _objects(path: str, objects: list[Mapping[str, Any]]) -> list[str]:
    """Nested objects; an Added and a Deleted object of the same kind and identity are shown as one edit."""
    lines: list[str] = []
    added = [o for o in objects if o.get("Type") == "Added"]
    deleted = [o for o in objects if o.get("Type") == "Deleted"]
    paired: set[int] = set()
    for new in added:
        old = next((d for d in deleted if id(d) not in paired and _same_identity(d, new)), None)
        where = _join(path, str(new.get("Name")))
        if old is None:
            lines.append(f"+ {where}: {_short(_values(new, 'New'))}")
            continue
        paired.add(id(old))
        before, after = _values(old, "Old"), _values(new, "New")
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                edit = {"Type": "Edited", "Name": key, "Old": before.get(key, ""), "New": after.get(key, "")}
                lines += list(_fields(where, [edit]))
    for old in deleted:
        if id(old) not in paired:
            lines.append(f"- {_join(path, str(old.get('Name')))}: {_short(_values(old, 'Old'))} (removed)")
    for obj in objects:
        if obj.get("Type") == "Edited":
            where = _join(path, str(obj.get("Name")))
            lines += list(_fields(where, obj.get("Fields") or []))
            lines += _objects(where, obj.get("Objects") or [])
    return lines


def _values(obj: Mapping[str, Any], side: str) -> dict[str, str]:
    return {str(f.get("Name")): str(f.get(side) or "") for f in obj.get("Fields") or []}


def _same_identity(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("Name") != b.get("Name"):
        return False
    old, new = _values(a, "Old"), _values(b, "New")
    for key in IDENTITY_FIELDS:
        if key in old and key in new:
            return old[key] == new[key]
    return True


def _line_changes(old: str, new: str) -> tuple[int, int]:
    diff = list(difflib.ndiff(old.splitlines(), new.splitlines()))
    return sum(1 for d in diff if d.startswith("+ ")), sum(1 for d in diff if d.startswith("- "))


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
        console.print(f"  [{color}]{markup_safe(line)}[/]" if color else f"  {markup_safe(line)}", highlight=False)
    for group, count in result.kept_counts.items():
        console.print(markup_safe(f"  = TaskGroups[{group}].Count: kept at {count} (PreserveCounts)"), highlight=False)
    for warning in result.warnings:
        console.print(f"  [yellow]warning[/]: {markup_safe(warning)}", highlight=False)
    if result.eval_id or result.job_modify_index is not None:
        console.print(
            f"  registered: JobModifyIndex {result.job_modify_index}, evaluation {result.eval_id or '-'}",
            highlight=False,
        )
