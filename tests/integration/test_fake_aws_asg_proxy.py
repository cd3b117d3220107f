"""The strict Auto Scaling proxy against the real moto server: each rule of docs/aws-facts.md, through boto3.

The first test pins what moto alone does (the kindnesses the proxy exists to remove), so a moto upgrade that
fixes one shows up here."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config as BotoConfig
from botocore.parsers import ResponseParserError

from autoscaler.core.clock import ManualClock
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fixtures.moto import Aws

G = "gpu-ocr"
NO_RETRY = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})


def asg(proxy: AsgProxy) -> Any:
    return proxy.client("autoscaling", config=NO_RETRY)


def ec2(proxy: AsgProxy) -> Any:
    return proxy.client("ec2", config=NO_RETRY)


def group(proxy: AsgProxy, name: str = G) -> dict[str, Any]:
    (g,) = asg(proxy).describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return dict(g)


def states(proxy: AsgProxy, name: str = G) -> list[str]:
    return sorted(i["LifecycleState"] for i in group(proxy, name)["Instances"])


def activities(proxy: AsgProxy, name: str = G) -> list[dict[str, Any]]:
    return list(asg(proxy).describe_scaling_activities(AutoScalingGroupName=name)["Activities"])


def ec2_state(proxy: AsgProxy, instance_id: str) -> str:
    reply = ec2(proxy).describe_instances(InstanceIds=[instance_id])
    return str(reply["Reservations"][0]["Instances"][0]["State"]["Name"])


def error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def test_moto_alone_is_kinder_than_aws(aws: Aws) -> None:
    aws.create_asg(G, desired=1, min_size=1)
    client = aws.client("autoscaling")
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3)
    assert [i["LifecycleState"] for i in aws.group(G)["Instances"]] == ["InService"] * 3  # at once
    assert client.describe_scaling_activities(AutoScalingGroupName=G)["Activities"] == []  # no history
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=1)
    (last,) = aws.instance_ids(G)
    client.terminate_instance_in_auto_scaling_group(InstanceId=last, ShouldDecrementDesiredCapacity=True)
    assert aws.group(G)["DesiredCapacity"] == 0  # below MinSize 1: AWS refuses this
    client.suspend_processes(AutoScalingGroupName=G, ScalingProcesses=["Launch"])
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    assert len(aws.instance_ids(G)) == 2  # Launch suspended, launched anyway


def test_launches_go_pending_then_in_service_after_the_launch_delay(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=1)
    (seed,) = aws.instance_ids(G)
    t0 = asg_clock.now()
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3, HonorCooldown=False)
    g = group(asg_proxy)
    assert g["DesiredCapacity"] == 3
    by_state = {i["InstanceId"]: (i["LifecycleState"], i["HealthStatus"]) for i in g["Instances"]}
    assert by_state.pop(seed) == ("InService", "Healthy")
    assert sorted(by_state.values()) == [("Pending", "Healthy")] * 2  # aws-facts §1: Pending is Healthy
    new = sorted(by_state)
    assert [ec2_state(asg_proxy, i) for i in new] == ["pending", "pending"]
    launched = ec2(asg_proxy).describe_instances(InstanceIds=new)["Reservations"][0]["Instances"][0]["LaunchTime"]
    assert launched == t0  # on the proxy's clock, not moto's wall clock
    launches = [a for a in activities(asg_proxy) if a["Description"].startswith("Launching a new EC2 instance: ")]
    assert len(launches) == 2 and all(a["StatusCode"] == "PreInService" for a in launches)
    stamp = t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert launches[0]["Cause"] == (
        f"At {stamp} a user request explicitly set group desired capacity changing the desired capacity from 1 to 3.  "
        f"At {stamp} an instance was started in response to a difference between desired and actual capacity, "
        "increasing the capacity from 1 to 3."
    )
    assert (
        launches[0]["Details"].startswith('{"Subnet ID":"subnet-')
        and '"Availability Zone":"eu-west-1' in (launches[0]["Details"])
    )
    asg_clock.advance(timedelta(seconds=119))
    assert states(asg_proxy).count("Pending") == 2
    asg_clock.advance(timedelta(seconds=1))
    assert states(asg_proxy) == ["InService"] * 3
    assert [ec2_state(asg_proxy, i) for i in new] == ["running", "running"]
    done = [a for a in activities(asg_proxy) if a["Description"].startswith("Launching")]
    assert all(a["StatusCode"] == "Successful" and a["Progress"] == 100 for a in done)
    assert all(a["EndTime"] == t0 + timedelta(minutes=2) for a in done)


def test_desired_capacity_outside_the_bounds_is_refused_with_aws_words(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=2, min_size=1, max_size=4)
    client = asg(asg_proxy)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=5)
    assert error(info) == (
        "ValidationError",
        "New SetDesiredCapacity value 5 is above max value 4 for the AutoScalingGroup.",
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=0)
    assert error(info) == (
        "ValidationError",
        "New SetDesiredCapacity value 0 is below min value 1 for the AutoScalingGroup.",
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.update_auto_scaling_group(AutoScalingGroupName=G, DesiredCapacity=9)
    assert error(info) == (
        "ValidationError",
        "Desired capacity:9 must be between the specified min size:1 and max size:4",
    )
    assert group(asg_proxy)["DesiredCapacity"] == 2


def test_a_capacity_shortage_keeps_desired_writes_failed_activities_and_aws_retries(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=3, max_size=20)
    asg_proxy.fail_launches("InsufficientInstanceCapacity")  # until cleared
    t0 = asg_clock.now()
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=13)
    g = group(asg_proxy)
    assert g["DesiredCapacity"] == 13 and len(g["Instances"]) == 3  # desired is not capacity
    (failed,) = activities(asg_proxy)
    assert failed["StatusCode"] == "Failed" and failed["Progress"] == 100
    assert failed["StartTime"] == failed["EndTime"] == t0
    message = failed["StatusMessage"]
    assert message.startswith(
        "We currently do not have sufficient g4dn.xlarge capacity in the Availability Zone you requested (eu-west-1"
    )
    assert message.endswith("Launching EC2 instance failed.")
    assert failed["Description"] == f"Launching a new EC2 instance.  Status Reason: {message}"
    assert "increasing the capacity from 3 to 13." in failed["Cause"]
    # AWS keeps trying while desired > in service: one failed attempt per retry interval.
    asg_clock.advance(timedelta(minutes=3))
    assert [a["StatusCode"] for a in activities(asg_proxy)] == ["Failed"] * 4
    asg_proxy.clear_launch_failures()
    asg_clock.advance(timedelta(seconds=59))
    assert len(group(asg_proxy)["Instances"]) == 3  # the next retry is not due yet
    asg_clock.advance(timedelta(seconds=1))
    assert states(asg_proxy) == ["InService"] * 3 + ["Pending"] * 10
    newest = activities(asg_proxy)[0]
    assert newest["StatusCode"] == "PreInService" and newest["StartTime"] == t0 + timedelta(minutes=4)


def test_a_counted_failure_and_the_other_aws_messages(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=0)
    asg_proxy.fail_launches("VcpuLimitExceeded", times=1)
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=1)
    (quota,) = activities(asg_proxy)
    assert quota["StatusMessage"] == (
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that "
        "the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request "
        "an adjustment to this limit. Launching EC2 instance failed."
    )
    asg_proxy.fail_launches("InvalidAMIID.NotFound", times=1, group=G)
    asg_proxy.tick()  # the retry is a minute away: nothing yet
    assert len(activities(asg_proxy)) == 1
    asg_proxy.clock = lambda: quota["StartTime"] + timedelta(minutes=1)
    image = [a for a in activities(asg_proxy) if a["StatusCode"] == "Failed"]
    assert image[0]["StatusMessage"] == "The image id 'ami-12c6146b' does not exist. Launching EC2 instance failed."
    asg_proxy.clock = lambda: quota["StartTime"] + timedelta(minutes=2)
    assert states(asg_proxy) == ["Pending"]  # both failures used up: the third attempt launches
    with pytest.raises(ValueError, match="no AWS wording"):
        asg_proxy.fail_launches("SomethingElse")
    asg_proxy.fail_launches("SomethingElse", "The requested configuration is currently not supported.", times=1)


def test_lowering_desired_cancels_launches_that_have_not_happened_not_machines(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=2)
    before = aws.instance_ids(G)
    asg_proxy.fail_launches()
    client = asg(asg_proxy)
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=6)
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3)
    g = group(asg_proxy)
    assert g["DesiredCapacity"] == 3 and sorted(i["InstanceId"] for i in g["Instances"]) == before
    assert states(asg_proxy) == ["InService"] * 2  # no existing instance went for the lower number
    asg_proxy.clear_launch_failures()
    asg_clock.advance(timedelta(minutes=1))
    assert states(asg_proxy) == ["InService", "InService", "Pending"]  # only the one still missing


def test_scale_in_by_desired_terminates_by_the_default_policy_over_time(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=4)
    by_az = {i.id: i.az for i in asg_proxy.instances(G)}
    assert sorted(by_az.values()) == ["eu-west-1a", "eu-west-1a", "eu-west-1b", "eu-west-1b"]  # seeded, balanced
    t0 = asg_clock.now()
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    g = group(asg_proxy)
    going = [i for i in g["Instances"] if i["LifecycleState"] == "Terminating"]
    assert g["DesiredCapacity"] == 2 and len(going) == 2
    assert {by_az[i["InstanceId"]] for i in going} == {"eu-west-1a", "eu-west-1b"}  # one per zone: stays balanced
    assert all(ec2_state(asg_proxy, i["InstanceId"]) == "shutting-down" for i in going)
    terms = [a for a in activities(asg_proxy) if a["Description"].startswith("Terminating EC2 instance: ")]
    assert len(terms) == 2 and all(a["StatusCode"] == "InProgress" for a in terms)
    assert terms[0]["Cause"].endswith(
        "an instance was taken out of service in response to a difference between "
        "desired and actual capacity, shrinking the capacity from 4 to 2."
    )
    asg_clock.advance(timedelta(minutes=1))
    assert states(asg_proxy) == ["InService"] * 2
    assert all(ec2_state(asg_proxy, i["InstanceId"]) == "terminated" for i in going)
    assert all(
        a["StatusCode"] == "Successful" and a["EndTime"] == t0 + timedelta(minutes=1) for a in activities(asg_proxy)
    )


def test_terminate_with_decrement_below_min_and_bad_instances_get_aws_errors(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=3, min_size=2)
    a, b, c = aws.instance_ids(G)
    client = asg(asg_proxy)
    reply = client.terminate_instance_in_auto_scaling_group(InstanceId=a, ShouldDecrementDesiredCapacity=True)
    act = reply["Activity"]
    assert act["Description"] == f"Terminating EC2 instance: {a}" and act["StatusCode"] == "InProgress"
    assert act["Cause"].endswith(
        f"instance {a} was taken out of service in response to a user request, shrinking the capacity from 3 to 2."
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.terminate_instance_in_auto_scaling_group(InstanceId=b, ShouldDecrementDesiredCapacity=True)
    assert error(info) == (
        "ValidationError",
        "Currently, desiredSize equals minSize (2). Terminating instance without replacement will violate group's min "
        "size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.",
    )
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.terminate_instance_in_auto_scaling_group(InstanceId=a, ShouldDecrementDesiredCapacity=False)
    assert error(info) == ("ScalingActivityInProgress", f"Activity {act['ActivityId']} is in progress.")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.terminate_instance_in_auto_scaling_group(
            InstanceId="i-00000000deadbeef", ShouldDecrementDesiredCapacity=True
        )
    assert error(info) == (
        "ValidationError",
        "Instance Id not found - No managed instance found for instance ID: i-00000000deadbeef",
    )
    asg_clock.advance(timedelta(minutes=1))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.terminate_instance_in_auto_scaling_group(InstanceId=a, ShouldDecrementDesiredCapacity=False)
    assert error(info)[1].startswith("Instance Id not found")  # gone: no longer a member
    # Without decrement the group replaces the instance (a launch follows the termination).
    client.terminate_instance_in_auto_scaling_group(InstanceId=c, ShouldDecrementDesiredCapacity=False)
    assert group(asg_proxy)["DesiredCapacity"] == 2
    assert states(asg_proxy) == ["InService", "Pending", "Terminating"]


def test_launch_suspended_launches_nothing_until_resumed(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=1)
    client = asg(asg_proxy)
    client.suspend_processes(AutoScalingGroupName=G, ScalingProcesses=["Launch"])
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3)
    g = group(asg_proxy)
    assert g["DesiredCapacity"] == 3 and len(g["Instances"]) == 1
    (susp,) = g["SuspendedProcesses"]
    assert susp["ProcessName"] == "Launch" and susp["SuspensionReason"].startswith("User suspended at ")
    assert activities(asg_proxy) == []
    client.resume_processes(AutoScalingGroupName=G, ScalingProcesses=["Launch"])
    assert states(asg_proxy) == ["InService", "Pending", "Pending"]


def test_terminate_suspended_keeps_in_service_machines_and_refuses_exact_terminations(
    aws: Aws, asg_proxy: AsgProxy
) -> None:
    aws.create_asg(G, desired=3)
    client = asg(asg_proxy)
    client.suspend_processes(AutoScalingGroupName=G, ScalingProcesses=["Terminate"])
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=1)
    g = group(asg_proxy)
    assert g["DesiredCapacity"] == 1 and states(asg_proxy) == ["InService"] * 3  # accepted, nothing terminated
    victim = g["Instances"][0]["InstanceId"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.terminate_instance_in_auto_scaling_group(InstanceId=victim, ShouldDecrementDesiredCapacity=False)
    assert error(info)[0] == "ValidationError" and "Terminate process is suspended" in error(info)[1]
    # Pending instances are not covered by the suspension.
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=4)
    (pending,) = [i["InstanceId"] for i in group(asg_proxy)["Instances"] if i["LifecycleState"] == "Pending"]
    client.terminate_instance_in_auto_scaling_group(InstanceId=pending, ShouldDecrementDesiredCapacity=True)
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=1)
    client.resume_processes(AutoScalingGroupName=G, ScalingProcesses=["Terminate"])
    assert states(asg_proxy) == ["InService", "Terminating", "Terminating", "Terminating"]


def test_scale_in_protection_is_honoured_by_scale_in_but_not_by_exact_terminations(
    aws: Aws, asg_proxy: AsgProxy
) -> None:
    aws.create_asg(G, desired=3)
    ids = aws.instance_ids(G)
    client = asg(asg_proxy)
    client.set_instance_protection(AutoScalingGroupName=G, InstanceIds=ids[:2], ProtectedFromScaleIn=True)
    assert sorted(i["ProtectedFromScaleIn"] for i in group(asg_proxy)["Instances"]) == [False, True, True]
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=0)
    g = group(asg_proxy)
    going = [i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "Terminating"]
    assert g["DesiredCapacity"] == 0 and going == [ids[2]]  # the protected two stay
    client.terminate_instance_in_auto_scaling_group(InstanceId=ids[0], ShouldDecrementDesiredCapacity=False)
    assert asg_proxy.group(G).instance(ids[0]).lifecycle == "Terminating"  # type: ignore[union-attr]


def test_an_unhealthy_instance_is_terminated_then_replaced(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=2)
    sick, well = aws.instance_ids(G)
    client = asg(asg_proxy)
    client.set_instance_health(InstanceId=sick, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False)
    g = {i["InstanceId"]: (i["LifecycleState"], i["HealthStatus"]) for i in group(asg_proxy)["Instances"]}
    assert g.pop(sick) == ("Terminating", "Unhealthy") and g.pop(well) == ("InService", "Healthy")
    assert list(g.values()) == [("Pending", "Healthy")]
    stamp = asg_clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    causes = [a["Cause"] for a in activities(asg_proxy)]
    assert f"At {stamp} an instance was taken out of service in response to a user health-check." in causes
    # A machine just launched is in its health-check grace period: the call is ignored by default.
    (fresh,) = g
    client.set_instance_health(InstanceId=fresh, HealthStatus="Unhealthy")
    assert asg_proxy.group(G).instance(fresh).health == "Healthy"  # type: ignore[union-attr]


def test_a_machine_that_dies_in_ec2_is_noticed_and_replaced(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=2)
    dead, other = aws.instance_ids(G)
    reply = ec2(asg_proxy).terminate_instances(InstanceIds=[dead])
    assert reply["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down"
    g = {i["InstanceId"]: i["LifecycleState"] for i in group(asg_proxy)["Instances"]}
    assert g.pop(dead) == "Terminating" and g.pop(other) == "InService" and list(g.values()) == ["Pending"]
    assert any(
        "in response to an EC2 health check indicating it has been terminated or stopped." in a["Cause"]
        for a in activities(asg_proxy)
    )
    # With HealthCheck suspended nobody notices: the dead machine stays "InService".
    asg(asg_proxy).suspend_processes(AutoScalingGroupName=G, ScalingProcesses=["HealthCheck"])
    asg_proxy.kill_instance(other)
    assert asg_proxy.group(G).instance(other).lifecycle == "InService"  # type: ignore[union-attr]
    assert ec2_state(asg_proxy, other) == "shutting-down"


@pytest.mark.parametrize("asg_proxy", [{"az_rebalance": True}], indirect=True)
def test_az_rebalancing_after_exact_terminations_kills_an_undrained_machine_elsewhere(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=4, max_size=4)
    zone = {i.id: i.az for i in asg_proxy.instances(G)}
    in_a = sorted(i for i, z in zone.items() if z == "eu-west-1a")
    client = asg(asg_proxy)
    for iid in in_a:  # forescale's scale-in: exact instances, with decrement → zones 0 / 2
        client.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
    views = asg_proxy.instances(G)
    fresh = [i for i in views if i.lifecycle == "Pending"]
    assert len(fresh) == 1 and fresh[0].az == "eu-west-1a"  # AWS launches first …
    assert any(
        "An instance was launched to aid in balancing the group's zones." in a["Cause"] for a in activities(asg_proxy)
    )
    asg_clock.advance(timedelta(minutes=2))
    views = asg_proxy.instances(G)
    killed = [i for i in views if i.lifecycle == "Terminating" and i.id not in in_a]
    assert len(killed) == 1 and killed[0].az == "eu-west-1b"  # … then terminates one nobody drained
    assert group(asg_proxy)["DesiredCapacity"] == 2
    asg_clock.advance(timedelta(minutes=1))
    assert sorted(i.az for i in asg_proxy.instances(G)) == ["eu-west-1a", "eu-west-1b"]


def test_az_rebalancing_is_off_by_default_and_when_suspended(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=4)
    in_a = sorted(i.id for i in asg_proxy.instances(G) if i.az == "eu-west-1a")
    for iid in in_a:
        asg(asg_proxy).terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
    assert not [i for i in asg_proxy.instances(G) if i.lifecycle == "Pending"]
    asg(asg_proxy).suspend_processes(AutoScalingGroupName=G, ScalingProcesses=["AZRebalance"])
    asg_proxy.az_rebalance = True
    assert not [i for i in asg_proxy.instances(G) if i.lifecycle == "Pending"]


@pytest.mark.parametrize("asg_proxy", [{"stale_for": timedelta(seconds=30)}], indirect=True)
def test_describe_answers_are_stale_for_a_while_after_a_write(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    aws.create_asg(G, desired=1)
    client = asg(asg_proxy)
    client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    stale = group(asg_proxy)
    assert stale["DesiredCapacity"] == 1 and len(stale["Instances"]) == 1
    assert activities(asg_proxy) == []
    (new,) = [i.id for i in asg_proxy.instances(G) if i.lifecycle == "Pending"]  # the truth has it
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2(asg_proxy).describe_instances(InstanceIds=[new])
    assert error(info) == ("InvalidInstanceID.NotFound", f"The instance ID '{new}' does not exist")
    asg_clock.advance(timedelta(seconds=30))
    fresh = group(asg_proxy)
    assert fresh["DesiredCapacity"] == 2 and len(fresh["Instances"]) == 2
    assert ec2_state(asg_proxy, new) == "pending"


def test_stale_reads_are_off_by_default(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=1)
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    assert group(asg_proxy)["DesiredCapacity"] == 2


def test_throttling_and_malformed_answers_on_demand(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=1)
    client = asg(asg_proxy)
    asg_proxy.fail_next("throttle", 2, action="DescribeAutoScalingGroups")
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            group(asg_proxy)
        assert error(info) == ("Throttling", "Rate exceeded")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert group(asg_proxy)["DesiredCapacity"] == 1  # the third call passes
    asg_proxy.fail_next("throttle", action="DescribeInstances")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        ec2(asg_proxy).describe_instances()
    assert error(info) == ("RequestLimitExceeded", "Request limit exceeded.")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    asg_proxy.fail_next("html")
    with pytest.raises(ResponseParserError, match="invalid XML received"):
        group(asg_proxy)
    asg_proxy.fail_next("truncated", action="SetDesiredCapacity")
    with pytest.raises(ResponseParserError):
        client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    assert group(asg_proxy)["DesiredCapacity"] == 2  # the write applied; only its answer broke
    asg_proxy.fail_next("deny", action="SetDesiredCapacity")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=3)
    assert error(info)[0] == "AccessDenied" and "autoscaling:SetDesiredCapacity" in error(info)[1]
    asg_proxy.fail_next("internal")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        group(asg_proxy)
    assert error(info)[0] == "InternalFailure"
    assert group(asg_proxy)["DesiredCapacity"] == 2
    with pytest.raises(ValueError):
        asg_proxy.fail_next("gremlins")


def test_instance_refresh_in_progress_is_shown_and_exclusive(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=2)
    client = asg(asg_proxy)
    refresh_id = client.start_instance_refresh(AutoScalingGroupName=G)["InstanceRefreshId"]
    (r,) = client.describe_instance_refreshes(AutoScalingGroupName=G)["InstanceRefreshes"]
    assert r["InstanceRefreshId"] == refresh_id and r["Status"] == "InProgress" and r["InstancesToUpdate"] == 2
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.start_instance_refresh(AutoScalingGroupName=G)
    assert error(info)[0] == "InstanceRefreshInProgress"
    asg_proxy.finish_instance_refresh(G)
    (r,) = client.describe_instance_refreshes(AutoScalingGroupName=G)["InstanceRefreshes"]
    assert r["Status"] == "Successful" and r["PercentageComplete"] == 100
    client.start_instance_refresh(AutoScalingGroupName=G)
    client.cancel_instance_refresh(AutoScalingGroupName=G)
    assert [x["Status"] for x in client.describe_instance_refreshes(AutoScalingGroupName=G)["InstanceRefreshes"]] == [
        "Cancelled",
        "Successful",
    ]


def test_warm_pool_is_moto_s_and_passes_through(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=1)
    client = asg(asg_proxy)
    assert "WarmPoolConfiguration" not in client.describe_warm_pool(AutoScalingGroupName=G)
    client.put_warm_pool(AutoScalingGroupName=G, MinSize=2, PoolState="Stopped")
    pool = client.describe_warm_pool(AutoScalingGroupName=G)
    assert pool["WarmPoolConfiguration"]["MinSize"] == 2 and pool["WarmPoolConfiguration"]["PoolState"] == "Stopped"
    assert pool["Instances"] == []  # moto never moves machines into a warm pool (docs/aws-facts.md §8)


def test_a_group_created_through_the_proxy_launches_its_machines_slowly(aws: Aws, asg_proxy: AsgProxy) -> None:
    lt = aws.client("ec2").create_launch_template(
        LaunchTemplateName="p-lt", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g4dn.xlarge"}
    )["LaunchTemplate"]
    asg(asg_proxy).create_auto_scaling_group(
        AutoScalingGroupName="made",
        MinSize=1,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
        AvailabilityZones=["eu-west-1a", "eu-west-1b"],
    )
    assert states(asg_proxy, "made") == ["Pending", "Pending"]
    cause = activities(asg_proxy, "made")[0]["Cause"]
    assert "a user request created an AutoScalingGroup changing the desired capacity from 0 to 2." in cause
    assert sorted(i["AvailabilityZone"] for i in group(asg_proxy, "made")["Instances"]) == ["eu-west-1a", "eu-west-1b"]


def test_describe_auto_scaling_instances_follows_the_same_states(aws: Aws, asg_proxy: AsgProxy) -> None:
    aws.create_asg(G, desired=1)
    asg(asg_proxy).set_desired_capacity(AutoScalingGroupName=G, DesiredCapacity=2)
    reply = asg(asg_proxy).describe_auto_scaling_instances()["AutoScalingInstances"]
    assert sorted((i["AutoScalingGroupName"], i["LifecycleState"]) for i in reply) == [(G, "InService"), (G, "Pending")]


def test_reads_keep_moto_iam_enforcement(aws: Aws, asg_proxy: AsgProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.create_asg(G, desired=1)
    key, secret = aws.user_with_policy("nothing", ["ec2:DescribeInstances"])
    aws.server.enforce_auth(True)
    try:
        client = boto3.client(
            "autoscaling",
            region_name=aws.region,
            endpoint_url=asg_proxy.url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=NO_RETRY,
        )
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.describe_auto_scaling_groups(AutoScalingGroupNames=[G])
        assert error(info)[0] == "AccessDenied"
        assert asg_proxy.group(G).desired == 1  # the proxy's own calls still work under enforcement
    finally:
        aws.server.enforce_auth(False)


def test_forescale_s_provider_reads_and_writes_through_the_proxy(
    aws: Aws, asg_proxy: AsgProxy, asg_clock: ManualClock
) -> None:
    from autoscaler.core.settings.nodes import AwsAsgSettings
    from autoscaler.nodes.aws_asg import AwsAsgProvider
    from tests.helpers import make_config, pool_dict

    aws.create_asg(G, desired=2, min_size=2, max_size=6)
    pool = make_config(pool_dict("ocr")).pool("ocr")
    prov = AwsAsgProvider(AwsAsgSettings(asg_name=G, region=aws.region, endpoint_url=asg_proxy.url, max_attempts=1))
    group_view = prov.describe(pool)
    prov.scale_out(pool, group_view, 4)
    group_view = prov.describe(pool)
    assert group_view.desired == 4
    assert sorted(m.state for m in group_view.machines) == ["InService", "InService", "Pending", "Pending"]
    assert {m.launched_at for m in group_view.machines if m.state == "Pending"} == {asg_clock.now()}
    seeded = [m.id for m in group_view.machines if m.state == "InService"]
    results = prov.terminate(pool, group_view, seeded)
    assert [r.ok for r in results] == [True, True]
    results = prov.terminate(pool, prov.describe(pool), [m.id for m in prov.describe(pool).machines][-1:])
    assert not results[0].ok and "desiredSize equals minSize (2)" in (results[0].error or "")
