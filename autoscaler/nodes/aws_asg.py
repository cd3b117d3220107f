"""The ``aws_asg`` node provider: an EC2 Auto Scaling Group through boto3.

* Scale-out: ``SetDesiredCapacity`` to the new capacity (the planner clamps it to the group's MaxSize itself:
  the API rejects more, and some endpoints — moto — silently accept it).
* Scale-in never lowers the desired capacity blindly: the planner names exact instances whose Nomad nodes are
  drained, and each goes with ``TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=True)``
  (``False`` to replace a dead instance at the group's MinSize).
* Launches that never came are cancelled by ``SetDesiredCapacity`` down to the instances that exist, read again
  just before (refused when more exist: AWS would pick instances to terminate itself, undrained).
* Group state every describe (docs/aws-facts.md): LifecycleState → phase, HealthStatus, ProtectedFromScaleIn,
  SuspendedProcesses (Launch / Terminate block scale-out / removals; AZRebalance active across zones is warned),
  an instance refresh in progress (``DescribeInstanceRefreshes``: removals paused), the warm pool, and — when
  desired is above the instances — ``DescribeScalingActivities`` for failed launches.
* Credentials come from boto3's standard chain (environment, shared config/profile, container or instance
  role); forescale.yaml never holds them. Retries use botocore's ``standard`` mode (throttling, 5xx,
  timeouts) bounded by ``nodes.aws.max_attempts`` total attempts.

Every failure becomes a ``NodeProviderError`` whose message names the call, the AWS error code and the fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config as BotoConfig
from botocore.parsers import ResponseParserError

from autoscaler import __version__
from autoscaler.core.errors import NodeProviderError
from autoscaler.core.nodes import GroupState, LaunchFailure, Machine, MachineGroup, MachinePhase, TerminateResult
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import AwsAsgSettings
from autoscaler.nodes.cloud_calls import refuse_above_max

log = logging.getLogger("forescale.nodes.aws")

GONE_STATES = frozenset(
    {"Terminating", "Terminating:Wait", "Terminating:Proceed", "Terminated", "Detaching", "Detached"}
)
THROTTLED = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"})
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"})
BAD_CREDENTIALS = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "AuthFailure"}
)
EC2_BATCH = 100  # instance ids per DescribeInstances call
INSTANCE_ATTRIBUTE = "unique.platform.aws.instance-id"  # Nomad's env_aws fingerprint (client/fingerprint/env_aws.go)
BOOTING = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})
STANDBY = frozenset({"Standby", "EnteringStandby", "Warmed:Pending", "Warmed:Running", "Warmed:Stopped"})
REFRESHING = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
LAUNCH_RUNNING = frozenset(
    {
        "PendingSpotBidPlacement",
        "WaitingForSpotInstanceRequestId",
        "WaitingForSpotInstanceId",
        "WaitingForInstanceId",
        "PreInService",
        "InProgress",
        "MidLifecycleAction",
        "WaitingForInstanceWarmup",
    }
)
FAILURE_CODES = (
    "InsufficientInstanceCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "InvalidParameterValue",
    "InvalidAMIID.NotFound",
    "Unsupported",
)


class AwsAsgProvider:
    """Implements ``NodeProvider`` for one Auto Scaling group (one provider per pool)."""

    kind = "aws_asg"

    def __init__(self, settings: AwsAsgSettings, *, session: boto3.session.Session | None = None) -> None:
        self.settings = settings
        self._session = session
        self._clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ clients

    @property
    def where(self) -> str:
        region = self.settings.region or (self._boto_session().region_name or "?")
        return f"ASG {self.settings.asg_name} ({region})"

    def _boto_session(self) -> boto3.session.Session:
        if self._session is None:
            self._session = boto3.session.Session()
        return self._session

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            timeout = self.settings.timeout.total_seconds()
            config = BotoConfig(
                retries={"mode": "standard", "total_max_attempts": self.settings.max_attempts},
                connect_timeout=timeout,
                read_timeout=timeout,
                user_agent_extra=f"forescale/{__version__}",
            )
            try:
                self._clients[service] = self._boto_session().client(
                    service,
                    region_name=self.settings.region,
                    endpoint_url=self.settings.endpoint_url,
                    config=config,
                )
            except botocore.exceptions.NoRegionError:
                raise NodeProviderError(
                    f"{service}: no AWS region for Auto Scaling group '{self.settings.asg_name}': set "
                    "nodes.aws.region in forescale.yaml or AWS_REGION in the environment",
                    code="NoRegion",
                ) from None
        return self._clients[service]

    def _call(self, service: str, operation: str, **params: Any) -> Any:
        client = self._client(service)
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:
            raise self._error(service, operation, exc) from exc

    # ------------------------------------------------------------------ NodeProvider

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        return attributes.get(self.node_key(pool)) or None

    def node_key(self, pool: PoolConfig) -> str:
        return pool.nodes.instance_attribute or INSTANCE_ATTRIBUTE

    def _group(self, pool: PoolConfig) -> dict[str, Any]:
        reply = self._call(
            "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[self.settings.asg_name]
        )
        groups = reply.get("AutoScalingGroups") if isinstance(reply, dict) else None
        if not isinstance(groups, list):
            raise NodeProviderError(
                f"{self.where}: DescribeAutoScalingGroups answered without a list of groups; nothing assumed",
                retryable=True,
                code="Unreadable",
            )
        if not groups:
            raise NodeProviderError(
                f"Auto Scaling group '{self.settings.asg_name}' not found in region "
                f"{self._client('autoscaling').meta.region_name} (pool {pool.name}): check nodes.aws.asg_name and "
                "nodes.aws.region, and that the credentials belong to the group's account",
                code="NotFound",
            )
        asg = groups[0]
        if not isinstance(asg, dict) or not isinstance(asg.get("DesiredCapacity"), int):
            raise NodeProviderError(
                f"{self.where}: DescribeAutoScalingGroups answered a group without DesiredCapacity; nothing assumed",
                retryable=True,
                code="Unreadable",
            )
        return asg

    def describe(self, pool: PoolConfig) -> MachineGroup:
        asg = self._group(pool)
        instances = [i for i in asg.get("Instances") or [] if isinstance(i, dict) and i.get("InstanceId")]
        live = [i for i in instances if i.get("LifecycleState") not in GONE_STATES]
        launched = self._launch_times([str(i["InstanceId"]) for i in live])
        machines = tuple(
            Machine(
                id=str(i["InstanceId"]),
                state=str(i.get("LifecycleState") or "?"),
                launched_at=launched.get(str(i["InstanceId"])),
                phase=_phase(str(i.get("LifecycleState") or "")),
                healthy=str(i.get("HealthStatus") or "Healthy").lower() == "healthy",
                protected=bool(i.get("ProtectedFromScaleIn")),
                zone=str(i.get("AvailabilityZone") or "") or None,
            )
            for i in sorted(live, key=lambda i: str(i["InstanceId"]))
        )
        desired = int(asg["DesiredCapacity"])
        return MachineGroup(
            name=self.where,
            desired=desired,
            machines=machines,
            min=int(asg.get("MinSize") or 0),
            max=int(asg["MaxSize"]) if asg.get("MaxSize") is not None else None,
            state=self._state(asg, gap=desired > len(machines)),
        )

    def _state(self, asg: Mapping[str, Any], *, gap: bool) -> GroupState:
        name = self.settings.asg_name
        suspended = {
            str(p.get("ProcessName")): str(p.get("SuspensionReason") or "")
            for p in asg.get("SuspendedProcesses") or []
            if isinstance(p, dict)
        }
        notes = [f"suspended processes: {', '.join(sorted(suspended))}"] if suspended else []
        out_blocked = in_blocked = None
        if "Launch" in suspended:
            out_blocked = (
                f"the group's Launch process is suspended: AWS launches nothing (resume it: aws autoscaling "
                f"resume-processes --auto-scaling-group-name {name} --scaling-processes Launch)"
            )
        if "Terminate" in suspended:
            in_blocked = "the group's Terminate process is suspended: forescale removes no machine while it is"
        refresh = self._refresh()
        if refresh and in_blocked is None:
            in_blocked = refresh
        warnings = []
        zones = asg.get("AvailabilityZones") or []
        if "AZRebalance" not in suspended and len(zones) > 1:
            warnings.append(
                (
                    f"az_rebalance:{name}",
                    f"{self.where}: AZRebalance is active across {len(zones)} zones: after forescale terminates exact "
                    "instances, AWS may launch and terminate others to rebalance the zones — without a Nomad drain. "
                    f"Suspend it: aws autoscaling suspend-processes --auto-scaling-group-name {name} "
                    "--scaling-processes AZRebalance (docs/nodes.md)",
                )
            )
        if asg.get("WarmPoolConfiguration"):
            size = asg.get("WarmPoolSize")
            notes.append(
                f"warm pool of {size if size is not None else '?'} instance(s): not capacity until AWS moves them in"
            )
        failures: tuple[LaunchFailure, ...] = ()
        launching = False
        if gap:
            failures, launching = self._activities()
        return GroupState(out_blocked, in_blocked, launching, failures, tuple(warnings), tuple(notes))

    def _refresh(self) -> str | None:
        """An instance refresh in progress (AWS replaces instances itself): the sentence, else None."""
        try:
            reply = self._call(
                "autoscaling", "describe_instance_refreshes", AutoScalingGroupName=self.settings.asg_name, MaxRecords=5
            )
        except NodeProviderError as exc:
            return (
                f"cannot tell whether an instance refresh is in progress ({exc}); grant "
                "autoscaling:DescribeInstanceRefreshes (docs/nodes.md) — no machine is removed meanwhile"
            )
        for refresh in reply.get("InstanceRefreshes") or [] if isinstance(reply, dict) else []:
            status = str(refresh.get("Status") or "") if isinstance(refresh, dict) else ""
            if status in REFRESHING:
                done = refresh.get("PercentageComplete")
                return (
                    f"instance refresh {refresh.get('InstanceRefreshId') or '?'} is {status}"
                    + (f" ({done}% done)" if done is not None else "")
                    + ": AWS replaces instances itself; forescale removes none until it ends"
                )
        return None

    def _activities(self) -> tuple[tuple[LaunchFailure, ...], bool]:
        """Recent failed launches (newest first) and whether a launch is still in progress."""
        try:
            reply = self._call(
                "autoscaling", "describe_scaling_activities", AutoScalingGroupName=self.settings.asg_name, MaxRecords=20
            )
        except NodeProviderError as exc:
            log.warning(
                "%s: cannot read scaling activities (failed launches show after launch_timeout): %s", self.where, exc
            )
            return (), False
        failures = []
        launching = False
        for act in reply.get("Activities") or [] if isinstance(reply, dict) else []:
            if not isinstance(act, dict) or not str(act.get("Description") or "").startswith("Launching"):
                continue
            status = str(act.get("StatusCode") or "")
            if status in LAUNCH_RUNNING:
                launching = True
            if status != "Failed":
                continue
            message = " ".join(str(act.get("StatusMessage") or act.get("Description") or "").split())[:300]
            code = next((c for c in FAILURE_CODES if c in message), None)
            if code is None and re.search(r"do not have sufficient .* capacity", message):
                code = "InsufficientInstanceCapacity"
            when = act.get("StartTime")
            failures.append(
                LaunchFailure(
                    str(act.get("ActivityId") or message),
                    message,
                    when if isinstance(when, datetime) else None,
                    code,
                )
            )
        return tuple(failures), launching

    def _launch_times(self, ids: list[str]) -> dict[str, datetime]:
        """EC2 LaunchTime per instance (boot durations survive a restart); unreadable → measured from the ask."""
        out: dict[str, datetime] = {}
        for start in range(0, len(ids), EC2_BATCH):
            batch = ids[start : start + EC2_BATCH]
            try:
                reply = self._call("ec2", "describe_instances", InstanceIds=batch)
            except NodeProviderError as exc:
                log.warning(
                    "%s: cannot read launch times (boot durations use forescale's ask time): %s", self.where, exc
                )
                return out
            for reservation in reply.get("Reservations") or []:
                for inst in reservation.get("Instances") or []:
                    if isinstance(inst.get("LaunchTime"), datetime):
                        out[str(inst["InstanceId"])] = inst["LaunchTime"]
        return out

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        refuse_above_max(self.where, group, desired, "MaxSize")
        self._set_desired(desired)
        log.info("%s: desired capacity %d → %d (pool %s)", self.where, group.desired, desired, pool.name)
        return f"{self.where}: desired capacity {group.desired} → {desired}"

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        fresh = self._group(pool)
        exist = [
            i
            for i in fresh.get("Instances") or []
            if isinstance(i, dict) and i.get("LifecycleState") not in GONE_STATES
        ]
        if len(exist) > desired:
            raise NodeProviderError(
                f"{self.where}: {len(exist)} instances exist now, more than {desired}: capacity not lowered (AWS would "
                "pick instances to terminate itself, undrained); the next tick looks again",
                code="Appeared",
            )
        self._set_desired(desired)
        before = int(fresh.get("DesiredCapacity") or 0)
        log.info(
            "%s: desired capacity %d → %d: launches that never came cancelled (pool %s)",
            self.where,
            before,
            desired,
            pool.name,
        )
        return f"{self.where}: desired capacity {before} → {desired}"

    def _set_desired(self, desired: int) -> None:
        """``SetDesiredCapacity`` at once (``HonorCooldown=False``: forescale's own cooldowns decide)."""
        self._call(
            "autoscaling",
            "set_desired_capacity",
            AutoScalingGroupName=self.settings.asg_name,
            DesiredCapacity=desired,
            HonorCooldown=False,
        )

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        results = []
        for instance_id in machines:
            try:
                self._call(
                    "autoscaling",
                    "terminate_instance_in_auto_scaling_group",
                    InstanceId=instance_id,
                    ShouldDecrementDesiredCapacity=not replace,
                )
            except NodeProviderError as exc:
                log.error("%s: cannot terminate %s: %s", self.where, instance_id, exc)
                results.append(TerminateResult(instance_id, False, str(exc)))
            else:
                log.info(
                    "%s: terminated %s and decremented the desired capacity (pool %s)",
                    self.where,
                    instance_id,
                    pool.name,
                )
                results.append(TerminateResult(instance_id, True))
        return results

    # ------------------------------------------------------------------ errors

    def _error(self, service: str, operation: str, exc: Exception) -> NodeProviderError:
        action = f"{service}:{_api_name(operation)}"
        what = f"{self.where}: {action}"
        if isinstance(exc, botocore.exceptions.ClientError):
            err = exc.response.get("Error") or {}
            code = str(err.get("Code") or "Unknown")
            message = str(err.get("Message") or "").strip()
            attempts = (exc.response.get("ResponseMetadata") or {}).get("MaxAttemptsReached")
            if code in THROTTLED:
                tries = f" after {self.settings.max_attempts} attempts" if attempts else ""
                return NodeProviderError(
                    f"{what} was throttled by AWS{tries} ({code}: {message}); nothing changed, the next tick retries",
                    retryable=True,
                    code=code,
                )
            if code in DENIED:
                return NodeProviderError(
                    f"{what} was denied ({code}: {message}): the AWS credentials from the standard chain lack "
                    f"{action} on this group; grant the IAM policy in docs/nodes.md",
                    code=code,
                )
            if code in BAD_CREDENTIALS:
                return NodeProviderError(
                    f"{what}: AWS rejected the credentials ({code}: {message}); check the environment, profile or "
                    "instance role that boto3's chain picks up",
                    code=code,
                )
            status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
            return NodeProviderError(f"{what} failed ({code}: {message})", retryable=status >= 500, code=code)
        if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
            return NodeProviderError(
                f"{what}: no AWS credentials found by boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE and ~/.aws, or an instance/container role); forescale.yaml never holds them",
                code="NoCredentials",
            )
        if isinstance(exc, ResponseParserError | KeyError | ValueError | TypeError):
            return NodeProviderError(
                f"{what}: AWS answered with a body that is not the API's XML (an HTML page from a proxy, a truncated "
                "answer, a server error); nothing is assumed changed",
                retryable=True,
                code="Unreadable",
            )
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError
            | botocore.exceptions.ConnectTimeoutError
            | botocore.exceptions.ReadTimeoutError
            | botocore.exceptions.ConnectionClosedError,
        ):
            return NodeProviderError(
                f"{what}: cannot reach AWS ({type(exc).__name__}: {exc}); the next tick retries",
                retryable=True,
                code="Unreachable",
            )
        if isinstance(exc, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
            return NodeProviderError(f"{what} failed: {exc}", code=type(exc).__name__)
        if isinstance(exc, NodeProviderError):
            return exc
        return NodeProviderError(f"{what} failed unexpectedly: {exc!r}", code=type(exc).__name__)


def _api_name(operation: str) -> str:
    """``set_desired_capacity`` → ``SetDesiredCapacity`` (the IAM action's name)."""
    return "".join(part.capitalize() for part in operation.split("_"))


def _phase(state: str) -> MachinePhase:
    """AWS LifecycleState → the node step's phase (docs/aws-facts.md)."""
    if state in BOOTING:
        return "booting"
    if state in STANDBY:
        return "standby"
    if state in GONE_STATES:
        return "leaving"
    return "in_service"
