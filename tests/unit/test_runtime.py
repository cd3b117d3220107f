"""One runtime per process (``autoscaler.wiring.Runtime``): a single Nomad client shared by every part that
talks to Nomad, the store, the audit log (trail and history) and leadership built once; the daemon gets its
recorder and leader gate from the wiring and never rewrites the parts it is given."""

from __future__ import annotations

import ast
from pathlib import Path

from autoscaler.core.clock import ManualClock
from autoscaler.core.ports import History
from autoscaler.nomad.lock import NomadLock
from autoscaler.notify.audit import AuditLog
from autoscaler.wiring import build_runtime
from tests import REPO
from tests.helpers import T0, make_config, pool_dict


def config(tmp_path: Path):  # type: ignore[no-untyped-def]
    nodes = {"provider": "command", "node_pool": "gpu", "command": {"path": "/bin/true"}}
    return make_config(
        pool_dict("ocr", mode="active", nodes=nodes),
        nomad={"address": "http://127.0.0.1:1"},
        overrides={"store": "nomad"},
        audit_log=str(tmp_path / "audit.jsonl"),
        daemon={"listen_port": 0},
    )


def test_every_part_that_talks_to_nomad_shares_one_client(tmp_path: Path) -> None:
    runtime = build_runtime(config(tmp_path), ManualClock(T0))
    daemon = runtime.daemon(notifiers=[])
    try:
        client = runtime.nomad
        deps = daemon.deps
        assert deps.target.client is client  # type: ignore[attr-defined]
        assert deps.nodes is not None and deps.nodes.directory.client is client  # type: ignore[attr-defined]
        assert daemon.watcher is not None and daemon.watcher.store is runtime.store
        assert runtime.store.client is client  # type: ignore[attr-defined]
        (lock,) = [lock for lock in runtime.leadership.locks if isinstance(lock, NomadLock)]
        assert lock.client is client
        assert daemon.leadership is runtime.leadership
    finally:
        daemon.server.httpd.server_close()


def test_the_daemon_gets_its_recorder_and_gate_from_the_wiring(tmp_path: Path) -> None:
    runtime = build_runtime(config(tmp_path), ManualClock(T0))
    daemon = runtime.daemon(notifiers=[])
    try:
        (recorder,) = daemon.deps.notifiers  # the recorder alone: no other notifier was asked for
        assert type(recorder).__name__ == "TickRecorder"
        assert daemon.deps.may_act == runtime.leadership.may_act
    finally:
        daemon.server.httpd.server_close()


def test_the_audit_log_is_the_trail_and_the_history(tmp_path: Path) -> None:
    runtime = build_runtime(config(tmp_path), ManualClock(T0))
    assert isinstance(runtime.audit, AuditLog) and History in AuditLog.__mro__  # implements the read port
    assert runtime.history is runtime.audit
    deps = runtime.tick_deps([])
    assert deps.audit is runtime.audit
    assert deps.may_act is None  # `plan`'s parts are not gated; `tick` and the daemon ask for the gate
    assert runtime.tick_deps([], gated=True).may_act == runtime.leadership.may_act


def test_the_composition_root_never_asks_what_a_target_is() -> None:
    for path in (REPO / "autoscaler" / "wiring.py", REPO / "autoscaler" / "cli" / "main.py"):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"
        ]
        assert not [ast.unparse(c) for c in calls if "Target" in ast.unparse(c)], path
