"""`forescale run`: APScheduler runs the tick every interval (plus at schedule-rule boundaries, when the override
store changes, and when a manual override expires), and the fast guard of each pool every ``guard.interval`` in
between.

Ticks run on a single worker thread, so two ticks never overlap; missed runs are coalesced into one. The guard runs
on a thread of its own and never waits behind a running tick: it checks every pool the tick is not working on at
that moment (policy/runner.py ``PoolLocks``: a tick and a guard check never work on one pool at once). All work
that may scale goes through ``Daemon.act`` — the one gate (one tick at a time and one guard check at a time, each
under a deadline, and only while this daemon leads) that interval, schedule, override, expiry and follow-up ticks
and the fast guard between ticks share. Each tick runs under its deadline (``daemon.tick_deadline``, default half
the interval); ``/healthz`` fails while a tick runs past it. SIGTERM/SIGINT shorten the running tick's deadline to
``daemon.stop_grace`` and stop the daemon right after it. A tick that raises is logged and counted, never fatal.
``/healthz`` and ``/metrics`` show a tick as soon as its decisions are made (before Slack). With leader election, a
standby daemon never acts: ``/healthz`` says ``"role": "standby"`` (200) and ``forescale_leader`` is 0. Health
follows ticks only (a guard check is no substitute for a forecast).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, TypeVar

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from autoscaler.core.deadline import Deadline
from autoscaler.core.durations import format_duration
from autoscaler.core.ports import Notifier
from autoscaler.core.report import Event, TickReport
from autoscaler.daemon.http import StatusServer, listen_error
from autoscaler.daemon.jobs import TRANSITION_LOOKAHEAD, ExtraTicks, Transitions
from autoscaler.daemon.leader import LeaderLoop, Leadership
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.watch import OverrideWatcher
from autoscaler.policy.cycle import run_tick
from autoscaler.policy.tick import TickDeps

log = logging.getLogger("forescale.daemon")

T = TypeVar("T")
GUARD = "guard"  # the scheduler's executor for guard checks


@dataclass(frozen=True)
class Running:
    """The work in progress: what, since when, and its deadline (SIGTERM shortens it)."""

    trigger: str
    since: datetime
    deadline: Deadline


class TickRecorder(Notifier):
    """The first notifier of every daemon tick: health and metrics see the tick the moment it is decided
    (before Slack or the console, which may be slow). The wiring puts it first in the tick's notifiers and
    gives it to the ``Daemon``, which binds it to its ``record``."""

    def __init__(self) -> None:
        self._record: Callable[[TickReport], None] | None = None

    def bind(self, record: Callable[[TickReport], None]) -> None:
        self._record = record

    def notify(self, report: TickReport) -> None:
        if self._record is not None:
            self._record(report)

    def announce(self, event: Event) -> None:
        return None


class Daemon(ExtraTicks):
    """The long-running scaler. ``transitions(start, end)`` gives extra tick times (rule starts/ends);
    ``watcher`` (optional) reports override store changes, which tick the affected pools at once.

    The daemon uses the tick's parts as given: ``recorder`` (optional) must be the first of ``deps.notifiers``
    (health sees each tick before slow notifiers; without one, a tick is recorded when it returns), and with
    ``leadership`` the parts must carry its gate (``deps.may_act``: every scale re-checks the lease).
    """

    def __init__(
        self,
        deps: TickDeps,
        transitions: Transitions | None = None,
        extra_registries: Sequence[CollectorRegistry] = (),
        watcher: OverrideWatcher | None = None,
        leadership: Leadership | None = None,
        recorder: TickRecorder | None = None,
    ) -> None:
        if recorder is not None and (not deps.notifiers or deps.notifiers[0] is not recorder):
            raise ValueError("the daemon's recorder must be the first of the tick's notifiers")
        if leadership is not None and deps.may_act != leadership.may_act:
            raise ValueError("with leader election the tick's parts must carry the gate: may_act=leadership.may_act")
        self.deps = deps
        config = deps.config
        self.interval = config.daemon.interval
        self.transitions = transitions
        self.watcher = watcher
        self.metrics = DaemonMetrics()
        self.metrics.describe(deps.config.pools, self.interval)
        self.shadow_pools = frozenset(p.name for p in config.pools if deps.shadow or p.mode == "shadow")
        self.metrics.set_shadow({p.name: p.name in self.shadow_pools for p in config.pools if p.mode != "off"})
        self.last_report: TickReport | None = None
        # The last report record() saw, of a tick and of a guard check (by the recorder, or after the run).
        self._recorded: dict[bool, TickReport] = {}
        self.last_finished: datetime | None = None
        self.last_trigger: str | None = None
        self.pool_state: dict[str, dict[str, Any]] = {}
        self.started_at: datetime | None = None
        self._trigger = "interval"
        self._guard_trigger = "guard"
        self._changes = 0
        self._tick_lock = threading.Lock()
        self._guard_lock = threading.Lock()  # the guard's own: it never waits for a tick
        self._stop = threading.Event()
        self._watch_thread: threading.Thread | None = None
        if recorder is not None:
            recorder.bind(self.record)
        self.running: Running | None = None
        self.guarding: Running | None = None  # a guard check in progress (beside a tick, maybe)
        self.tick_deadline = config.daemon.deadline()
        self.stop_grace = config.daemon.stop_grace
        # Leader election (None: this daemon always acts, e.g. in tests). Every scale re-checks it (may_act).
        self.leadership = leadership
        self.led_since: datetime | None = None
        self.standby_since: datetime | None = None  # since when this daemon wants to lead and cannot
        self.last_leader_tick: datetime | None = None  # when a tick last started while leading (or without election)
        self.leader_loop: LeaderLoop | None = None
        if leadership is not None:
            leadership.on_change = self._role_changed
            self.leader_loop = LeaderLoop(leadership)
        self.shadow = leadership is not None and leadership.shadow
        self.metrics.leader.set(0 if leadership is not None else 1)
        self.metrics.shadow_run.set(1 if self.shadow else 0)
        self.metrics.leader_lock_error.set_function(
            lambda: 1.0 if self.leadership is not None and self.leadership.status.error else 0.0
        )
        grace = int(self.interval.total_seconds())
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=1), GUARD: ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        settings = config.daemon
        try:
            self.server = StatusServer(
                settings.listen_host, settings.listen_port, [self.metrics.registry, *extra_registries], self.health
            )
        except OSError as exc:
            raise listen_error(exc, settings.listen_host, settings.listen_port, str(config.source or "")) from None
        if watcher is not None:
            watcher.on_change = self.on_overrides_changed

    # -- the work -------------------------------------------------------------------------------
    def act(self, trigger: str, work: Callable[[Deadline], T], *, guard: bool = False) -> T | None:
        """The one way to run work that may scale (every tick, and a guard between ticks): one tick at a time and
        one guard check at a time (a guard check never waits for a tick), under a fresh tick deadline, only while
        this daemon leads and is not stopping. None when it did not run.
        """
        with self._guard_lock if guard else self._tick_lock:
            if self._stop.is_set():
                log.info("%s: not started, the daemon is stopping", trigger)
                return None
            if self.leadership is not None and not self.leadership.leading():
                log.debug("%s: standing by (%s)", trigger, self.leadership.may_act())
                self.metrics.standby.labels(trigger).inc()
                return None
            deadline = Deadline(self.tick_deadline.total_seconds(), self.deps.monotonic)
            running = Running(trigger, self.deps.clock.now(), deadline)
            if guard:
                self.guarding = running
            else:
                self.running = running
            try:
                return work(deadline)
            finally:
                if guard:
                    self.guarding = None
                else:
                    self.running = None

    def tick(
        self, trigger: str = "interval", only: Sequence[str] | None = None, guard: bool = False
    ) -> TickReport | None:
        """Run one tick (or, with ``guard=True``, one guard check) now through ``act``, for every pool or
        ``only`` these; never raises."""

        def work(deadline: Deadline) -> TickReport | None:
            if trigger == "leader" and self._ticked_as_leader():
                log.debug("leader tick skipped: a tick already ran since this daemon started leading")
                return None
            if guard:
                self._guard_trigger = trigger
            else:
                self._trigger = trigger
                self.last_leader_tick = self.deps.clock.now()
            try:
                report = run_tick(self.deps, only=only, deadline=deadline, guard=guard)
            except Exception:
                log.exception("%s crashed (%s); the daemon keeps running", "guard" if guard else "tick", trigger)
                self.metrics.crashes.inc()
                return None
            if self._recorded.get(report.guard) is not report:
                with self.deps.report_lock:  # the recorder records under it too (a tick and a guard finishing)
                    self.record(report, trigger)  # no recorder, or a quiet guard check (nobody is told)
            self.follow_up_drains(report)
            return report

        return self.act(trigger, work, guard=guard)

    def _ticked_as_leader(self) -> bool:
        """A tick ran while leading in this term (the start's interval tick can run after the lock was won: the
        new leader's own tick would decide, audit and notify the same thing twice)."""
        since = self.led_since
        return since is not None and self.last_leader_tick is not None and self.last_leader_tick >= since

    def record(self, report: TickReport, trigger: str | None = None) -> None:
        """Health and metrics of a finished tick (called by the recorder, right after the decisions). A guard
        check updates the metrics and the pools it scaled, never the last tick's time (health)."""
        self._recorded[report.guard] = report
        trigger = trigger or (self._guard_trigger if report.guard else self._trigger)
        self.metrics.observe(report, trigger, self.shadow_pools)
        finished = self.deps.clock.now()
        for o in report.outcomes:
            d = o.decision
            self.pool_state[o.pool] = {
                "mode": "shadow" if o.pool in self.shadow_pools else self.deps.config.pool(o.pool).mode,
                "status": o.status,
                "held": bool(d and d.held),
                "hold_cause": d.hold_cause if d else None,
                "current": d.current if d else None,
                "desired": d.desired if d else None,
                "placed": d.placed if d else None,
                "queued": d.queued if d else None,
                "error": o.error,
                "last_tick": report.at.isoformat(),
                "trigger": trigger,
            }
        if report.guard:
            return
        self.last_report = report
        self.last_finished = finished
        self.last_trigger = trigger

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
        for every, pools in self.guard_groups().items():
            self.scheduler.add_job(
                self.tick,
                IntervalTrigger(seconds=every.total_seconds(), start_date=now),
                id=f"guard-{int(every.total_seconds())}s",
                name=f"forescale guard ({', '.join(pools)})",
                kwargs={"trigger": "guard", "guard": True, "only": pools},
                next_run_time=now + every,  # the first tick runs at start: the guard follows it
                executor=GUARD,  # its own thread: a long tick never holds the guard back
            )
        if self.transitions is not None:
            self.scheduler.add_job(
                self.refresh_transitions,
                IntervalTrigger(seconds=TRANSITION_LOOKAHEAD.total_seconds() / 2, start_date=now),
                id="transitions",
                name="schedule look-ahead",
                next_run_time=now,
            )
        self.schedule_expiries()

    def _role_changed(self, role: str) -> None:
        """Called by the election thread. A new leader ticks at once (it has not decided anything yet).
        A shadow run "leads" only itself: it exports forescale_leader 0, so it never hides a missing leader."""
        self.metrics.leader.set(1 if role == "leader" and not self.shadow else 0)
        self.metrics.leader_changes.labels(role).inc()
        self.standby_since = None if role == "leader" else self.deps.clock.now()
        if role == "leader":
            self.led_since = self.deps.clock.now()
            if self.scheduler.running and not self._stop.is_set():
                self.scheduler.add_job(
                    self.tick,
                    DateTrigger(run_date=self.led_since),
                    id="leader-tick",
                    kwargs={"trigger": "leader"},
                    replace_existing=True,
                )
        else:
            self.led_since = None

    # -- health ---------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while the scheduler runs, a leader finished a tick within two intervals (plus a minute), and
        no tick runs past its deadline (plus the stop grace): a tick that cannot be cut is stuck, not busy.
        A standby is healthy (its lock error, if any, is in the detail)."""
        now = self.deps.clock.now()
        limit = 2 * self.interval + timedelta(minutes=1)
        status = self.leadership.status if self.leadership is not None else None
        standby = status is not None and status.role == "standby"
        # A leader must have finished a tick lately (counted from when it started leading); a standby need not.
        references = [t for t in (self.last_finished, self.started_at, self.led_since) if t is not None]
        overdue = not standby and (not references or now - max(references) > limit)
        running = self.running
        overrun = running is not None and now - running.since > self.tick_deadline + self.stop_grace
        # A standby that cannot even try for the lock (Nomad unreachable, the token refused) stays "healthy", as
        # a daemon whose Nomad is down always was: the error is in the detail and forescale_leader_lock_error.
        lock_error = status.error if status is not None and standby else None
        ok = self.scheduler.running and not overdue and not overrun and not self._stop.is_set()
        detail: dict[str, Any] = {
            "ok": ok,
            "role": "standby" if standby else "leader",
            "scheduler_running": self.scheduler.running,
            "last_tick": self.last_finished.isoformat() if self.last_finished else None,
            "last_tick_trigger": self.last_trigger,
            "last_tick_duration_s": round(self.last_report.duration_s, 4) if self.last_report else None,
            "interval_s": self.interval.total_seconds(),
            "dry_run": self.deps.shadow,
            "tick_deadline_s": self.tick_deadline.total_seconds(),
        }
        if self.shadow:
            detail["role"] = "shadow"
            detail["leader"] = "holds no lock: every pool in shadow, so a real forescale may lead beside it"
        if standby and status is not None:
            since = self.standby_since or self.started_at or now
            waited = now - since
            detail["standby_since"] = since.isoformat()
            detail["standby_for_s"] = round(waited.total_seconds(), 1)
            who = f"{status.holder} leads" if status.holder and not lock_error else "no lock"
            detail["standby"] = f"healthy standby since {since:%Y-%m-%d %H:%M:%S} UTC: {who}"
            if waited > self.takeover:
                detail["standby"] = (
                    f"standby for {format_duration(_whole(waited))} (since {since:%Y-%m-%d %H:%M:%S} UTC), longer "
                    f"than a takeover takes ({format_duration(self.takeover)}): {who}; if no forescale leads, "
                    "nothing scales the pools (alert ForescaleLeaderMissing): check that the holder is a live, "
                    "non-shadow forescale"
                )
            if lock_error:
                detail["error"] = lock_error
        if running is not None:
            detail["running"] = {"trigger": running.trigger, "for_s": round((now - running.since).total_seconds(), 1)}
        if overrun and running is not None:
            detail["error"] = (
                f"a {running.trigger} tick has run for {(now - running.since).total_seconds():.0f}s, past its "
                f"deadline of {self.tick_deadline.total_seconds():.0f}s: it is stuck"
            )
        if self.pool_state:
            detail["pools"] = dict(self.pool_state)
        if self.watcher is not None:
            detail["overrides"] = self.watcher.status()
        return ok, detail

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def takeover(self) -> timedelta:
        """How long a standby may wait while a leader dies and its locks expire: 2 × ttl + lock_delay, plus a
        tick interval (a cron `tick` holds the local lock while it runs)."""
        leader = self.deps.config.leader
        return 2 * leader.ttl + leader.lock_delay + self.interval

    def start(self) -> None:
        self.started_at = self.deps.clock.now()
        if self.leadership is not None and not self.shadow:
            self.standby_since = self.started_at
        self.server.start()
        if self.leader_loop is not None:
            self.leader_loop.start()  # tries for the lock at once; a new leader ticks right away
        self.schedule_jobs()
        self.scheduler.start()
        if self.watcher is not None:
            self._watch_thread = threading.Thread(
                target=self.watcher.run, args=(self._stop,), name="forescale-override-watch", daemon=True
            )
            self._watch_thread.start()
        config = self.deps.config
        modes = ", ".join(f"{p.name} ({'shadow' if p.name in self.shadow_pools else p.mode})" for p in config.pools)
        log.info(
            "forescale daemon started: a tick every %s; pools: %s; metrics on http://%s:%d/metrics%s",
            self.interval,
            modes,
            config.daemon.listen_host,
            self.server.port,
            f"; watching {self.watcher.store.location} for override changes" if self.watcher else "",
        )
        if self.deps.shadow:
            log.info(
                "dry run: every pool in shadow; decisions are audited, posted and exported; Nomad never changes; "
                "no leader lock is held"
            )

    def stop(self) -> None:
        """Ask the daemon to stop: no new work starts, the running tick has ``stop_grace`` to finish its calls,
        and ``run_forever`` returns right after it."""
        self._stop.set()
        grace = self.stop_grace.total_seconds()
        for running in (self.running, self.guarding):
            if running is not None:
                running.deadline.shorten(grace, f"the stop grace ({grace:g}s after SIGTERM)")

    def shutdown(self) -> None:
        self.stop()
        self.scheduler.shutdown(wait=True)  # waits for the running tick (its deadline shortened by stop())
        if self.leader_loop is not None:
            self.leader_loop.stop()  # releases the lock: a standby takes over without waiting for the TTL
        grace = self.stop_grace.total_seconds()
        for notifier in self.deps.notifiers:  # deliver queued Slack messages, within the stop grace
            try:
                notifier.close(grace)
            except Exception:
                log.exception("closing notifier %s failed", type(notifier).__name__)
        self.server.stop()
        log.info("forescale daemon stopped")

    def run_forever(self, install_signals: bool = True) -> None:
        if install_signals:

            def _on_signal(signum: int, _frame: FrameType | None) -> None:
                log.info(
                    "received %s: stopping after the running tick (it has %s to finish its calls)",
                    signal.Signals(signum).name,
                    self.stop_grace,
                )
                self.stop()

            signal.signal(signal.SIGTERM, _on_signal)
            signal.signal(signal.SIGINT, _on_signal)
        self.start()
        try:
            while not self._stop.wait(timeout=1.0):
                pass
        finally:
            self.shutdown()


def _whole(span: timedelta) -> timedelta:
    return timedelta(seconds=round(span.total_seconds()))
