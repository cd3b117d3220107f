"""The file store: atomic replace, fcntl lock, many concurrent writers, and broken files never emptied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from overrides.store import FileStore
from tests.cli_helpers import write_config

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WRITERS = 6
PER_WRITER = 20


def test_concurrent_cli_writers(tmp_path: Path) -> None:
    """Four `forescale override set` processes at once on one file: all four overrides and audit lines land."""
    cfg = write_config(tmp_path)
    exe = Path(sys.executable).with_name("forescale")
    jobs = [("ocr", "--pin", "40"), ("ocr", "--max", "90"), ("face", "--min", "2"), ("face", "--max", "15")]
    env = dict(os.environ, COLUMNS="200")
    procs = [
        subprocess.Popen(
            [str(exe), "override", "set", pool, flag, value, "--for", "1h", "--reason", "load", "-c", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pool, flag, value in jobs
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    records = FileStore(tmp_path / "overrides.json").read(["ocr", "face"])
    got = sorted((o.pool, o.kind, o.value) for r in records.values() for o in r.active)
    assert got == sorted((pool, flag[2:], int(value)) for pool, flag, value in jobs)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sorted(r["type"] for r in audit) == ["override_set"] * 4
