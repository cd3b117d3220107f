"""Start a real Prometheus on loopback with a TSDB backfilled from request counts (tests and benchmarks).

Backfill goes through ``promtool tsdb create-blocks-from openmetrics``: the counter ``http_requests_total``
is written from cumulative request counts, so pool queries are real ``sum(rate(...[5m]))`` expressions.
OpenMetrics timestamps are seconds and the file must end with ``# EOF``.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

READY_TIMEOUT_S = 60.0
DAY_S = 86400


class PrometheusStartError(RuntimeError):
    """Backfill or start-up failed; the message carries the tool's own output."""


@dataclass(frozen=True)
class CounterSeries:
    """One ``http_requests_total`` series: cumulative request counts at increasing UNIX seconds."""

    labels: dict[str, str]
    t: NDArray[np.float64]
    value: NDArray[np.float64]


def counter_from_counts(
    labels: dict[str, str], starts: NDArray[np.float64], counts: NDArray[np.float64], step_s: float, sample_s: float
) -> CounterSeries:
    """Cumulative counter sampled every ``sample_s`` from per-interval counts (constant rate inside an interval).

    Samples sit on interval boundaries and every ``sample_s`` inside; a missing interval (a gap in the
    trace) gets no samples, so ``rate()`` is absent there rather than zero.
    """
    per = round(step_s / sample_s)
    if per < 1 or abs(per * sample_s - step_s) > 1e-9:
        raise ValueError(f"step {step_s}s is not a multiple of the sample spacing {sample_s}s")
    cum_before = np.concatenate(([0.0], np.cumsum(counts)[:-1]))
    k = np.arange(1, per + 1, dtype=np.float64)  # samples inside (start, start + step]
    t = (starts[:, None] + k[None, :] * sample_s).ravel()
    v = (cum_before[:, None] + counts[:, None] * (k[None, :] / per)).ravel()
    # a run of intervals after a gap (or the first one) also needs its starting sample
    run_start = np.ones(len(starts), dtype=bool)
    run_start[1:] = np.abs(starts[1:] - (starts[:-1] + step_s)) > 1e-6
    t = np.concatenate((t, starts[run_start]))
    v = np.concatenate((v, cum_before[run_start]))
    order = np.argsort(t, kind="stable")
    return CounterSeries(labels, t[order], v[order])


def write_openmetrics(
    path: Path,
    series: Sequence[CounterSeries],
    metric: str = "http_requests",
    t_from: float = -math.inf,
    t_to: float = math.inf,
) -> int:
    """One counter family ``<metric>_total`` (samples in ``[t_from, t_to)``), ends with ``# EOF``; returns samples."""
    written = 0
    with path.open("w", encoding="ascii") as fh:
        fh.write(f"# HELP {metric} Requests served.\n# TYPE {metric} counter\n")
        for s in series:
            label_text = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            prefix = f"{metric}_total{{{label_text}}} "
            lo, hi = np.searchsorted(s.t, t_from, side="left"), np.searchsorted(s.t, t_to, side="left")
            ts, vs = s.t[lo:hi].tolist(), s.value[lo:hi].tolist()
            fh.writelines(f"{prefix}{v!r} {int(t)}\n" for t, v in zip(ts, vs, strict=True))
            written += len(ts)
        fh.write("# EOF\n")
    return written


def _promtool_create_blocks(openmetrics: Path, data_dir: Path) -> None:
    proc = subprocess.run(
        [
            *("promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet"),
            "--max-block-duration=24h",  # hidden flag in 2.42: one block per day, as compaction would make
            *(str(openmetrics), str(data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise PrometheusStartError(f"promtool backfill failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def backfill(series: Sequence[CounterSeries], data_dir: Path, workdir: Path) -> None:
    """Write TSDB blocks for ``series`` into ``data_dir`` with promtool.

    promtool re-reads its whole input once per 2-hour block, so one file per day (days are whole
    blocks, so no block spans two files) run in parallel is ~30x faster than one big file.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    t_min = min(float(s.t[0]) for s in series if len(s.t))
    t_max = max(float(s.t[-1]) for s in series if len(s.t))
    days = range(int(t_min // DAY_S), int(t_max // DAY_S) + 1)
    files = []
    for day in days:
        path = workdir / f"backfill-{day}.om"
        if write_openmetrics(path, series, t_from=day * DAY_S, t_to=(day + 1) * DAY_S):
            files.append(path)
        else:
            path.unlink()
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(lambda f: _promtool_create_blocks(f, data_dir), files))
    finally:
        for path in files:
            path.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries_missing() -> list[str]:
    return [b for b in ("prometheus", "promtool") if shutil.which(b) is None]


@dataclass
class PrometheusServer:
    """A running Prometheus child process on 127.0.0.1 (stop it with ``stop``)."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """Terminate our own child by PID; kill it if it ignores SIGTERM."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_prometheus(data_dir: Path, workdir: Path, ready_timeout_s: float = READY_TIMEOUT_S) -> PrometheusServer:
    """Start Prometheus on a free loopback port over ``data_dir`` and wait for ``/-/ready`` (bounded).

    No scrape jobs (the head stays empty), retention of 100 years so the backfilled past stays queryable.
    """
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probing and binding: retry on another
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = workdir / f"prometheus-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(url, proc, log_path)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if _is_ready(url):
                return server
            try:  # doubles as the poll interval, and notices an early exit at once
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            break
        server.stop()
        last_error = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        if "address already in use" not in last_error:
            break
    raise PrometheusStartError(f"Prometheus did not become ready within {ready_timeout_s:.0f}s: {last_error}")


@contextlib.contextmanager
def running_prometheus(series: Sequence[CounterSeries], workdir: Path) -> Iterator[PrometheusServer]:
    """Backfill ``series`` into a fresh TSDB under ``workdir``, run Prometheus over it, stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    backfill(series, workdir / "data", workdir)
    server = start_prometheus(workdir / "data", workdir)
    try:
        yield server
    finally:
        server.stop()
