"""The audit log: one JSON object per line for every decision and override change (``ports.AuditTrail``).

It is also forescale's history (``ports.History``), the memory of one-shot ``forescale tick`` runs (cron) and of
a restarted daemon: cooldowns read recent changes back, the scale-in window reads recent needs back, ``lead_time:
auto`` reads boots back, the guard and a degraded tick read the last good forecast back, and the queued-too-long
warning reads back since when a pool's workers have been queued.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from autoscaler.core.decision import PastAction, PastNeed
from autoscaler.core.history import PLACED, UNPLACEABLE, PlacementRecord
from autoscaler.core.nodes import Backoff, BootSample
from autoscaler.core.ports import AuditTrail, History
from autoscaler.core.report import Event, TickReport
from autoscaler.core.text import redact

SKIPPED = "tick_skipped"  # the pools a tick's deadline left undecided (they go first next tick)


class AuditLog(AuditTrail, History):
    """Append-only JSONL file. Each record is written with a single ``write`` on an O_APPEND fd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # JSON escapes control characters; URL credentials and configured secrets (e.g. in an error text) are redacted.
        line = redact(json.dumps(record, separators=(",", ":"), default=str)) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def check_writable(self) -> None:
        """Raise OSError (e.g. IsADirectoryError) if records cannot be appended; creates the file if missing."""
        if self.path.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))

    def record_events(self, events: Sequence[Event]) -> None:
        for event in events:
            self.record_event(event)

    def record_tick(self, report: TickReport) -> None:
        for outcome in report.outcomes:
            if outcome.status == "off":
                continue  # not evaluated: nothing to record
            record: dict[str, Any] = {
                "type": "decision",
                "at": report.at.isoformat(),
                "pool": outcome.pool,
                "status": outcome.status,
                "dry_run": report.dry_run,
                "note": outcome.note,
                "error": outcome.error,
            }
            if outcome.decision is not None:
                record["decision"] = outcome.decision.to_dict()
            if outcome.nodes is not None:
                record["nodes"] = outcome.nodes.to_dict()
            self.append(record)
        for event in report.events:
            self.record_event(event)
        if report.skipped and not report.dry_run and not report.guard:
            self.append({"type": SKIPPED, "at": report.at.isoformat(), "pool": "*", "pools": list(report.skipped)})

    def record_event(self, event: Event) -> None:
        self.append(
            {"type": event.kind, "at": event.at.isoformat(), "pool": event.pool, "message": event.message}
            | {"details": event.details}
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record; a torn or hand-edited line is skipped, not fatal."""
        try:
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(rec, dict):
                        yield rec
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return

    def placement_history(self) -> list[PlacementRecord]:
        """Every decision's queued count and every queued-too-long warning/recovery, oldest first: what a
        one-shot `forescale tick` needs to know when a pool's workers started being queued."""
        out = []
        for rec in self.records():
            try:
                at = datetime.fromisoformat(rec["at"])
                pool = str(rec["pool"])
                if rec.get("type") == "decision" and not rec.get("dry_run"):
                    queued = (rec.get("decision") or {}).get("queued")
                    if queued is not None:
                        out.append(PlacementRecord(at, pool, queued=int(queued)))
                elif rec.get("type") in (UNPLACEABLE, PLACED):
                    out.append(PlacementRecord(at, pool, event=str(rec["type"])))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def recent_actions(self, since: datetime) -> list[PastAction]:
        """Changes applied to Nomad since ``since`` (cooldowns survive between cron runs)."""
        out = []
        for rec in self.records():
            if rec.get("type") != "decision" or rec.get("status") != "applied":
                continue
            dec = rec.get("decision") or {}
            try:
                at = datetime.fromisoformat(rec["at"])
                if at < since:
                    continue
                pinned = any(r.get("code") == "manual_pin" for r in dec.get("reasons") or [] if isinstance(r, dict))
                out.append(
                    PastAction(
                        at=at, pool=rec["pool"], previous=int(dec["current"]), count=int(dec["desired"]), pinned=pinned
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def node_history(self, since: datetime) -> tuple[list[BootSample], set[str]]:
        """Boots observed since ``since`` (for ``lead_time: auto``) and every node problem already reported."""
        boots: list[BootSample] = []
        reported: set[str] = set()
        for rec in self.records():
            kind = rec.get("type")
            details = rec.get("details") or {}
            if kind in ("nodes.problem", "nodes.warning") and isinstance(details.get("key"), str):
                reported.add(details["key"])
            if kind != "nodes.boot":
                continue
            for boot in details.get("boots") or []:
                try:
                    sample = BootSample.from_dict(str(rec["pool"]), boot)
                except (KeyError, TypeError, ValueError):
                    continue
                if sample.running_at >= since:
                    boots.append(sample)
        return boots, reported

    def node_state(self, since: datetime) -> tuple[dict[str, datetime], dict[str, Backoff]]:
        """Per pool: forescale's last ask for machines (``nodes.scale_out``) and the back-off in force at the
        latest executed node step, so a restart neither repeats a failed launch's alarm nor retries at once."""
        asks: dict[str, datetime] = {}
        backoffs: dict[str, Backoff] = {}
        for rec in self.records():
            try:
                at = datetime.fromisoformat(rec["at"])
                pool = str(rec["pool"])
            except (KeyError, TypeError, ValueError):
                continue
            if at < since:
                continue
            if rec.get("type") == "nodes.scale_out":
                asks[pool] = at
            elif rec.get("type") == "decision" and not rec.get("dry_run"):
                nodes = rec.get("nodes")
                if not isinstance(nodes, dict) or nodes.get("dry_run") or nodes.get("error"):
                    continue
                raw = nodes.get("backoff")
                if not isinstance(raw, dict):
                    backoffs.pop(pool, None)
                    continue
                try:
                    backoffs[pool] = Backoff.from_dict(raw)
                except (KeyError, TypeError, ValueError):
                    continue
        return asks, backoffs
    def last_forecasts(self, since: datetime) -> dict[str, tuple[datetime, dict[str, Any]]]:
        """Each pool's last tick decision since ``since`` made on a good forecast (not held, not degraded, not the
        guard's, not a dry run): what a one-shot ``tick --guard`` scales its rate by, and what a degraded tick
        plans with, between cron runs."""
        out: dict[str, tuple[datetime, dict[str, Any]]] = {}
        for rec in self.records():
            dec = rec.get("decision") or {}
            if rec.get("type") != "decision" or rec.get("dry_run") or not isinstance(dec, dict):
                continue
            if dec.get("held") or dec.get("degraded") or dec.get("guard") or dec.get("forecast_rps") is None:
                continue
            try:
                at = datetime.fromisoformat(rec["at"])
                if at >= since:
                    out[str(rec["pool"])] = (at, dec)
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def recent_needs(self, since: datetime) -> list[PastNeed]:
        """What the metrics called for at every decision since ``since`` (dry runs and holds excluded)."""
        out = []
        for rec in self.records():
            if rec.get("type") != "decision" or rec.get("dry_run"):
                continue
            dec = rec.get("decision") or {}
            if dec.get("held") or dec.get("need") is None:
                continue
            try:
                at = datetime.fromisoformat(rec["at"])
                if at < since:
                    continue
                need = dec.get("rate_need")  # a queue-fed pool: the window keeps the rate's need (policy/queue.py)
                out.append(PastNeed(at=at, pool=rec["pool"], nodes=int(dec["need"] if need is None else need)))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def late_pools(self, since: datetime) -> list[str]:
        """The pools a tick since ``since`` left undecided on its deadline and no later tick decided: a one-shot
        `forescale tick` (cron) takes them first, as the daemon does."""
        late: dict[str, datetime] = {}
        for rec in self.records():
            try:
                at = datetime.fromisoformat(rec["at"])
            except (KeyError, TypeError, ValueError):
                continue
            if at < since:
                continue
            if rec.get("type") == SKIPPED and isinstance(rec.get("pools"), list):
                late.update({str(p): at for p in rec["pools"]})
            elif rec.get("type") == "decision" and late.get(str(rec.get("pool")), at) < at:
                del late[str(rec["pool"])]  # a later tick took it (a skipped pool's own record is the skip's time)
        return list(late)
