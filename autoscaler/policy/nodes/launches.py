"""Launches that fail or never come, and the back-off of scale-out that follows (pure).

The provider's desired capacity is what was asked for, not what exists. A gap (desired above the machines
present) is launches in flight; it becomes a failed launch when the provider reports a failed launch
(AWS scaling activities), or when it lasts ``nodes.launch_timeout`` (15m, cluster-autoscaler's
max-node-provision-time) with no launch in progress. A failed launch is reported once per episode, the
capacity is lowered to the machines that exist (only launches that never came are cancelled: Kubernetes
cluster-autoscaler's ``DecreaseTargetSize`` contract) and scale-out backs off: ``launch_backoff`` (5m),
doubling up to ``launch_backoff_max`` (30m), as cluster-autoscaler backs a node group off. Machines that never
register (a broken image) back scale-out off the same way. A back-off ends when the group has no gap and no
dead machine once it has expired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from autoscaler.core.durations import format_duration_s
from autoscaler.core.nodes import Backoff, MachineGroup, NodeAction
from autoscaler.core.settings.forescale import PoolConfig

ASK_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class LaunchCheck:
    actions: list[NodeAction] = field(default_factory=list)
    backoff: Backoff | None = None  # the pool's back-off after this step (None: none)
    gap_since: datetime | None = None  # when the current gap was first seen (None: no gap)
    failed: bool = False


def check_launches(
    pool: PoolConfig,
    group: MachineGroup,
    dead: int,
    now: datetime,
    *,
    removed: int = 0,
    last_ask: datetime | None,
    gap_since: datetime | None,
    backoff: Backoff | None,
    problem: Callable[..., None],
    blocked: str | None,
) -> LaunchCheck:
    settings = pool.nodes
    present = len(group.present) - removed  # machines reaped by this step leave with a decrement
    gap = group.desired - removed - present
    actions: list[NodeAction] = []
    since = (gap_since or now) if gap > 0 else None
    if since is not None and last_ask is not None and last_ask > since:
        since = last_ask
    asked_from = (last_ask - ASK_SLACK) if last_ask is not None else (now - settings.launch_timeout)
    failures = [f for f in group.state.failures if f.at is None or f.at >= asked_from]
    reason = ""
    if gap > 0 and failures:
        first = failures[0]
        reason = f"the provider failed to launch: {first.message}" + (f" ({first.code})" if first.code else "")
    elif gap > 0 and since is not None and now - since > settings.launch_timeout and not group.state.launching:
        reason = (
            f"{gap} machine(s) asked for have not appeared after {format_duration_s((now - since).total_seconds())} "
            f"(launch_timeout {format_duration_s(settings.launch_timeout.total_seconds())})"
        )
    elif dead:
        reason = f"{dead} machine(s) never registered in Nomad"
    if not reason:
        if backoff is not None and now >= backoff.until and gap <= 0:
            backoff = None  # expired, and the group is whole again
        return LaunchCheck(actions, backoff, since)

    delay = settings.launch_backoff
    if backoff is not None:
        delay = min(backoff.delay * 2, settings.launch_backoff_max) if now >= backoff.until else backoff.delay
    fresh = backoff is None or now >= backoff.until
    if fresh:
        backoff = Backoff(now + delay, delay, reason, backoff.since if backoff is not None else now)
    assert backoff is not None
    if gap > 0:
        problem(  # once per back-off episode: retries that fail again are not news
            f"launch_failed:{group.name}:{int(backoff.since.timestamp())}",
            f"{group.name}: launch failed — {reason}; capacity lowered to the {present} machine(s) that exist, "
            f"scale-out backs off until {backoff.until:%H:%M} UTC ({format_duration_s(backoff.delay.total_seconds())})"
            "; check the group's activity history (capacity, quota, launch template)",
            capacity=present,
        )
        if blocked is None:
            actions.append(
                NodeAction(
                    "cancel",
                    f"lower {group.name}'s capacity {group.desired - removed} → {present}: cancel {gap} launch(es) "
                    "that never came (no existing machine is removed)",
                    capacity=present,
                )
            )
        since = None
    return LaunchCheck(actions, backoff, since, failed=True)
