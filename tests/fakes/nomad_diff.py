"""``structs.JobDiff`` for the fake's ``POST /v1/job/:id/plan`` (nomad/structs/diff.go, nomad-facts §4).

Shape: ``{"Type","ID","Fields":[FieldDiff],"Objects":[ObjectDiff],"TaskGroups":[TaskGroupDiff]}`` with
``FieldDiff {Type, Name, Old, New, Annotations}``, ``ObjectDiff {Type, Name, Fields, Objects}``,
``TaskGroupDiff {Type, Name, Fields, Objects, Tasks, Updates}`` and ``TaskDiff {Type, Name, Fields, Objects,
Annotations}``; ``Type`` ∈ ``None|Added|Deleted|Edited``. Plan diffs are *contextual*: unchanged fields are listed
with ``Type: "None"``. Values are strings, as Nomad's flatmap renders them. The job-level filter ignores the
fields Nomad manages (``ID, Status, StatusDescription, Version, Stable, CreateIndex, ModifyIndex,
JobModifyIndex, Update, SubmitTime, NomadTokenID, VaultToken``); a count change is annotated ``forces create`` /
``forces destroy``.

Simplifications (a fake): objects are named by their JSON key, lists of objects are compared as sets (as Nomad
does for constraints), lists of primitives element by element (``args[0]``), and nested maps are objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

JOB_FILTER = {
    "ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex", "ModifyIndex", "JobModifyIndex",
    "Update", "SubmitTime", "NomadTokenID", "VaultToken", "TaskGroups", "Region", "Namespace",
}  # fmt: skip
NAMED_LISTS = ("TaskGroups", "Tasks")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _kind(old: Any, new: Any) -> str:
    if old is None and new is not None:
        return "Added"
    if new is None and old is not None:
        return "Deleted"
    return "None" if _text(old) == _text(new) else "Edited"


def _field(name: str, old: Any, new: Any, annotations: list[str] | None = None) -> dict[str, Any]:
    return {"Type": _kind(old, new), "Name": name, "Old": _text(old), "New": _text(new), "Annotations": annotations}


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def _object(name: str, old: Any, new: Any) -> dict[str, Any]:
    """An ObjectDiff of two maps (either may be None: Added / Deleted)."""
    fields, objects = _members(old if isinstance(old, Mapping) else {}, new if isinstance(new, Mapping) else {})
    if _empty(old) and not _empty(new):
        kind = "Added"
    elif _empty(new) and not _empty(old):
        kind = "Deleted"
    else:
        kind = "Edited" if _changed(fields, objects) else "None"
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": objects}


def _changed(fields: list[dict[str, Any]], objects: list[dict[str, Any]]) -> bool:
    return any(f["Type"] != "None" for f in fields) or any(o["Type"] != "None" for o in objects)


def _members(
    old: Mapping[str, Any], new: Mapping[str, Any], skip: set[str] | frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    fields: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in skip or key in NAMED_LISTS:
            continue
        a, b = old.get(key), new.get(key)
        if _empty(a) and _empty(b):
            continue
        if isinstance(a, Mapping) or isinstance(b, Mapping):
            objects.append(_object(key, a, b))
        elif (isinstance(a, list) and any(isinstance(x, Mapping) for x in a)) or (
            isinstance(b, list) and any(isinstance(x, Mapping) for x in b)
        ):
            objects += _object_set(key, a or [], b or [])
        elif isinstance(a, list) or isinstance(b, list):
            a_list, b_list = list(a or []), list(b or [])
            for i in range(max(len(a_list), len(b_list))):
                before = a_list[i] if i < len(a_list) else None
                after = b_list[i] if i < len(b_list) else None
                fields.append(_field(f"{key}[{i}]", before, after))
        else:
            fields.append(_field(key, a, b))
    return fields, objects


def _object_set(name: str, old: list[Any], new: list[Any]) -> list[dict[str, Any]]:
    """Lists of objects (constraints, templates, services) compared as sets: Added / Deleted / None."""
    out = []
    old_keys = [json.dumps(x, sort_keys=True) for x in old]
    new_keys = [json.dumps(x, sort_keys=True) for x in new]
    for item, key in zip(new, new_keys, strict=True):
        out.append(_object(name, item, item) if key in old_keys else _object(name, None, item))
    for item, key in zip(old, old_keys, strict=True):
        if key not in new_keys:
            out.append(_object(name, item, None))
    return out


def _task_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    fields, objects = _members(old or {}, new or {}, skip={"Name"})
    kind = "Added" if old is None else "Deleted" if new is None else ("Edited" if _changed(fields, objects) else "None")
    annotations = ["forces create/destroy update"] if kind == "Edited" else None
    name = (new or old or {}).get("Name", "")
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": objects, "Annotations": annotations}


def _group_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    fields, objects = _members(old or {}, new or {}, skip={"Name"})
    for f in fields:
        if f["Name"] == "Count" and f["Type"] == "Edited":
            grows = int(f["New"] or 0) > int(f["Old"] or 0)
            f["Annotations"] = ["forces create" if grows else "forces destroy"]
    old_tasks = {t["Name"]: t for t in (old or {}).get("Tasks") or []}
    new_tasks = {t["Name"]: t for t in (new or {}).get("Tasks") or []}
    tasks = [_task_diff(old_tasks.get(n), new_tasks.get(n)) for n in sorted(set(old_tasks) | set(new_tasks))]
    if old is None:
        kind = "Added"
    elif new is None:
        kind = "Deleted"
    else:
        kind = "Edited" if _changed(fields, objects) or any(t["Type"] != "None" for t in tasks) else "None"
    name = (new or old or {}).get("Name", "")
    return {"Type": kind, "Name": name, "Fields": fields, "Objects": objects, "Tasks": tasks, "Updates": None}


def job_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``Job.Diff(other, contextual=true)`` for plan: ``Added`` for a new job, else ``None``/``Edited``."""
    fields, objects = _members(old or {}, new, skip=JOB_FILTER)
    old_groups = {g["Name"]: g for g in (old or {}).get("TaskGroups") or []}
    new_groups = {g["Name"]: g for g in new.get("TaskGroups") or []}
    groups = [_group_diff(old_groups.get(n), new_groups.get(n)) for n in sorted(set(old_groups) | set(new_groups))]
    if old is None:
        kind = "Added"
    else:
        kind = "Edited" if _changed(fields, objects) or any(g["Type"] != "None" for g in groups) else "None"
    return {"Type": kind, "ID": new["ID"], "Fields": fields, "Objects": objects, "TaskGroups": groups}
