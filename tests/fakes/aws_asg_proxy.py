"""A strict Amazon EC2 Auto Scaling in front of the moto server: slow launches, failed launches, stale reads.

moto answers Auto Scaling at once and kindly: instances are ``InService`` the moment desired capacity rises, a
decrement below MinSize is accepted, ``DescribeScalingActivities`` is always empty and suspended processes are
ignored. ``AsgProxy`` is a thin HTTP proxy on 127.0.0.1 that boto3 is pointed at (``endpoint_url=proxy.url``); it
forwards to moto and adds what AWS really does, on an injectable clock (no sleeps, no threads of its own: time moves
when the test's clock moves and a request arrives, or when the test calls ``tick()``). The rules live in
tests/fakes/aws_asg_world.py; each cites its source in docs/aws-facts.md.

Use the ``asg_proxy`` fixture (tests/fixtures/moto.py; ``asg_clock`` is its ManualClock) or::

    proxy = AsgProxy(moto_url, clock=clock.now, launch_delay=timedelta(minutes=2)).start()
    asg = boto3.client("autoscaling", endpoint_url=proxy.url, region_name="eu-west-1")
    aws.create_asg("gpu-ocr", desired=3)           # seeded on moto: 3 machines already in service
    proxy.fail_launches("InsufficientInstanceCapacity")   # GPUs run out
    asg.set_desired_capacity(AutoScalingGroupName="gpu-ocr", DesiredCapacity=13)
    proxy.group("gpu-ocr").desired == 13 and len(proxy.instances("gpu-ocr")) == 3   # desired ≠ machines
    asg.describe_scaling_activities(AutoScalingGroupName="gpu-ocr")["Activities"][0]["StatusCode"] == "Failed"
    proxy.clear_launch_failures(); clock.advance(timedelta(minutes=1)); proxy.tick()   # AWS's retry succeeds
    [i.lifecycle for i in proxy.instances("gpu-ocr")].count("Pending") == 10
    clock.advance(timedelta(minutes=2)); proxy.tick()   # … and they go InService

Control API (all thread-safe):

* ``AsgProxy(moto_url, *, clock, region, launch_delay=2m, ec2_running_after=None (= launch_delay),
  terminate_delay=1m, retry_interval=1m, stale_for=0s, az_rebalance=False)``; ``start()``/``stop()``, ``url``,
  ``client(service, **kw)`` (a boto3 client on the proxy). ``clock``, ``launch_delay``, ``stale_for``,
  ``az_rebalance`` … can be changed at any time (``proxy.world.<name>`` for the timing knobs).
* ``tick()``: run what AWS does on its own up to ``clock()`` (launches finishing, retries, terminations, health
  replacement, AZ rebalancing). Every request does this first.
* ``fail_launches(code="InsufficientInstanceCapacity", message=None, *, times=None, group=None)``: the next
  ``times`` launch attempts fail (None: until ``clear_launch_failures()``) with AWS's StatusMessage for ``code``
  (``InsufficientInstanceCapacity``, ``VcpuLimitExceeded``, ``InstanceLimitExceeded``, ``InvalidAMIID.NotFound``)
  or ``message``. Desired capacity stays where it was set; a Failed activity is written per attempt; AWS retries
  every ``retry_interval`` while desired > machines, and a retry after ``clear_launch_failures()`` succeeds.
* ``kill_instance(id)``: the machine dies in EC2 outside the group (Spot, a host failure, ``TerminateInstances``):
  the group's health check notices, terminates and replaces it.
* ``fail_next(kind, n=1, *, action=None)``: malformed or refused answers for the next ``n`` matching requests:
  ``"throttle"`` (Auto Scaling 400 ``Throttling``/``Rate exceeded``; EC2 503 ``RequestLimitExceeded``),
  ``"html"`` (200 with an HTML page), ``"truncated"`` (200, the real XML cut in half — the request *did* apply),
  ``"internal"`` (500 ``InternalFailure``), ``"deny"`` (403 ``AccessDenied``). ``clear_faults()``.
* ``finish_instance_refresh(group, status="Successful")``: end the refresh started with ``StartInstanceRefresh``.
* Inspect the truth (never stale, never faulty): ``group(name)`` (a ``View``: desired, min, max, suspended,
  instances, activities, refreshes), ``instances(name)`` (``Instance``: id, az, lifecycle, health, protected,
  launched_at, ec2_state(now)), ``activities(name)``, ``requests`` (``ProxyRequest``: service, action, params,
  status), ``requests_for(action)``.

Rules (docs/aws-facts.md): §1 Pending → InService after ``launch_delay`` (EC2 pending → running); §2 desired
within [MinSize, MaxSize], lowering it cancels launches that have not happened before it terminates anyone, and
scale in follows the default termination policy; §3 failed launches and their activities, retries; §4 suspended
processes (Launch, Terminate, AZRebalance, ReplaceUnhealthy, HealthCheck) and TerminateInstanceInAutoScalingGroup's
errors (below MinSize, unknown instance, already terminating); §5 scale-in protection and AZ rebalancing (opt-in:
``az_rebalance=True``); §6 health replacement; §7 stale Describe* for ``stale_for`` after a write (off by default);
§8 instance refresh and warm pool; §9 throttling and malformed answers.

What the proxy does to moto: groups it first sees are adopted with their instances already in service (seed a
fleet with ``Aws.create_asg``); writes it intercepts (SetDesiredCapacity, UpdateAutoScalingGroup,
CreateAutoScalingGroup, TerminateInstanceInAutoScalingGroup, SetInstanceHealth, instance refresh, EC2
TerminateInstances of group members) are applied to moto under the proxy's own IAM user, so moto's IAM enforcement
only covers reads and the writes passed through unchanged — use ``fail_next("deny")`` for a denied write. Talk to
the group through the proxy only: a write sent to moto directly is adopted as already-running machines.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.aws_asg_world import (
    FAILURE_MESSAGES,
    Activity,
    AsgWorld,
    AwsError,
    Instance,
    LaunchFailure,
    MotoGroup,
    Refresh,
    View,
    iso_ms,
    sorted_activities,
    validation,
)

ASG_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
ASG_VERSION, EC2_VERSION = "2011-01-01", "2016-11-15"
EC2_STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
FAULT_KINDS = ("throttle", "html", "truncated", "internal", "deny")
HTML_PAGE = (  # what a captive portal or a broken load balancer answers: HTML, not XML (unclosed <meta>, <br>)
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>503 Service Unavailable</title></head>'
    b"<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.<br>"
    b"Please try again later.</p></body></html>\n"
)


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ProxyRequest:
    """One request the proxy answered (for assertions)."""

    service: str
    action: str
    params: dict[str, str]
    status: int


@dataclass
class _Fault:
    kind: str
    remaining: int
    action: str | None


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "text/xml"
    headers: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- XML helpers


def _strip(elem: ET.Element) -> ET.Element:
    """Drop namespaces from every tag (botocore matches tags without them; we add ``xmlns`` back on output)."""
    for node in elem.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return elem


def _parse(body: bytes) -> ET.Element:
    return _strip(ET.fromstring(body))


def _dump(root: ET.Element, ns: str) -> bytes:
    root.set("xmlns", ns)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node


def _set(parent: ET.Element, tag: str, text: str) -> None:
    node = parent.find(tag)
    if node is None:
        node = _sub(parent, tag)
    node.text = text


def _text(elem: ET.Element | None, path: str, default: str = "") -> str:
    if elem is None:
        return default
    node = elem.find(path)
    return node.text or default if node is not None else default


def _response(action: str, result: ET.Element | None, request_id: str) -> bytes:
    root = ET.Element(f"{action}Response")
    if result is not None:
        root.append(result)
    meta = _sub(root, "ResponseMetadata")
    _sub(meta, "RequestId", request_id)
    return _dump(root, ASG_NS)


def asg_error_body(code: str, message: str, request_id: str, *, sender: bool = True) -> bytes:
    """Auto Scaling's error document (query protocol ``ErrorResponse``)."""
    root = ET.Element("ErrorResponse")
    err = _sub(root, "Error")
    _sub(err, "Type", "Sender" if sender else "Receiver")
    _sub(err, "Code", code)
    _sub(err, "Message", message)
    _sub(root, "RequestId", request_id)
    return _dump(root, ASG_NS)


