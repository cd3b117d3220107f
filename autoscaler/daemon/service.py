"""`forescale run`: APScheduler runs the tick every interval (plus at schedule-rule boundaries).

Ticks run on a single worker thread, so two ticks never overlap; missed runs are coalesced into one;
SIGTERM/SIGINT stop the daemon after the running tick. A tick that raises is logged and counted,
never fatal.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from autoscaler.core.report import TickReport
from autoscaler.daemon.http import StatusServer
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.policy.tick import TickDeps, run_tick

log = logging.getLogger("forescale.daemon")

Transitions = Callable[[datetime, datetime], Sequence[datetime]]
TRANSITION_LOOKAHEAD = timedelta(hours=2)
NODE_FOLLOW_UP = timedelta(minutes=2)  # re-tick a pool soon while its nodes drain (terminate them when done)


class Daemon:
    """The long-running scaler. ``transitions(start, end)`` gives extra tick times (rule starts/ends)."""

    def __init__(
        self,
        deps: TickDeps,
        transitions: Transitions | None = None,
        extra_registries: Sequence[CollectorRegistry] = (),
    ) -> None:
        self.deps = deps
        self.interval = deps.config.daemon.interval
        self.transitions = transitions
        self.metrics = DaemonMetrics()
        self.metrics.describe(deps.config.pools, self.interval)
        self.last_report: TickReport | None = None
        self.last_finished: datetime | None = None
        self.started_at: datetime | None = None
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        grace = int(self.interval.total_seconds())
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        settings = deps.config.daemon
        self.server = StatusServer(
            settings.listen_host, settings.listen_port, [self.metrics.registry, *extra_registries], self.health
        )

    # -- the work -------------------------------------------------------------------------------
    def tick(self, trigger: str = "interval", only: Sequence[str] | None = None) -> TickReport | None:
        """Run one tick now (serialised with any other); never raises."""
        with self._tick_lock:
            try:
                report = run_tick(self.deps, only=only)
            except Exception:
                log.exception("tick crashed (%s); the daemon keeps running", trigger)
                self.metrics.crashes.inc()
                return None
            self.metrics.observe(report, trigger)
            self.last_report = report
            self.last_finished = self.deps.clock.now()
            self.follow_up_drains(report)
            return report

    def follow_up_drains(self, report: TickReport) -> list[str]:
        """Pools whose nodes are draining get an extra tick soon, so drained machines are not paid for until the
        next interval. Returns those pools (the extra tick is a normal tick: same decide, target and gates)."""
        pools = [o.pool for o in report.outcomes if o.nodes is not None and o.nodes.draining > 0]
        if not pools or report.dry_run or not self.scheduler.running:
            return pools
        when = self.deps.clock.now() + min(NODE_FOLLOW_UP, self.interval)
        self.scheduler.add_job(
            self.tick,
            DateTrigger(run_date=when),
            id="nodes-follow-up",
            kwargs={"trigger": "nodes", "only": pools},
            replace_existing=True,
        )
        return pools

    def refresh_transitions(self) -> list[datetime]:
        """Add one-shot ticks at every schedule-rule start/end in the look-ahead window."""
        if self.transitions is None:
            return []
        now = self.deps.clock.now()
        try:
            times = [t for t in self.transitions(now, now + TRANSITION_LOOKAHEAD) if t > now]
        except Exception:
            log.exception("cannot compute schedule transitions; interval ticks continue")
            return []
        for when in times:
            self.scheduler.add_job(
                self.tick,
                DateTrigger(run_date=when),
                id=f"transition-{when.isoformat()}",
                kwargs={"trigger": "schedule"},
                replace_existing=True,
            )
        return times

    def schedule_jobs(self) -> None:
        now = self.deps.clock.now()
        self.scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.interval.total_seconds(), start_date=now),
            id="tick",
            name="forescale tick",
            kwargs={"trigger": "interval"},
            next_run_time=now,
        )
        if self.transitions is not None:
            self.scheduler.add_job(
                self.refresh_transitions,
                IntervalTrigger(seconds=TRANSITION_LOOKAHEAD.total_seconds() / 2, start_date=now),
                id="transitions",
                name="schedule look-ahead",
                next_run_time=now,
            )

    # -- health ---------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the scheduler runs and a tick finished within two intervals (plus a minute)."""
        now = self.deps.clock.now()
        limit = 2 * self.interval + timedelta(minutes=1)
        reference = self.last_finished or self.started_at
        overdue = reference is None or now - reference > limit
        ok = self.scheduler.running and not overdue and not self._stop.is_set()
        detail: dict[str, Any] = {
            "ok": ok,
            "scheduler_running": self.scheduler.running,
            "last_tick": self.last_finished.isoformat() if self.last_finished else None,
            "interval_s": self.interval.total_seconds(),
        }
        if self.last_report is not None:
            detail["pools"] = {
                o.pool: {"status": o.status, "held": bool(o.decision and o.decision.held), "error": o.error}
                for o in self.last_report.outcomes
            }
        return ok, detail

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.started_at = self.deps.clock.now()
        self.server.start()
        self.schedule_jobs()
        self.scheduler.start()
        log.info(
            "forescale daemon started: a tick every %s; metrics on http://%s:%d/metrics",
            self.interval,
            self.deps.config.daemon.listen_host,
            self.server.port,
        )

    def stop(self) -> None:
        """Ask the daemon to stop; ``run_forever`` returns after the running tick."""
        self._stop.set()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)  # waits for a running tick to finish
        for notifier in self.deps.notifiers:  # deliver queued Slack messages (bounded wait)
            try:
                notifier.close()
            except Exception:
                log.exception("closing notifier %s failed", type(notifier).__name__)
        self.server.stop()
        log.info("forescale daemon stopped")

    def run_forever(self, install_signals: bool = True) -> None:
        if install_signals:

            def _on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info("received %s: stopping after the running tick", signal.Signals(signum).name)
                self.stop()

            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)
        self.start()
        try:
            while not self._stop.wait(timeout=1.0):
                pass
        finally:
            self.shutdown()
