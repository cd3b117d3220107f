"""What Amazon EC2 Auto Scaling does to a group over time, on a test's clock: the model behind the strict proxy.

``tests/fakes/aws_asg_proxy.py`` puts this in front of the moto server. moto keeps the groups' configuration and the
EC2 instances (IDs, launch templates, tags); this module keeps what moto does not model: the group's real desired
capacity, each instance's lifecycle (``Pending`` → ``InService`` → ``Terminating`` → gone) on the clock, failed
launches and AWS's retries, suspended processes, scale-in protection, health replacement, AZ rebalancing, instance
refreshes, the scaling-activity history and stale ``Describe*`` answers. Every rule cites its source in
docs/aws-facts.md; the section number is given next to the code that implements it.

Nothing here talks HTTP: the proxy parses requests, calls these methods under its lock and renders the answers.
moto is reached through a small ``Backend`` (launch instances, terminate one) so the rules can be read on their own.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

# ---------------------------------------------------------------------------------------------- AWS's words

FAILURE_MESSAGES = {  # aws-facts §3: the StatusMessage of a failed launch, as AWS words it
    "InsufficientInstanceCapacity": (
        "We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested ({az}). "
        "Our system will be working on provisioning additional capacity. You can currently get {instance_type} "
        "capacity by not specifying an Availability Zone in your request or choosing {other_azs}. "
        "Launching EC2 instance failed."
    ),
    "VcpuLimitExceeded": (
        "You have requested more vCPU capacity than your current vCPU limit of {limit} allows for the instance "
        "bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request "
        "to request an adjustment to this limit. Launching EC2 instance failed."
    ),
    "InstanceLimitExceeded": (
        "You have requested more instances ({requested}) than your current instance limit of {limit} allows for the "
        "specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment "
        "to this limit. Launching EC2 instance failed."
    ),
    "InvalidAMIID.NotFound": "The image id '{image_id}' does not exist. Launching EC2 instance failed.",
}

PROCESSES = (
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
)
Event = Callable[[datetime], None]
MAX_RETRIES_PER_TICK = 5000  # a test that jumps a year ahead still ends (docs: a retry a minute for 3½ days)


def stamp(when: datetime) -> str:
    """The time inside a Cause: ``2026-08-05T10:35:05Z`` (whole seconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(when: datetime) -> str:
    """A response timestamp: ``2026-08-05T10:35:05.123Z``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class AwsError(Exception):
    """An error answer as the service sends it (``ErrorResponse`` with Type/Code/Message, or EC2's ``Response``)."""

    def __init__(self, status: int, code: str, message: str, *, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.sender = status, code, message, sender


def validation(message: str) -> AwsError:
    return AwsError(400, "ValidationError", message)


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Activity:
    """``structs Activity`` of DescribeScalingActivities (API_Activity; aws-facts §3)."""

    id: str
    group: str
    group_arn: str
    description: str
    cause: str
    start: datetime
    status: str
    progress: int
    details: str
    end: datetime | None = None
    message: str | None = None

    def finish(self, when: datetime, status: str = "Successful") -> None:
        self.status, self.progress, self.end = status, 100, when

    @property
    def in_progress(self) -> bool:
        return self.status not in ("Successful", "Failed", "Cancelled")


@dataclass
class Instance:
    """One instance as the group shows it. ``launched_at`` is None for an instance the proxy found already running
    (moto's LaunchTime is kept for it)."""

    id: str
    az: str
    instance_type: str
    lifecycle: str  # Pending | InService | Terminating
    health: str = "Healthy"
    protected: bool = False
    launched_at: datetime | None = None
    ready_at: datetime | None = None  # Pending → InService
    running_at: datetime | None = None  # EC2 pending → running
    gone_at: datetime | None = None  # Terminating → removed from the group, EC2 terminated
    ec2_dead: bool = False  # terminated outside the group (EC2 API, Spot): the health check has not noticed yet
    launch_activity: Activity | None = None
    terminate_activity: Activity | None = None
    rebalance: bool = False  # launched to rebalance the zones: once it is in service one elsewhere goes

    def ec2_state(self, now: datetime) -> str:
        """EC2's ``instanceState.name`` (pending → running → shutting-down → terminated)."""
        if self.lifecycle == "Terminating" or self.ec2_dead:
            return "terminated" if self.gone_at is not None and now >= self.gone_at else "shutting-down"
        if self.lifecycle == "Pending" and self.running_at is not None and now < self.running_at:
            return "pending"
        return "running"


@dataclass
class LaunchFailure:
    code: str
    message: str
    remaining: int | None  # attempts left to fail; None: until cleared


@dataclass
class Refresh:
    """An instance refresh (API_InstanceRefresh): status only, the proxy replaces no instance."""

    id: str
    group: str
    status: str
    start: datetime
    preferences: dict[str, str]
    instances_to_update: int
    end: datetime | None = None
    reason: str = ""
    percentage: int = 0

    @property
    def active(self) -> bool:
        return self.status in ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")


@dataclass
class View:
    """What a Describe* answer shows of one group: the truth, or the snapshot taken before a write (stale)."""

    name: str
    desired: int
    min: int
    max: int
    suspended: list[str]
    instances: list[Instance]
    activities: list[Activity]
    refreshes: list[Refresh]
    taken_at: datetime | None = None  # None: the truth

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if i.id == instance_id), None)


@dataclass
class Group:
    name: str
    arn: str
    desired: int
    min: int
    max: int
    azs: list[str]
    instance_type: str
    image_id: str = "ami-12c6146b"
    health_grace: timedelta = timedelta(seconds=300)
    suspended: list[str] = field(default_factory=list)
    instances: dict[str, Instance] = field(default_factory=dict)
    activities: list[Activity] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)
    next_attempt: datetime | None = None
    desired_cause: str = ""  # the sentence that explains the last desired change ("At … a user request …")
    stale: View | None = None
    stale_until: datetime | None = None

    def live(self) -> list[Instance]:
        """Instances that count towards the capacity (not terminating, EC2 still alive as far as ASG knows)."""
        return [i for i in self.instances.values() if i.lifecycle != "Terminating"]

    def per_az(self) -> dict[str, int]:
        counts = dict.fromkeys(self.azs, 0)
        for inst in self.live():
            counts[inst.az] = counts.get(inst.az, 0) + 1
        return counts

    def is_suspended(self, process: str) -> bool:
        return process in self.suspended


