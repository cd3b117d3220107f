"""The daemon: scheduler options, metrics and health over HTTP, clean stop, extra ticks at rule boundaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.helpers import free_port, http_get, pool_dict


def test_forescale_run_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The real CLI daemon: Prometheus and Nomad unreachable, it still ticks, serves health and exits 0."""
    port = free_port()
    dead = free_port()
    cfg = {
        "prometheus": {"url": f"http://127.0.0.1:{dead}", "timeout": "2s"},
        "nomad": {"address": f"http://127.0.0.1:{dead}", "retries": 0, "timeout": "2s"},
        "audit_log": str(tmp_path / "audit.jsonl"),
        "daemon": {"listen_port": port, "interval": "20m"},
        "leader": {"enabled": False},  # a single instance: with Nomad unreachable it still ticks and reports
        "overrides": {"path": str(tmp_path / "overrides.json")},
        "pools": [pool_dict("ocr")],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NOMAD_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        status = None
        for _ in range(300):  # bounded wait for the first tick to finish (each attempt waits ≤ 0.1 s)
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/healthz")
                if status == 200 and json.loads(body).get("last_tick"):  # healthy from the start: wait for a tick
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert status == 200, (
            f"daemon never became healthy; output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
        )
        assert '"status": "failed"' in body  # Nomad unreachable is reported, not fatal
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopping after the running tick" in out
    assert "forescale daemon stopped" in out
