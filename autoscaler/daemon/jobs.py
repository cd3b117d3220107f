"""The daemon's ticks besides the interval and the guard: when the override store changes, just after a manual
override expires, soon after a node drain starts, and at every schedule-rule start/end in a look-ahead window.
Each is a one-shot APScheduler job calling ``Daemon.tick`` — through the same gate as every tick."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from autoscaler.core.report import TickReport
from autoscaler.daemon.watch import OverrideWatcher
from autoscaler.policy.tick import TickDeps

log = logging.getLogger("forescale.daemon")

Transitions = Callable[[datetime, datetime], Sequence[datetime]]
TRANSITION_LOOKAHEAD = timedelta(hours=2)
NODE_FOLLOW_UP = timedelta(minutes=2)  # re-tick a pool soon while its nodes drain (terminate them when done)
EXPIRY_GRACE = timedelta(seconds=1)  # tick just after an override's expiry, never just before it


class ExtraTicks:
    """The extra ticks of ``Daemon`` (a mixin: the daemon provides what is declared here)."""

    deps: TickDeps
    scheduler: BackgroundScheduler
    watcher: OverrideWatcher | None
    transitions: Transitions | None
    interval: timedelta
    _changes: int

    def tick(
        self, trigger: str = "interval", only: Sequence[str] | None = None, guard: bool = False
    ) -> TickReport | None:
        raise NotImplementedError

    def on_overrides_changed(self, pools: Sequence[str]) -> None:
        """The override store changed for ``pools``: tick them now. Each change is its own one-shot job: a job
        whose id is still running (the previous change's tick notifying Slack) would be skipped by APScheduler's
        max_instances, and the change would wait for the next interval."""
        now = self.deps.clock.now()
        for pool in pools:
            self._changes += 1
            log.info("override store changed for pool %s: ticking it now", pool)
            self.scheduler.add_job(
                self.tick,
                DateTrigger(run_date=now),
                id=f"override-{pool}-{self._changes}",
                name=f"override change: {pool}",
                kwargs={"trigger": "override", "only": [pool]},
                replace_existing=True,
            )
        self.schedule_expiries()

    def schedule_expiries(self) -> list[tuple[str, datetime]]:
        """One tick per active manual override, just after it expires (a pin ends on time, not at the next
        interval)."""
        if self.watcher is None:
            return []
        now = self.deps.clock.now()
        out = []
        for pool, ident, expires in self.watcher.expiries():
            when = expires + EXPIRY_GRACE
            if when <= now:
                continue
            self.scheduler.add_job(
                self.tick,
                DateTrigger(run_date=when),
                id=f"expiry-{ident}",
                name=f"override {ident} expires: {pool}",
                kwargs={"trigger": "override_expiry", "only": [pool]},
                replace_existing=True,
            )
            out.append((pool, when))
        return out

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

    def guard_groups(self) -> dict[timedelta, list[str]]:
        """Pools with their guard on, by guard interval (one scheduler job per distinct interval)."""
        groups: dict[timedelta, list[str]] = {}
        for pool in self.deps.config.pools:
            if pool.guard.enabled and pool.mode != "off":
                groups.setdefault(pool.guard.interval, []).append(pool.name)
        return groups

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