class Backend(Protocol):
    """The part of moto the model needs (the proxy implements it with boto3 on the moto server)."""

    def launch(self, group: str, count: int) -> list[str]:
        """Make ``count`` more EC2 instances in the group; returns their IDs."""

    def terminate(self, instance_id: str) -> None:
        """Remove the instance from the group (without a replacement) and terminate it in EC2."""

    def subnet(self, az: str) -> str:
        """The subnet an instance of that zone is placed in (for activity Details)."""


@dataclass
class MotoGroup:
    """A group as moto describes it (configuration and the instances moto holds)."""

    name: str
    arn: str
    desired: int
    min: int
    max: int
    azs: list[str]
    suspended: list[str]
    instances: dict[str, tuple[str, str, str, bool]]  # id → (az, instance type, health, protected)
    health_grace: int = 300


# ---------------------------------------------------------------------------------------------- the world


class AsgWorld:
    """Every group the proxy has seen, moved along the clock by ``tick``. Callers hold the proxy's lock."""

    def __init__(
        self,
        backend: Backend,
        *,
        launch_delay: timedelta,
        ec2_running_after: timedelta | None,
        terminate_delay: timedelta,
        retry_interval: timedelta,
        stale_for: timedelta,
        az_rebalance: bool,
    ) -> None:
        self.backend = backend
        self.launch_delay = launch_delay
        self.ec2_running_after = ec2_running_after
        self.terminate_delay = terminate_delay
        self.retry_interval = retry_interval
        self.stale_for = stale_for
        self.az_rebalance = az_rebalance
        self.groups: dict[str, Group] = {}
        self.failures: dict[str | None, LaunchFailure] = {}  # group name (None: every group) → failure
        self.created: set[str] = set()  # groups created through the proxy (their first machines launch slowly)

    # ------------------------------------------------------------------ sync with moto

    def sync(self, moto: dict[str, MotoGroup], now: datetime) -> None:
        """Adopt groups and instances that appeared in moto outside the proxy; forget deleted groups."""
        for name in list(self.groups):
            if name not in moto:
                del self.groups[name]
        for name, mg in moto.items():
            group = self.groups.get(name)
            if group is None:
                group = self._adopt(mg, now)
            group.min, group.max, group.azs, group.suspended = mg.min, mg.max, list(mg.azs), list(mg.suspended)
            group.health_grace = timedelta(seconds=mg.health_grace)
            for iid, (az, itype, health, protected) in mg.instances.items():
                inst = group.instances.get(iid)
                if inst is None:  # put there outside the proxy (moto directly, AttachInstances): already running
                    zone = min(group.per_az().items(), key=lambda kv: kv[1])[0] if group.azs else az
                    group.instances[iid] = Instance(iid, zone, itype, "InService", health=health, protected=protected)
                    continue
                inst.protected = protected
                if health == "Unhealthy":
                    inst.health = "Unhealthy"
            for inst in list(group.instances.values()):
                gone_from_moto = inst.id not in mg.instances
                if gone_from_moto and inst.lifecycle != "Terminating" and not inst.ec2_dead:
                    del group.instances[inst.id]  # terminated on moto directly: gone (AWS replaces it below)

    def _adopt(self, mg: MotoGroup, now: datetime) -> Group:
        itype = next((t for _az, t, _h, _p in mg.instances.values()), "g4dn.xlarge")
        group = Group(mg.name, mg.arn, mg.desired, mg.min, mg.max, list(mg.azs), itype)
        zones = list(mg.azs) or ["?"]
        for n, (iid, (_az, itype, health, protected)) in enumerate(sorted(mg.instances.items())):
            # moto puts a whole batch in one random zone; a group AWS filled itself is balanced (aws-facts §5)
            zone = zones[n % len(zones)]
            group.instances[iid] = Instance(iid, zone, itype, "InService", health=health, protected=protected)
        self.groups[mg.name] = group
        return group

    def group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            raise validation(f"AutoScalingGroup name not found - AutoScalingGroup '{name}' not found")
        return group

    def find(self, instance_id: str) -> tuple[Group, Instance] | None:
        for group in self.groups.values():
            inst = group.instances.get(instance_id)
            if inst is not None:
                return group, inst
        return None

    # ------------------------------------------------------------------ time

    def tick(self, now: datetime) -> None:
        """Everything AWS does on its own up to ``now``, each at the time it is due (aws-facts §1–§7)."""
        for group in list(self.groups.values()):
            self._tick_group(group, now)

    def _tick_group(self, group: Group, now: datetime) -> None:
        for _ in range(MAX_RETRIES_PER_TICK):
            event = self._next_event(group, now)
            if event is None:
                break
            when, action = event
            action(when)
        if group.stale_until is not None and now >= group.stale_until:
            group.stale, group.stale_until = None, None

    def _next_event(self, group: Group, now: datetime) -> tuple[datetime, Event] | None:
        """The earliest thing due at or before ``now`` (ready, gone, health replacement, scale in, launch, balance)."""
        due: list[tuple[datetime, int, Event]] = []
        for inst in group.instances.values():
            if inst.lifecycle == "Pending" and inst.ready_at is not None and inst.ready_at <= now:
                due.append((inst.ready_at, 0, partial(self._ready, group, inst)))
            if inst.lifecycle == "Terminating" and inst.gone_at is not None and inst.gone_at <= now:
                due.append((inst.gone_at, 1, partial(self._gone, group, inst)))
        floor = min((t for t, _p, _a in due), default=now)
        # Health checks and scale in act "now": they react to state, not to a timer of their own.
        if not group.is_suspended("HealthCheck"):
            dead = [i for i in group.live() if i.ec2_dead]
            if dead:
                due.append((floor, 2, partial(self._health_check_notices, group, dead[0])))
        if not group.is_suspended("ReplaceUnhealthy") and not group.is_suspended("Terminate"):
            sick = [i for i in group.live() if i.health == "Unhealthy" and i.lifecycle == "InService"]
            if sick:
                due.append((floor, 3, partial(self._replace_unhealthy, group, sick[0])))
        if len(group.live()) > group.desired and self._scale_in_victims(group, 1):
            due.append((floor, 4, partial(self._scale_in, group)))
        if len(group.live()) < group.desired and not group.is_suspended("Launch"):
            attempt = group.next_attempt if group.next_attempt is not None else floor
            if attempt <= now:
                due.append((attempt, 5, partial(self._launch, group)))
        if self.az_rebalance:
            step = self._rebalance_step(group)
            if step is not None:
                due.append((floor, 6, step))
        if not due:
            return None
        when, _prio, action = min(due, key=lambda d: (d[0], d[1]))
        return when, action

    # ------------------------------------------------------------------ lifecycle events

    def _ready(self, group: Group, inst: Instance, when: datetime) -> None:
        inst.lifecycle = "InService"
        if inst.launch_activity is not None:
            inst.launch_activity.finish(when)

    def _gone(self, group: Group, inst: Instance, when: datetime) -> None:
        group.instances.pop(inst.id, None)
        if inst.terminate_activity is not None:
            inst.terminate_activity.finish(when)

    def _take_out(self, group: Group, inst: Instance, when: datetime, cause: str) -> Activity:
        """Start terminating an instance (Terminating now, gone after ``terminate_delay``); moto drops it at once."""
        activity = self._activity(
            group, f"Terminating EC2 instance: {inst.id}", cause, when, inst.az, status="InProgress", progress=0
        )
        inst.lifecycle = "Terminating"
        if inst.ec2_dead and inst.gone_at is not None:
            inst.gone_at = max(when, inst.gone_at)  # already shutting down in EC2: it goes when EC2 is done
        else:
            inst.gone_at = when + self.terminate_delay
        inst.terminate_activity = activity
        if not inst.ec2_dead:
            self.backend.terminate(inst.id)
        return activity

    def _health_check_notices(self, group: Group, inst: Instance, when: datetime) -> None:
        """aws-facts §6: an instance stopped or terminated in EC2 is marked unhealthy and replaced."""
        inst.health = "Unhealthy"
        cause = (
            f"At {stamp(when)} an instance was taken out of service in response to an EC2 health check "
            "indicating it has been terminated or stopped."
        )
        self._take_out(group, inst, when, cause)

    def _replace_unhealthy(self, group: Group, inst: Instance, when: datetime) -> None:
        """aws-facts §6: ReplaceUnhealthy terminates first; the replacement is an ordinary launch afterwards."""
        cause = f"At {stamp(when)} an instance was taken out of service in response to a user health-check."
        self._take_out(group, inst, when, cause)

    # ------------------------------------------------------------------ scale in (aws-facts §4, §5)

    def _scale_in_victims(self, group: Group, count: int) -> list[Instance]:
        """The default termination policy: from the zone with the most instances, an unprotected one (scale-in
        protection counts from InService); with Terminate suspended only instances not yet InService may go."""
        chosen: list[Instance] = []
        live = group.live()
        counts: dict[str, int] = {}
        for inst in live:
            counts[inst.az] = counts.get(inst.az, 0) + 1
        for _ in range(count):
            candidates = [
                i
                for i in live
                if i not in chosen
                and not (i.protected and i.lifecycle == "InService")
                and not (group.is_suspended("Terminate") and i.lifecycle == "InService")
            ]
            if not candidates:
                break
            victim = min(
                candidates,
                key=lambda i: (-counts.get(i.az, 0), i.launched_at or datetime.min.replace(tzinfo=UTC), i.id),
            )
            counts[victim.az] -= 1
            chosen.append(victim)
        return chosen

    def _scale_in(self, group: Group, when: datetime) -> None:
        live = len(group.live())
        for victim in self._scale_in_victims(group, live - group.desired):
            cause = (f"{group.desired_cause}  " if group.desired_cause else "") + (
                f"At {stamp(when)} an instance was taken out of service in response to a difference between desired "
                f"and actual capacity, shrinking the capacity from {live} to {group.desired}."
            )
            self._take_out(group, victim, when, cause)

    # ------------------------------------------------------------------ launches (aws-facts §1, §2, §3)

    def _failure_for(self, group: Group) -> LaunchFailure | None:
        return self.failures.get(group.name) or self.failures.get(None)

    def _launch(self, group: Group, when: datetime) -> None:
        live = len(group.live())
        missing = group.desired - live
        if missing <= 0:
            group.next_attempt = None
            return
        az = min(group.per_az().items(), key=lambda kv: (kv[1], group.azs.index(kv[0]) if kv[0] in group.azs else 99))[
            0
        ]
        cause = (f"{group.desired_cause}  " if group.desired_cause else "") + (
            f"At {stamp(when)} an instance was started in response to a difference between desired and actual "
            f"capacity, increasing the capacity from {live} to {group.desired}."
        )
        failure = self._failure_for(group)
        if failure is not None:
            message = failure.message.format(
                instance_type=group.instance_type,
                az=az,
                other_azs=", ".join(a for a in group.azs if a != az) or az,
                limit=0,
                requested=missing,
                image_id=group.image_id,
            )
            activity = self._activity(
                group,
                f"Launching a new EC2 instance.  Status Reason: {message}",
                cause,
                when,
                az,
                status="Failed",
                progress=100,
            )
            activity.end, activity.message = when, message
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self.failures = {k: v for k, v in self.failures.items() if v is not failure}
            group.next_attempt = when + self.retry_interval
            return
        self._start_instances(group, missing, when, cause)
        group.next_attempt = None

    def _start_instances(
        self, group: Group, count: int, when: datetime, cause: str, *, az: str | None = None, rebalance: bool = False
    ) -> list[Instance]:
        started = []
        for iid in self.backend.launch(group.name, count):
            zone = (
                az
                or min(
                    group.per_az().items(), key=lambda kv: (kv[1], group.azs.index(kv[0]) if kv[0] in group.azs else 99)
                )[0]
            )
            running = self.ec2_running_after if self.ec2_running_after is not None else self.launch_delay
            inst = Instance(
                iid,
                zone,
                group.instance_type,
                "Pending",
                launched_at=when,
                ready_at=when + self.launch_delay,
                running_at=when + min(running, self.launch_delay),
                rebalance=rebalance,
            )
            inst.launch_activity = self._activity(
                group, f"Launching a new EC2 instance: {iid}", cause, when, zone, status="PreInService", progress=30
            )
            group.instances[iid] = inst
            started.append(inst)
        return started

    # ------------------------------------------------------------------ AZ rebalancing (aws-facts §5)

    def _rebalance_step(self, group: Group) -> Event | None:
        if group.is_suspended("AZRebalance") or group.is_suspended("Launch") or len(group.azs) < 2:
            return None
        if any(i.lifecycle == "Pending" for i in group.instances.values()):
            return None  # one step at a time: wait for the launches in flight
        fresh = [i for i in group.live() if i.rebalance and i.lifecycle == "InService"]
        if fresh:
            return partial(self._rebalance_terminate, group, fresh[0])
        counts = group.per_az()
        if max(counts.values()) - min(counts.values()) <= 1 or len(group.live()) != group.desired:
            return None
        margin = max(1, math.ceil(group.max * 0.1))  # the group may exceed MaxSize by 10 % while rebalancing
        if len(group.live()) + 1 > group.max + margin:
            return None
        return partial(self._rebalance_launch, group)

    def _rebalance_launch(self, group: Group, when: datetime) -> None:
        counts = group.per_az()
        az = min(counts.items(), key=lambda kv: (kv[1], group.azs.index(kv[0]) if kv[0] in group.azs else 99))[0]
        cause = (
            f"At {stamp(when)} availability zones had {' '.join(str(counts[a]) for a in group.azs)} instances "
            "respectively. An instance was launched to aid in balancing the group's zones."
        )
        self._start_instances(group, 1, when, cause, az=az, rebalance=True)

    def _rebalance_terminate(self, group: Group, fresh: Instance, when: datetime) -> None:
        fresh.rebalance = False
        if group.is_suspended("Terminate"):
            return  # aws-facts §4: the group stays above its size until Terminate resumes
        live = len(group.live())
        counts = group.per_az()
        crowded = [i for i in group.live() if i is not fresh and not (i.protected and i.lifecycle == "InService")]
        if not crowded:
            return
        victim = max(
            crowded, key=lambda i: (counts.get(i.az, 0), -(i.launched_at.timestamp() if i.launched_at else 0.0), i.id)
        )
        cause = (
            f"At {stamp(when)} an instance was taken out of service in response to a difference between desired "
            f"and actual capacity, shrinking the capacity from {live} to {group.desired}."
        )
        self._take_out(group, victim, when, cause)

    # ------------------------------------------------------------------ requests

    def before_write(self, group: Group, now: datetime) -> None:
        """aws-facts §7: Describe* answers show the group as it was before this write for ``stale_for``."""
        if self.stale_for <= timedelta(0):
            return
        if group.stale is None:
            group.stale = self.view(group, now, truth=True)
            group.stale.taken_at = now
        group.stale_until = now + self.stale_for

    def set_desired(self, name: str, desired: int, now: datetime) -> None:
        """SetDesiredCapacity (aws-facts §1, §2): within [MinSize, MaxSize]; launches or scale in follow."""
        group = self.group(name)
        if desired > group.max:
            raise validation(
                f"New SetDesiredCapacity value {desired} is above max value {group.max} for the AutoScalingGroup."
            )
        if desired < group.min:
            raise validation(
                f"New SetDesiredCapacity value {desired} is below min value {group.min} for the AutoScalingGroup."
            )
        self.before_write(group, now)
        self._change_desired(
            group,
            desired,
            now,
            "a user request explicitly set group desired capacity changing "
            f"the desired capacity from {group.desired} to {desired}.",
        )

    def update_sizes(
        self, name: str, min_size: int | None, max_size: int | None, desired: int | None, now: datetime
    ) -> tuple[int, int, int]:
        """UpdateAutoScalingGroup's sizes: a new MinSize/MaxSize drags DesiredCapacity along when it is not given."""
        group = self.group(name)
        lo = group.min if min_size is None else min_size
        hi = group.max if max_size is None else max_size
        if lo > hi:
            raise validation(f"Max bound, {hi}, must be greater than or equal to min bound, {lo}")
        want = desired if desired is not None else min(max(group.desired, lo), hi)
        if not lo <= want <= hi:
            raise validation(f"Desired capacity:{want} must be between the specified min size:{lo} and max size:{hi}")
        self.before_write(group, now)
        group.min, group.max = lo, hi
        if want != group.desired:
            self._change_desired(
                group,
                want,
                now,
                f"a user request update of AutoScalingGroup constraints to min: "
                f"{lo}, max: {hi}, desired: {want} changing the desired capacity from "
                f"{group.desired} to {want}.",
            )
        return lo, hi, want

    def created_group(self, name: str, desired: int, now: datetime) -> None:
        """CreateAutoScalingGroup through the proxy: its first machines launch like any other."""
        group = self.group(name)
        group.desired = 0
        self._change_desired(
            group,
            desired,
            now,
            f"a user request created an AutoScalingGroup changing the desired capacity from 0 to {desired}.",
        )

    def _change_desired(self, group: Group, desired: int, now: datetime, sentence: str) -> None:
        group.desired = desired
        group.desired_cause = f"At {stamp(now)} {sentence}"
        group.next_attempt = now  # a new desired capacity is acted on at once, backoff or not
        self._tick_group(group, now)

    def terminate(self, instance_id: str, decrement: bool, now: datetime) -> Activity:
        """TerminateInstanceInAutoScalingGroup (aws-facts §4)."""
        found = self.find(instance_id)
        if found is None:
            raise validation(f"Instance Id not found - No managed instance found for instance ID: {instance_id}")
        group, inst = found
        if inst.lifecycle == "Terminating":
            activity = inst.terminate_activity
            raise AwsError(
                400,
                "ScalingActivityInProgress",
                f"Activity {activity.id if activity else uuid.uuid4()} is in progress.",
            )
        if group.is_suspended("Terminate") and inst.lifecycle == "InService":
            raise validation(
                f"Instance {instance_id} cannot be terminated: the Terminate process is suspended for "
                f"AutoScalingGroup {group.name}."
            )
        if decrement and group.desired <= group.min:
            raise validation(
                f"Currently, desiredSize equals minSize ({group.min}). Terminating instance without "
                "replacement will violate group's min size constraint. Either set "
                "shouldDecrementDesiredCapacity flag to false or lower group's min size."
            )
        self.before_write(group, now)
        cause = f"At {stamp(now)} instance {instance_id} was taken out of service in response to a user request"
        if decrement:
            cause += f", shrinking the capacity from {group.desired} to {group.desired - 1}."
            group.desired -= 1
            group.desired_cause = ""
        else:
            cause += "."
            group.next_attempt = now
        activity = self._take_out(group, inst, now, cause)
        self._tick_group(group, now)
        return activity

    def set_health(self, instance_id: str, status: str, respect_grace: bool, now: datetime) -> None:
        """SetInstanceHealth (aws-facts §6): Unhealthy → replaced by ReplaceUnhealthy (grace period honoured)."""
        found = self.find(instance_id)
        if found is None:
            raise validation(f"Instance Id not found - No managed instance found for instance ID: {instance_id}")
        group, inst = found
        if status not in ("Healthy", "Unhealthy"):
            raise validation("Valid instance health states are: [Healthy, Unhealthy].")
        in_grace = inst.launched_at is not None and now < inst.launched_at + group.health_grace
        if respect_grace and in_grace:
            return
        self.before_write(group, now)
        inst.health = status
        self._tick_group(group, now)

    def kill(self, instance_id: str, now: datetime) -> None:
        """The instance stops existing in EC2 (TerminateInstances, a Spot interruption, a host failure)."""
        found = self.find(instance_id)
        if found is None:
            raise KeyError(instance_id)
        group, inst = found
        if inst.ec2_dead or inst.lifecycle == "Terminating":
            return
        inst.ec2_dead = True
        inst.gone_at = now + self.terminate_delay
        self.backend.terminate(instance_id)
        self._tick_group(group, now)

    def changed_config(self, name: str, now: datetime) -> None:
        """Suspend/Resume, protection: moto stores the setting; the next tick applies it."""
        group = self.groups.get(name)
        if group is not None:
            self.before_write(group, now)

    # ------------------------------------------------------------------ instance refresh (aws-facts §8)

    def start_refresh(self, name: str, now: datetime, preferences: dict[str, str]) -> Refresh:
        group = self.group(name)
        if any(r.active for r in group.refreshes):
            raise AwsError(
                400,
                "InstanceRefreshInProgress",
                "The request failed because an active instance refresh "
                f"already exists for the specified Auto Scaling group: {name}",
            )
        refresh = Refresh(str(uuid.uuid4()), name, "InProgress", now, preferences, len(group.live()))
        self.before_write(group, now)
        group.refreshes.append(refresh)
        return refresh

    def end_refresh(self, name: str, now: datetime, status: str, reason: str = "") -> Refresh:
        group = self.group(name)
        active = [r for r in group.refreshes if r.active]
        if not active:
            raise AwsError(
                400,
                "ActiveInstanceRefreshNotFound",
                f"No in progress or pending Instance Refresh found for Auto Scaling group {name}",
            )
        refresh = active[-1]
        self.before_write(group, now)
        refresh.status, refresh.end, refresh.reason = status, now, reason
        if status == "Successful":
            refresh.percentage = 100
        return refresh

    # ------------------------------------------------------------------ answers

    def view(self, group: Group, now: datetime, *, truth: bool = False) -> View:
        if not truth and group.stale is not None and group.stale_until is not None and now < group.stale_until:
            return group.stale
        return View(
            group.name,
            group.desired,
            group.min,
            group.max,
            list(group.suspended),
            copy.deepcopy(list(group.instances.values())),
            copy.deepcopy(group.activities),
            copy.deepcopy(group.refreshes),
        )

    def _activity(
        self, group: Group, description: str, cause: str, when: datetime, az: str, *, status: str, progress: int
    ) -> Activity:
        details = '{"Subnet ID":"%s","Availability Zone":"%s"}' % (self.backend.subnet(az), az)  # noqa: UP031
        activity = Activity(
            str(uuid.uuid4()), group.name, group.arn, description, cause, when, status, progress, details
        )
        group.activities.append(activity)
        return activity


def sorted_activities(activities: Iterable[Activity]) -> list[Activity]:
    """API_DescribeScalingActivities: "Activities are sorted by start time. Activities still in progress are
    described first." (newest first within each part)."""
    items = list(activities)
    return sorted(items, key=lambda a: (not a.in_progress, -a.start.timestamp()))