def ec2_error_body(code: str, message: str, request_id: str) -> bytes:
    """EC2's error document (``<Response><Errors><Error>…``, ``RequestID``)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>'
        f"{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
    ).encode()


def _members(params: dict[str, str], prefix: str) -> list[str]:
    """``prefix.member.N`` (Auto Scaling) or ``prefix.N`` (EC2) values in order."""
    found: list[tuple[int, str]] = []
    for key, value in params.items():
        for head in (f"{prefix}.member.", f"{prefix}."):
            if key.startswith(head) and key[len(head) :].isdigit():
                found.append((int(key[len(head) :]), value))
    return [v for _n, v in sorted(found)]


def _activity_elem(parent: ET.Element, tag: str, a: Activity) -> None:
    node = _sub(parent, tag)
    _sub(node, "ActivityId", a.id)
    _sub(node, "AutoScalingGroupName", a.group)
    _sub(node, "AutoScalingGroupARN", a.group_arn)
    _sub(node, "Description", a.description)
    _sub(node, "Cause", a.cause)
    _sub(node, "StartTime", iso_ms(a.start))
    if a.end is not None:
        _sub(node, "EndTime", iso_ms(a.end))
    _sub(node, "StatusCode", a.status)
    if a.message is not None:
        _sub(node, "StatusMessage", a.message)
    _sub(node, "Progress", str(a.progress))
    _sub(node, "Details", a.details)


# ---------------------------------------------------------------------------------------------- moto


class MotoBackend:
    """The proxy's own view of moto: signed raw requests under an IAM user the proxy creates."""

    def __init__(self, url: str, region: str) -> None:
        self.url = url
        self.region = region
        self.key, self.secret = "testing", "testing"
        self._subnets: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def call(self, service: str, params: dict[str, str], *, check: bool = True) -> tuple[int, bytes]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = urlencode(params)
        request = AWSRequest(
            "POST",
            self.url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(Credentials(self.key, self.secret), service, self.region).add_auth(request)
        status, _headers, payload = forward(self.url, dict(request.headers.items()), body.encode())
        if check and status >= 300:
            raise RuntimeError(f"moto refused the proxy's {params.get('Action')}: {status} {payload[:300]!r}")
        return status, payload

    def create_admin(self) -> None:
        """An IAM user allowed everything, so the proxy's own calls still work under moto's IAM enforcement."""
        name = f"asg-proxy-{uuid.uuid4().hex[:8]}"
        version = {"Version": "2010-05-08"}
        self.call("iam", {"Action": "CreateUser", "UserName": name, **version})
        doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        _s, body = self.call("iam", {"Action": "CreatePolicy", "PolicyName": name, "PolicyDocument": doc, **version})
        arn = _text(_parse(body), ".//Arn")
        self.call("iam", {"Action": "AttachUserPolicy", "UserName": name, "PolicyArn": arn, **version})
        _s, body = self.call("iam", {"Action": "CreateAccessKey", "UserName": name, **version})
        root = _parse(body)
        self.key, self.secret = _text(root, ".//AccessKeyId"), _text(root, ".//SecretAccessKey")

    def describe(self) -> tuple[dict[str, MotoGroup], dict[str, ET.Element], dict[str, ET.Element]]:
        """Every group: parsed, plus the raw ``<member>`` of each group and of each instance."""
        _s, body = self.call("autoscaling", {"Action": "DescribeAutoScalingGroups", "Version": ASG_VERSION})
        groups: dict[str, MotoGroup] = {}
        group_xml: dict[str, ET.Element] = {}
        inst_xml: dict[str, ET.Element] = {}
        for member in _parse(body).iterfind(".//AutoScalingGroups/member"):
            name = _text(member, "AutoScalingGroupName")
            instances = {}
            for inst in member.iterfind("Instances/member"):
                iid = _text(inst, "InstanceId")
                instances[iid] = (
                    _text(inst, "AvailabilityZone"),
                    _text(inst, "InstanceType", "g4dn.xlarge"),
                    _text(inst, "HealthStatus", "Healthy"),
                    _text(inst, "ProtectedFromScaleIn") == "true",
                )
                inst_xml[iid] = inst
            groups[name] = MotoGroup(
                name,
                _text(member, "AutoScalingGroupARN"),
                int(_text(member, "DesiredCapacity", "0")),
                int(_text(member, "MinSize", "0")),
                int(_text(member, "MaxSize", "0")),
                [n.text or "" for n in member.iterfind("AvailabilityZones/member")],
                [_text(p, "ProcessName") for p in member.iterfind("SuspendedProcesses/member")],
                instances,
                int(_text(member, "HealthCheckGracePeriod", "300")),
            )
            group_xml[name] = member
            self.counts[name] = len(instances)
        return groups, group_xml, inst_xml

    # Backend protocol ---------------------------------------------------------------------------
    def launch(self, group: str, count: int) -> list[str]:
        before, _g, _i = self.describe()
        had = set(before[group].instances)
        self.call(
            "autoscaling",
            {
                "Action": "SetDesiredCapacity",
                "Version": ASG_VERSION,
                "AutoScalingGroupName": group,
                "DesiredCapacity": str(len(had) + count),
            },
        )
        after, _g, _i = self.describe()
        return sorted(set(after[group].instances) - had)

    def terminate(self, instance_id: str) -> None:
        status, _body = self.call(
            "autoscaling",
            {
                "Action": "TerminateInstanceInAutoScalingGroup",
                "Version": ASG_VERSION,
                "InstanceId": instance_id,
                "ShouldDecrementDesiredCapacity": "true",
            },
            check=False,
        )
        if status >= 300:  # no longer in moto's group (detached, or already gone): terminate it in EC2 only
            self.call(
                "ec2",
                {"Action": "TerminateInstances", "Version": EC2_VERSION, "InstanceId.1": instance_id},
                check=False,
            )

    def subnet(self, az: str) -> str:
        if az not in self._subnets:
            _s, body = self.call(
                "ec2",
                {
                    "Action": "DescribeSubnets",
                    "Version": EC2_VERSION,
                    "Filter.1.Name": "availability-zone",
                    "Filter.1.Value.1": az,
                },
                check=False,
            )
            self._subnets[az] = _text(_parse(body), ".//subnetId", "subnet-00000000") if _s < 300 else "subnet-0"
        return self._subnets[az]


def forward(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST a raw request to moto, keeping the caller's Host header (it is part of the SigV4 signature)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
        sent_host = False
        for key, value in headers.items():
            low = key.lower()
            if low in ("content-length", "connection", "accept-encoding", "transfer-encoding", "expect"):
                continue
            sent_host |= low == "host"
            conn.putheader(key, value)
        if not sent_host:
            conn.putheader("Host", f"{parts.hostname}:{parts.port}")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k: v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------- the proxy


class AsgProxy:
    """See the module docstring. ``start()`` serves on 127.0.0.1 (a free port); ``url`` is the endpoint."""

    def __init__(
        self,
        moto_url: str,
        *,
        clock: Callable[[], datetime],
        region: str = "eu-west-1",
        launch_delay: timedelta = timedelta(minutes=2),
        ec2_running_after: timedelta | None = None,
        terminate_delay: timedelta = timedelta(minutes=1),
        retry_interval: timedelta = timedelta(minutes=1),
        stale_for: timedelta = timedelta(0),
        az_rebalance: bool = False,
    ) -> None:
        self.moto_url = moto_url.rstrip("/")
        self.clock = clock
        self.region = region
        self.backend = MotoBackend(self.moto_url, region)
        self.world = AsgWorld(
            self.backend,
            launch_delay=launch_delay,
            ec2_running_after=ec2_running_after,
            terminate_delay=terminate_delay,
            retry_interval=retry_interval,
            stale_for=stale_for,
            az_rebalance=az_rebalance,
        )
        self.requests: list[ProxyRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._group_xml: dict[str, ET.Element] = {}
        self._inst_xml: dict[str, ET.Element] = {}
        self._suspended_at: dict[tuple[str, str], datetime] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ knobs forwarded to the world

    @property
    def stale_for(self) -> timedelta:
        return self.world.stale_for

    @stale_for.setter
    def stale_for(self, value: timedelta) -> None:
        self.world.stale_for = value

    @property
    def az_rebalance(self) -> bool:
        return self.world.az_rebalance

    @az_rebalance.setter
    def az_rebalance(self, value: bool) -> None:
        self.world.az_rebalance = value

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("AsgProxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AsgProxy:
        proxy = self
        self.backend.create_admin()

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="asg-proxy", daemon=True
        )
        self._thread.start()
        with self._lock:
            self._sync()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> AsgProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str, **kw: Any) -> Any:
        """A boto3 client on the proxy (credentials from the environment, as forescale's provider takes them)."""
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.url, **kw)

    # ------------------------------------------------------------------ control

    def tick(self) -> None:
        with self._lock:
            self._sync()
            self.world.tick(self.clock())

    def fail_launches(
        self,
        code: str = "InsufficientInstanceCapacity",
        message: str | None = None,
        *,
        times: int | None = None,
        group: str | None = None,
    ) -> None:
        if message is None:
            if code not in FAILURE_MESSAGES:
                raise ValueError(f"no AWS wording for {code!r}: pass message= (known: {', '.join(FAILURE_MESSAGES)})")
            message = FAILURE_MESSAGES[code]
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (None: until clear_launch_failures())")
        with self._lock:
            self.world.failures[group] = LaunchFailure(code, message, times)

    def clear_launch_failures(self, group: str | None = None) -> None:
        with self._lock:
            if group is None:
                self.world.failures.clear()
            else:
                self.world.failures.pop(group, None)

    def kill_instance(self, instance_id: str) -> None:
        with self._lock:
            self._sync()
            now = self.clock()
            self.world.tick(now)
            self.world.kill(instance_id, now)

    def fail_next(self, kind: str, n: int = 1, *, action: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(kind, n, action))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def finish_instance_refresh(self, group: str, status: str = "Successful", reason: str = "") -> Refresh:
        with self._lock:
            return self.world.end_refresh(group, self.clock(), status, reason)

    # ------------------------------------------------------------------ inspection (the truth)

    def group(self, name: str) -> View:
        with self._lock:
            self._sync()
            self.world.tick(self.clock())
            return self.world.view(self.world.group(name), self.clock(), truth=True)

    def instances(self, name: str) -> list[Instance]:
        return sorted(self.group(name).instances, key=lambda i: i.id)

    def activities(self, name: str) -> list[Activity]:
        return sorted_activities(self.group(name).activities)

    def requests_for(self, action: str) -> list[ProxyRequest]:
        with self._lock:
            return [r for r in self.requests if r.action == action]

    # ------------------------------------------------------------------ request handling

    def _sync(self) -> None:
        groups, group_xml, inst_xml = self.backend.describe()
        self._group_xml = group_xml
        self._inst_xml.update(inst_xml)
        self.world.sync(groups, self.clock())

    def handle(self, headers: dict[str, str], body: bytes) -> _Answer:
        params = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        service = _service(params, headers)
        action = params.get("Action", "")
        request_id = str(uuid.uuid4())
        with self._lock:
            fault = self._take_fault(action)
            if fault is not None and fault.kind != "truncated":
                answer = _fault_answer(fault.kind, service, action, request_id, self.region)
            else:
                try:
                    self._sync()
                    self.world.tick(self.clock())
                    answer = self._dispatch(service, action, params, headers, body, request_id)
                except AwsError as err:
                    if service == "ec2":
                        payload = ec2_error_body(err.code, err.message, request_id)
                    else:
                        payload = asg_error_body(err.code, err.message, request_id, sender=err.sender)
                    answer = _Answer(err.status, payload)
                if fault is not None:  # truncated: the request applied, its answer is cut short
                    answer = _Answer(200, answer.body[: max(1, len(answer.body) // 2)], answer.content_type)
            self.requests.append(ProxyRequest(service, action, params, answer.status))
        return answer

    def _take_fault(self, action: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.action is None or fault.action == action):
                fault.remaining -= 1
                return fault
        return None

    def _passthrough(self, headers: dict[str, str], body: bytes) -> _Answer:
        status, resp_headers, payload = forward(self.moto_url, headers, body)
        ctype = next((v for k, v in resp_headers.items() if k.lower() == "content-type"), "text/xml")
        return _Answer(status, payload, ctype)

    def _dispatch(
        self, service: str, action: str, params: dict[str, str], headers: dict[str, str], body: bytes, request_id: str
    ) -> _Answer:
        now = self.clock()
        if service == "ec2":
            if action == "DescribeInstances":
                return self._describe_instances(params, headers, body, now)
            if action == "TerminateInstances":
                return self._terminate_instances(params, headers, body, now, request_id)
            return self._passthrough(headers, body)
        handler = getattr(self, f"_asg_{action}", None)
        if handler is None:
            return self._passthrough(headers, body)
        answer: _Answer = handler(params, headers, body, now, request_id)
        return answer

    # ------------------------------------------------------------------ Auto Scaling reads

    def _asg_DescribeAutoScalingGroups(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        answer = self._passthrough(headers, body)
        if answer.status != 200:
            return answer
        root = _parse(answer.body)
        for member in root.iterfind(".//AutoScalingGroups/member"):
            group = self.world.groups.get(_text(member, "AutoScalingGroupName"))
            if group is not None:
                self._render_group(member, self.world.view(group, now), now)
        return _Answer(200, _dump(root, ASG_NS))

    def _render_group(self, member: ET.Element, view: View, now: datetime) -> None:
        _set(member, "DesiredCapacity", str(view.desired))
        _set(member, "MinSize", str(view.min))
        _set(member, "MaxSize", str(view.max))
        suspended = member.find("SuspendedProcesses")
        if suspended is None:
            suspended = _sub(member, "SuspendedProcesses")
        suspended.clear()
        for process in view.suspended:
            node = _sub(suspended, "member")
            _sub(node, "ProcessName", process)
            since = self._suspended_at.get((view.name, process))
            _sub(node, "SuspensionReason", f"User suspended at {since:%Y-%m-%dT%H:%M:%SZ}" if since else "")
        instances = member.find("Instances")
        if instances is None:
            instances = _sub(member, "Instances")
        instances.clear()
        template = member.find("LaunchTemplate")
        for inst in sorted(view.instances, key=lambda i: i.id):
            instances.append(self._instance_member(inst, template))

    def _instance_member(self, inst: Instance, template: ET.Element | None, group: str | None = None) -> ET.Element:
        cached = self._inst_xml.get(inst.id)
        node = ET.Element("member")
        if group is not None:
            _sub(node, "AutoScalingGroupName", group)
        _sub(node, "InstanceId", inst.id)
        _sub(node, "InstanceType", inst.instance_type)
        _sub(node, "AvailabilityZone", inst.az)
        _sub(node, "LifecycleState", inst.lifecycle)
        _sub(node, "HealthStatus", inst.health)
        lt = cached.find("LaunchTemplate") if cached is not None else None
        if lt is None and template is not None:
            lt = template
        if lt is not None:
            node.append(_copy(lt))
        _sub(node, "ProtectedFromScaleIn", "true" if inst.protected else "false")
        return node

    def _asg_DescribeAutoScalingInstances(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        answer = self._passthrough(headers, body)
        if answer.status != 200:
            return answer
        wanted = set(_members(params, "InstanceIds"))
        result = ET.Element("DescribeAutoScalingInstancesResult")
        out = _sub(result, "AutoScalingInstances")
        for group in self.world.groups.values():
            view = self.world.view(group, now)
            template = self._group_xml.get(group.name)
            lt = template.find("LaunchTemplate") if template is not None else None
            for inst in sorted(view.instances, key=lambda i: i.id):
                if not wanted or inst.id in wanted:
                    out.append(self._instance_member(inst, lt, group.name))
        return _Answer(200, _response("DescribeAutoScalingInstances", result, request_id))

    def _asg_DescribeScalingActivities(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        answer = self._passthrough(headers, body)  # moto answers [] — but it checks the caller's IAM policy
        if answer.status != 200:
            return answer
        name = params.get("AutoScalingGroupName")
        ids = set(_members(params, "ActivityIds"))
        found: list[Activity] = []
        for group in self.world.groups.values():
            if name and group.name != name:
                continue
            view = self.world.view(group, now)
            found += [a for a in view.activities if not ids or a.id in ids]
        found = sorted_activities(found)
        limit = min(100, int(params.get("MaxRecords") or 100))
        start = int(params.get("NextToken") or 0)
        page = found[start : start + limit]
        result = ET.Element("DescribeScalingActivitiesResult")
        acts = _sub(result, "Activities")
        for activity in page:
            _activity_elem(acts, "member", activity)
        if start + limit < len(found):
            _sub(result, "NextToken", str(start + limit))
        return _Answer(200, _response("DescribeScalingActivities", result, request_id))

    # ------------------------------------------------------------------ Auto Scaling writes

    def _asg_SetDesiredCapacity(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        self.world.set_desired(params.get("AutoScalingGroupName", ""), int(params.get("DesiredCapacity", "-1")), now)
        return _Answer(200, _response("SetDesiredCapacity", None, request_id))

    def _asg_UpdateAutoScalingGroup(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        name = params.get("AutoScalingGroupName", "")
        ints = {k: int(params[k]) for k in ("MinSize", "MaxSize", "DesiredCapacity") if params.get(k)}
        self.world.update_sizes(name, ints.get("MinSize"), ints.get("MaxSize"), ints.get("DesiredCapacity"), now)
        forwarded = dict(params)
        forwarded["DesiredCapacity"] = str(self.backend.counts.get(name, 0))  # moto must not launch or terminate
        status, payload = self.backend.call("autoscaling", forwarded, check=False)
        if status != 200:
            return _Answer(status, payload)
        return _Answer(200, _response("UpdateAutoScalingGroup", None, request_id))

    def _asg_CreateAutoScalingGroup(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        lo, hi = int(params.get("MinSize", "0")), int(params.get("MaxSize", "0"))
        desired = int(params["DesiredCapacity"]) if params.get("DesiredCapacity") else lo
        if lo > hi:
            raise validation(f"Max bound, {hi}, must be greater than or equal to min bound, {lo}")
        if not lo <= desired <= hi:
            raise validation(
                f"Desired capacity:{desired} must be between the specified min size:{lo} and max size:{hi}"
            )
        status, payload = self.backend.call("autoscaling", {**params, "DesiredCapacity": "0"}, check=False)
        if status != 200:
            return _Answer(status, payload)
        self._sync()
        self.world.created_group(params["AutoScalingGroupName"], desired, now)
        return _Answer(200, _response("CreateAutoScalingGroup", None, request_id))

    def _asg_TerminateInstanceInAutoScalingGroup(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        decrement = params.get("ShouldDecrementDesiredCapacity", "").lower() == "true"
        activity = self.world.terminate(params.get("InstanceId", ""), decrement, now)
        result = ET.Element("TerminateInstanceInAutoScalingGroupResult")
        _activity_elem(result, "Activity", activity)
        return _Answer(200, _response("TerminateInstanceInAutoScalingGroup", result, request_id))

    def _asg_SetInstanceHealth(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        respect = params.get("ShouldRespectGracePeriod", "true").lower() != "false"
        self.world.set_health(params.get("InstanceId", ""), params.get("HealthStatus", ""), respect, now)
        return _Answer(200, _response("SetInstanceHealth", None, request_id))

    def _config_write(self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime) -> _Answer:
        name = params.get("AutoScalingGroupName", "")
        self.world.changed_config(name, now)
        answer = self._passthrough(headers, body)
        if answer.status == 200:
            self._sync()
            self.world.tick(now)
        return answer

    def _asg_SetInstanceProtection(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        name = params.get("AutoScalingGroupName", "")
        protect = params.get("ProtectedFromScaleIn", "").lower() == "true"
        answer = self._config_write(params, headers, body, now)
        group = self.world.groups.get(name)
        if answer.status == 200 and group is not None:  # moto forgets the ones it no longer holds (terminating)
            for iid in _members(params, "InstanceIds"):
                if iid in group.instances:
                    group.instances[iid].protected = protect
        return answer

    def _asg_SuspendProcesses(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        name = params.get("AutoScalingGroupName", "")
        group = self.world.groups.get(name)
        before = set(group.suspended) if group is not None else set()
        answer = self._config_write(params, headers, body, now)
        if group is not None:
            for process in set(group.suspended) - before:
                self._suspended_at[(name, process)] = now
        return answer

    def _asg_ResumeProcesses(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        return self._config_write(params, headers, body, now)

    # ------------------------------------------------------------------ instance refresh (moto has none)

    def _asg_StartInstanceRefresh(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        prefs = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("Preferences.")}
        refresh = self.world.start_refresh(params.get("AutoScalingGroupName", ""), now, prefs)
        result = ET.Element("StartInstanceRefreshResult")
        _sub(result, "InstanceRefreshId", refresh.id)
        return _Answer(200, _response("StartInstanceRefresh", result, request_id))

    def _asg_CancelInstanceRefresh(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        refresh = self.world.end_refresh(
            params.get("AutoScalingGroupName", ""), now, "Cancelled", "Instance refresh was cancelled by a user."
        )
        result = ET.Element("CancelInstanceRefreshResult")
        _sub(result, "InstanceRefreshId", refresh.id)
        return _Answer(200, _response("CancelInstanceRefresh", result, request_id))

    def _asg_DescribeInstanceRefreshes(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        group = self.world.group(params.get("AutoScalingGroupName", ""))
        ids = set(_members(params, "InstanceRefreshIds"))
        result = ET.Element("DescribeInstanceRefreshesResult")
        out = _sub(result, "InstanceRefreshes")
        refreshes = list(enumerate(self.world.view(group, now).refreshes))
        for _n, r in sorted(refreshes, key=lambda p: (p[1].start, p[0]), reverse=True):  # newest first
            if ids and r.id not in ids:
                continue
            node = _sub(out, "member")
            _sub(node, "InstanceRefreshId", r.id)
            _sub(node, "AutoScalingGroupName", r.group)
            _sub(node, "Status", r.status)
            if r.reason:
                _sub(node, "StatusReason", r.reason)
            _sub(node, "StartTime", iso_ms(r.start))
            if r.end is not None:
                _sub(node, "EndTime", iso_ms(r.end))
            _sub(node, "PercentageComplete", str(r.percentage))
            _sub(node, "InstancesToUpdate", str(0 if r.status == "Successful" else r.instances_to_update))
            prefs = _sub(node, "Preferences")
            _sub(prefs, "MinHealthyPercentage", r.preferences.get("MinHealthyPercentage", "90"))
            _sub(prefs, "SkipMatching", r.preferences.get("SkipMatching", "false"))
            _sub(node, "Strategy", "Rolling")
        return _Answer(200, _response("DescribeInstanceRefreshes", result, request_id))

    # ------------------------------------------------------------------ EC2

    def _describe_instances(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime
    ) -> _Answer:
        views: dict[str, tuple[Instance | None, View]] = {}
        for group in self.world.groups.values():
            view = self.world.view(group, now)
            truth = group.instances
            for iid in set(truth) | {i.id for i in view.instances}:
                views[iid] = (view.instance(iid), view)
        for iid in _members(params, "InstanceId"):  # aws-facts §7: a new ID may not be visible yet
            seen = views.get(iid)
            if seen is not None and seen[0] is None and seen[1].taken_at is not None:
                raise AwsError(400, "InvalidInstanceID.NotFound", f"The instance ID '{iid}' does not exist")
        answer = self._passthrough(headers, body)
        if answer.status != 200:
            return answer
        root = _parse(answer.body)
        for item in root.iterfind(".//instancesSet/item"):
            iid = _text(item, "instanceId")
            inst = views.get(iid, (None, None))[0]
            if inst is None:
                continue
            state = inst.ec2_state(now)
            node = item.find("instanceState")
            if node is None:
                node = _sub(item, "instanceState")
            _set(node, "code", str(EC2_STATE_CODES[state]))
            _set(node, "name", state)
            if inst.launched_at is not None:
                _set(item, "launchTime", iso_ms(inst.launched_at))
            placement = item.find("placement")
            if placement is not None:
                _set(placement, "availabilityZone", inst.az)
        return _Answer(200, _dump(root, EC2_NS))

    def _terminate_instances(
        self, params: dict[str, str], headers: dict[str, str], body: bytes, now: datetime, request_id: str
    ) -> _Answer:
        ids = _members(params, "InstanceId")
        ours = [i for i in ids if self.world.find(i) is not None]
        if not ours:
            return self._passthrough(headers, body)
        others = [i for i in ids if i not in ours]
        if others:
            rest = {"Action": "TerminateInstances", "Version": EC2_VERSION}
            rest.update({f"InstanceId.{n}": i for n, i in enumerate(others, 1)})
            status, payload = self.backend.call("ec2", rest, check=False)
            if status != 200:
                return _Answer(status, payload)
        root = ET.Element("TerminateInstancesResponse")
        _sub(root, "requestId", request_id)
        items = _sub(root, "instancesSet")
        for iid in ids:
            found = self.world.find(iid)
            before = found[1].ec2_state(now) if found else "running"
            if iid in ours:
                self.world.kill(iid, now)
            item = _sub(items, "item")
            _sub(item, "instanceId", iid)
            cur = _sub(item, "currentState")
            _sub(cur, "code", "32")
            _sub(cur, "name", "shutting-down")
            prev = _sub(item, "previousState")
            _sub(prev, "code", str(EC2_STATE_CODES[before]))
            _sub(prev, "name", before)
        return _Answer(200, _dump(root, EC2_NS))


def _copy(elem: ET.Element) -> ET.Element:
    return ET.fromstring(ET.tostring(elem))


def _service(params: dict[str, str], headers: dict[str, str]) -> str:
    version = params.get("Version", "")
    if version == ASG_VERSION:
        return "autoscaling"
    if version == EC2_VERSION:
        return "ec2"
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scope = auth.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else "unknown"


def _fault_answer(kind: str, service: str, action: str, request_id: str, region: str) -> _Answer:
    """aws-facts §9: the bodies AWS (or a broken middlebox) sends."""
    if kind == "html":
        return _Answer(200, HTML_PAGE, "text/html")
    if kind == "throttle":
        if service == "ec2":
            return _Answer(503, ec2_error_body("RequestLimitExceeded", "Request limit exceeded.", request_id))
        return _Answer(400, asg_error_body("Throttling", "Rate exceeded", request_id))
    if kind == "internal":
        body = asg_error_body("InternalFailure", "An internal error has occurred", request_id, sender=False)
        if service == "ec2":
            body = ec2_error_body("InternalError", "An internal error has occurred", request_id)
        return _Answer(500, body)
    message = (
        f"User: arn:aws:iam::123456789012:user/forescale is not authorized to perform: {service}:{action} "
        f"on resource: arn:aws:{service}:{region}:123456789012:* because no identity-based policy allows the "
        f"{service}:{action} action"
    )
    if service == "ec2":
        return _Answer(403, ec2_error_body("UnauthorizedOperation", message, request_id))
    return _Answer(403, asg_error_body("AccessDenied", message, request_id))


class _Handler(BaseHTTPRequestHandler):
    owner: AsgProxy
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read proxy.requests
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.owner.handle(dict(self.headers.items()), body)
        except Exception as exc:  # a bug in the proxy: say so plainly rather than hang the client
            answer = _Answer(500, f"asg proxy error: {type(exc).__name__}: {exc}".encode(), "text/plain")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:  # boto3 only POSTs; anything else is not ours to answer
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def iter_known_instances(proxy: AsgProxy, group: str) -> Iterator[Instance]:
    """Instances of ``group`` that are not terminating (the link's notion of a live machine)."""
    for inst in proxy.instances(group):
        if inst.lifecycle != "Terminating" and not inst.ec2_dead:
            yield inst
