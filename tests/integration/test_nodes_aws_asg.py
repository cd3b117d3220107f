"""The aws_asg provider against a real local moto server: scale-out, exact-instance scale-in, and every fault."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import AwsAsgSettings
from autoscaler.nodes.aws_asg import AwsAsgProvider
from tests.fixtures.moto import Aws
from tests.helpers import make_config, pool_dict


def pool() -> PoolConfig:
    return make_config(pool_dict("ocr")).pool("ocr")


def provider(aws: Aws, name: str = "gpu-ocr", **kw: Any) -> AwsAsgProvider:
    settings = AwsAsgSettings(asg_name=name, region=aws.region, endpoint_url=aws.url, **kw)
    return AwsAsgProvider(settings)


THROTTLE_BODY = (
    b'<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kw: Any) -> Any:
        yield self.body


def throttle(prov: AwsAsgProvider, operation: str, times: int) -> list[int]:
    """Answer ``operation`` with AWS's Throttling error ``times`` times (then pass through to moto)."""
    calls = [0]

    def hook(request: Any, **_kw: Any) -> AWSResponse | None:
        calls[0] += 1
        if calls[0] <= times:
            return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Raw(THROTTLE_BODY))  # type: ignore[arg-type]
        return None

    prov._client("autoscaling").meta.events.register(f"before-send.autoscaling.{operation}", hook)
    return calls


def test_describe_reads_capacity_bounds_machines_and_launch_times(aws: Aws) -> None:
    aws.create_asg(desired=2, min_size=1, max_size=6)
    group = provider(aws).describe(pool())
    assert (group.desired, group.min, group.max) == (2, 1, 6)
    assert sorted(m.id for m in group.machines) == aws.instance_ids()
    assert all(m.state == "InService" and m.launched_at is not None for m in group.machines)
    assert "gpu-ocr" in group.name and aws.region in group.name


def test_scale_out_sets_desired_capacity_and_launches(aws: Aws) -> None:
    aws.create_asg(desired=1)
    prov = provider(aws)
    group = prov.describe(pool())
    note = prov.scale_out(pool(), group, 3)
    assert "1 → 3" in note
    assert aws.group()["DesiredCapacity"] == 3
    assert len(aws.instance_ids()) == 3


def test_scale_out_above_max_is_refused_before_calling_aws(aws: Aws) -> None:
    aws.create_asg(desired=1, max_size=2)
    prov = provider(aws)
    with pytest.raises(NodeProviderError, match="above the group's MaxSize 2"):
        prov.scale_out(pool(), prov.describe(pool()), 3)
    assert aws.group()["DesiredCapacity"] == 1  # moto would have accepted 3: we never sent it


def test_terminate_removes_exactly_the_named_instances_and_decrements(aws: Aws) -> None:
    aws.create_asg(desired=4)
    prov = provider(aws)
    group = prov.describe(pool())
    ids = [m.id for m in group.machines]
    victims = [ids[1], ids[3]]
    results = prov.terminate(pool(), group, victims)
    assert [(r.machine, r.ok) for r in results] == [(victims[0], True), (victims[1], True)]
    assert aws.group()["DesiredCapacity"] == 2
    assert aws.instance_ids() == sorted([ids[0], ids[2]])  # the others kept: nothing replaced, nothing else gone
    assert all(aws.instance_state(v) == "terminated" for v in victims)


def test_terminate_reports_each_failure_and_keeps_going(aws: Aws) -> None:
    aws.create_asg(desired=2)
    prov = provider(aws)
    group = prov.describe(pool())
    good = group.machines[0].id
    results = prov.terminate(pool(), group, ["i-00000000deadbeef", good])
    assert not results[0].ok and results[0].error and "TerminateInstanceInAutoScalingGroup" in results[0].error
    assert results[1].ok
    assert aws.group()["DesiredCapacity"] == 1


def test_missing_group_is_a_clear_error(aws: Aws) -> None:
    with pytest.raises(NodeProviderError, match=r"Auto Scaling group 'nope' not found in region eu-west-1.*asg_name"):
        provider(aws, "nope").describe(pool())


def test_throttling_is_retried_by_botocore_then_reported(aws: Aws) -> None:
    aws.create_asg(desired=1)
    prov = provider(aws, max_attempts=2)
    group = prov.describe(pool())
    calls = throttle(prov, "SetDesiredCapacity", times=5)
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool(), group, 2)
    assert info.value.retryable and info.value.code == "Throttling"
    assert "throttled" in str(info.value) and "after 2 attempts" in str(info.value)
    assert calls[0] == 2  # exactly the configured total attempts
    assert aws.group()["DesiredCapacity"] == 1  # nothing changed


def test_one_throttle_is_absorbed_by_the_retry(aws: Aws) -> None:
    aws.create_asg(desired=1)
    prov = provider(aws, max_attempts=3)
    group = prov.describe(pool())
    calls = throttle(prov, "SetDesiredCapacity", times=1)
    prov.scale_out(pool(), group, 2)
    assert calls[0] == 2
    assert aws.group()["DesiredCapacity"] == 2


def test_access_denied_names_the_missing_permission(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.create_asg(desired=1)
    key, secret = aws.user_with_policy("readonly", ["autoscaling:Describe*", "ec2:Describe*"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    prov = provider(aws, max_attempts=1)
    aws.server.enforce_auth(True)
    group = prov.describe(pool())  # allowed
    with pytest.raises(NodeProviderError) as info:
        prov.scale_out(pool(), group, 2)
    assert info.value.code == "AccessDenied" and not info.value.retryable
    assert "autoscaling:SetDesiredCapacity" in str(info.value) and "docs/nodes.md" in str(info.value)
    results = prov.terminate(pool(), group, [group.machines[0].id])
    assert not results[0].ok and "AccessDenied" in (results[0].error or "")
    aws.server.enforce_auth(False)
    assert aws.group()["DesiredCapacity"] == 1 and len(aws.instance_ids()) == 1


def test_bad_credentials_and_missing_region(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.create_asg(desired=1)
    aws.server.enforce_auth(True)
    with pytest.raises(NodeProviderError, match="rejected the credentials"):
        provider(aws, max_attempts=1).describe(pool())
    aws.server.enforce_auth(False)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings = AwsAsgSettings(asg_name="gpu-ocr", endpoint_url=aws.url)
    with pytest.raises(NodeProviderError, match="no AWS region"):
        AwsAsgProvider(settings, session=boto3.session.Session()).describe(pool())


def test_unreachable_endpoint_is_retryable(aws: Aws) -> None:
    from tests.helpers import free_port

    settings = AwsAsgSettings(
        asg_name="gpu-ocr", region=aws.region, endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1
    )
    with pytest.raises(NodeProviderError) as info:
        AwsAsgProvider(settings).describe(pool())
    assert info.value.retryable and "cannot reach AWS" in str(info.value)


def test_an_html_page_or_a_cut_answer_is_a_clear_error_and_assumes_nothing(aws: Aws, asg_proxy: Any) -> None:
    """An HTML 200 (a proxy, a captive portal) was a KeyError('DescribeAutoScalingGroupsResult'); a cut XML body
    the same. Both are a NodeProviderError that says what AWS answered, retryable, and nothing is assumed."""
    aws.create_asg(desired=2)
    prov = AwsAsgProvider(
        AwsAsgSettings(asg_name="gpu-ocr", region=aws.region, endpoint_url=asg_proxy.url, max_attempts=1)
    )
    for kind in ("html", "truncated"):
        asg_proxy.fail_next(kind, 1, action="DescribeAutoScalingGroups")
        with pytest.raises(NodeProviderError) as info:
            prov.describe(pool())
        text = str(info.value)
        assert "not the API's XML" in text and "nothing is assumed changed" in text and "KeyError" not in text
        assert info.value.retryable
    assert prov.describe(pool()).desired == 2  # the next answer is read as usual


def test_an_unreadable_answer_names_no_python_exception() -> None:
    """Whatever botocore's parser raised on a body that is not the API's XML (the issue saw KeyError on a proxy's
    HTML page), the operator reads what AWS answered, never a Python exception name."""
    prov = AwsAsgProvider(AwsAsgSettings(asg_name="gpu-ocr", region="eu-west-1", endpoint_url="http://127.0.0.1:9"))
    for exc in (KeyError("DescribeAutoScalingGroupsResult"), ValueError("bad"), TypeError("none")):
        error = prov._error("autoscaling", "DescribeAutoScalingGroups", exc)
        text = str(error)
        assert "not the API's XML" in text and type(exc).__name__ not in text and error.retryable
