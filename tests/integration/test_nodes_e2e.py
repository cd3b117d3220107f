"""End to end: forecast → ASG desired up → nodes register → allocations placed → traffic drops → drain → exact
instances terminated → ASG desired down. Real parts: forescale's wiring (NomadTarget, the node step, the aws_asg
provider with boto3), a real local moto server, the fake Nomad over HTTP; only the request rate is in memory.

Time is one ManualClock shared by the tick, the fake Nomad's timestamps and the ASG → Nomad link (machines
register ``boot_delay`` after launch); it starts at the wall clock because moto stamps LaunchTime with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

import tests.fakes.nomad as fake_module
from autoscaler.core.clock import ManualClock
from autoscaler.core.settings.forescale import Config
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.wiring import build_deps
from tests.fakes.cloud import AsgNomadLink
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws
from tests.helpers import FlatMetrics, make_config, pool_dict

ASG, JOB, GROUP = "gpu-ocr", "ml-ocr", "workers"
BOOT = timedelta(minutes=6)


def config(fake: FakeNomad, aws: Aws, tmp_path: Path, **nodes: Any) -> Config:
    node_settings = {
        "provider": "aws_asg",
        "node_pool": "gpu",
        "min_boots": 3,
        "purge": False,
        "aws": {"asg_name": ASG, "region": aws.region, "endpoint_url": aws.url, "max_attempts": 2},
        **nodes,
    }
    pool = pool_dict(
        "ocr",
        nomad={"job": JOB, "group": GROUP},
        max=20,
        max_step_down=None,  # the story is a sudden drop to 2 nodes in one tick:
        scale_in_window="0s",  # no step limit, and no hour-long memory of the higher need
        lead_time="auto",
        nodes=node_settings,
    )
    return make_config(
        pool,
        nomad={"address": fake.address, "token_env": "FORESCALE_TEST_NOMAD_TOKEN", "timeout": "2s", "retries": 1},
        audit_log=str(tmp_path / "audit.jsonl"),
        predictor={"model": "trend_lr"},
    )


class World:
    """One test's cluster: moto ASG + fake Nomad + the link, on one clock."""

    def __init__(self, fake: FakeNomad, aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **nodes: Any):
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        monkeypatch.setattr(fake_module, "_now_ns", lambda: int(self.clock.now().timestamp() * 1e9))
        monkeypatch.delenv("FORESCALE_TEST_NOMAD_TOKEN", raising=False)
        fake.wall_clock = lambda: self.clock.now().timestamp()
        fake.auto_nodes = False
        fake.new_alloc_status = "running"
        self.fake, self.aws = fake, aws
        aws.create_asg(ASG, desired=1, max_size=20)
        self.link = AsgNomadLink(fake, aws.client("autoscaling"), ASG, self.clock.now, BOOT)
        self.link.sync(booted=True)  # the one machine the pool starts with is up
        fake.add_job(JOB, groups={GROUP: 1}, gpus=1, distinct_hosts=True, node_pool="gpu")
        self.config = config(fake, aws, tmp_path, **nodes)
        self.rates = FlatMetrics({self.config.pool("ocr").query: 100.0})
        self.deps = self.new_forescale()
        assert self.deps.nodes is not None
        self.deps.nodes.memory.sampled.update(self.link.registered)  # the seed machine booted before this story
        self.clock.set(datetime.now(UTC).replace(microsecond=0))  # moto stamps launches with the wall clock

    def new_forescale(self) -> TickDeps:
        """forescale as `forescale run` builds it (a new one = a restart: memory only from the audit log)."""
        deps = build_deps(self.config, clock=self.clock, notifiers=[])
        deps.metrics = self.rates
        return deps

    def rate(self, rps: float) -> None:
        self.rates.rates[self.config.pool("ocr").query] = rps

    def tick(self) -> Any:
        report = run_tick(self.deps)
        (outcome,) = report.outcomes
        self.link.sync()  # machines asked for in this tick start booting now
        return report, outcome

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        self.link.sync()

    def running_nodes(self) -> dict[str, str]:
        """node ID → instance ID of the nodes running an allocation of the pool's job."""
        by_node = {n["ID"]: n["Attributes"]["unique.platform.aws.instance-id"] for n in self.fake.node_list()}
        return {
            a["NodeID"]: by_node[a["NodeID"]]
            for a in self.fake.allocations(JOB)
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"
        }


@pytest.fixture
def world(fake_nomad: FakeNomad, aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield World(fake_nomad, aws, tmp_path, monkeypatch)


def test_machines_follow_the_forecast_up_and_down(world: World) -> None:
    fake, aws = world.fake, world.aws
    # 1. 100 rps at 10 rps/node × 0.8 → 13 nodes: the count goes up and the ASG is asked for 12 machines.
    report, outcome = world.tick()
    assert outcome.status == "applied" and outcome.decision.desired == 13
    nodes = outcome.nodes
    assert nodes is not None and not nodes.failed
    (ask,) = nodes.of_kind("scale_out")
    assert ask.status == "done" and "capacity 1 → 13" in ask.message
    assert aws.group(ASG)["DesiredCapacity"] == 13 and len(aws.instance_ids(ASG)) == 13
    assert [e.kind for e in report.events] == ["nodes.scale_out"]
    assert len(world.running_nodes()) == 1  # the other 12 allocations wait for nodes: queued in the job summary
    summary = requests.get(f"{fake.address}/v1/job/{JOB}/summary", timeout=5).json()
    assert summary["Summary"][GROUP]["Queued"] == 12

    # 2. Six minutes later the machines have booted: their nodes register and Nomad places the queued work.
    world.advance(BOOT)
    running = world.running_nodes()
    assert len(running) == 13 and sorted(running.values()) == aws.instance_ids(ASG)

    # 3. The next tick holds, and has measured 12 boots (launch → allocation running) for lead_time: auto.
    world.advance(timedelta(minutes=14))
    report, outcome = world.tick()
    assert outcome.status == "unchanged"
    assert outcome.nodes is not None and not outcome.nodes.actions
    boots = outcome.nodes.boots
    assert len(boots) == 12 and all(300 <= b.seconds <= 361 for b in boots)  # 6m, less the test's own seconds
    lead = outcome.nodes.lead_time
    assert lead is not None and lead.source == "learned" and 300 <= lead.seconds <= 361
    assert [e.kind for e in report.events] == ["nodes.boot"]

    # 4. Traffic drops to 15 rps → 2 nodes. The count goes down first (Nomad stops 11 allocations), then the node
    #    step drains exactly the 11 emptied nodes and terminates exactly their instances.
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    keep = world.running_nodes()
    report, outcome = world.tick()
    assert outcome.status == "applied" and outcome.decision.desired == 2
    nodes = outcome.nodes
    assert nodes is not None and not nodes.failed, nodes.failures()
    drained = [a for a in nodes.of_kind("drain") if a.status == "done"]
    terminated = [a for a in nodes.of_kind("terminate") if a.status == "done"]
    assert len(drained) == 11 and len(terminated) == 11
    assert all("least busy (0 live allocations)" in a.message for a in drained)
    survivors = world.running_nodes()
    assert len(survivors) == 2 and set(survivors) <= set(keep)
    assert aws.instance_ids(ASG) == sorted(survivors.values())  # exactly the drained instances went
    assert aws.group(ASG)["DesiredCapacity"] == 2
    gone = {a.machine for a in terminated}
    assert gone == set(keep.values()) - set(survivors.values())  # the machines of the emptied nodes, no other
    assert all(aws.instance_state(m) == "terminated" for m in gone if m)
    for action in drained:
        node = fake.node(action.node_id or "")
        assert node is not None and node["SchedulingEligibility"] == "ineligible"
        assert node["LastDrain"]["Status"] == "complete" and node["LastDrain"]["Meta"]["drained_by"] == "forescale"
        assert node["Status"] == "down"  # the link: the instance is gone, the client stopped heartbeating
    assert {e.kind for e in report.events} == {"nodes.drain", "nodes.terminate"}
    assert (nodes.capacity_before, nodes.capacity_after) == (13, 2)

    # 5. A restarted forescale finds nothing left to do and has kept the boots (audit log).
    world.deps = world.new_forescale()
    world.advance(timedelta(minutes=20))
    report, outcome = world.tick()
    assert outcome.status == "unchanged" and outcome.nodes is not None and not outcome.nodes.failed
    assert not [a for a in outcome.nodes.actions if a.status in ("done", "failed")]
    assert outcome.nodes.lead_time is not None and outcome.nodes.lead_time.source == "learned"
    assert aws.group(ASG)["DesiredCapacity"] == 2


def test_a_machine_that_never_registers_is_reported_once_and_kept(world: World) -> None:
    world.tick()  # 13 wanted: 12 launched
    broken = world.aws.instance_ids(ASG)[-1]
    world.link.never_register.add(broken)
    world.advance(timedelta(minutes=25))  # past boot_timeout (20m)
    report, _outcome = world.tick()
    problems = [e for e in report.events if e.kind == "nodes.problem"]
    assert len(problems) == 1 and broken in problems[0].message and "has no Nomad node after" in problems[0].message
    world.advance(timedelta(minutes=20))
    report, _ = world.tick()
    assert not [e for e in report.events if e.kind == "nodes.problem"]  # once
    assert broken in world.aws.instance_ids(ASG)  # forescale never terminates it


def test_an_aws_failure_never_shrinks_the_fleet(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.tick()
    world.advance(timedelta(minutes=20))
    world.tick()
    before = world.aws.instance_ids(ASG)
    key, secret = world.aws.user_with_policy("readonly", ["autoscaling:Describe*", "ec2:Describe*"])
    admin, admin_secret = world.aws.user_with_policy("harness", ["*"])  # the test's own view of the ASG
    world.link.autoscaling = world.aws.client(
        "autoscaling", aws_access_key_id=admin, aws_secret_access_key=admin_secret
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    world.deps = world.new_forescale()  # new credentials from the chain
    world.aws.server.enforce_auth(True)
    try:
        world.rate(15.0)
        world.advance(timedelta(minutes=20))
        _report, outcome = world.tick()
    finally:
        world.aws.server.enforce_auth(False)
    nodes = outcome.nodes
    assert nodes is not None and nodes.failed
    failed = [a for a in nodes.actions if a.status == "failed"]
    assert failed and all(a.kind == "terminate" for a in failed)
    assert "TerminateInstanceInAutoScalingGroup was denied" in (failed[0].error or "")
    assert world.aws.instance_ids(ASG) == before and world.aws.group(ASG)["DesiredCapacity"] == 13
    # The drained nodes stay drained; with the permission back, the next tick terminates them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    world.deps = world.new_forescale()
    world.advance(timedelta(minutes=20))
    _report, outcome = world.tick()
    assert outcome.nodes is not None and not outcome.nodes.failed
    assert len([a for a in outcome.nodes.of_kind("terminate") if a.status == "done"]) == 11
    assert world.aws.group(ASG)["DesiredCapacity"] == 2


def test_busy_drains_resume_after_a_restart_and_a_stuck_one_fails_once(
    fake_nomad: FakeNomad, aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(fake_nomad, aws, tmp_path, monkeypatch, drain_deadline="10m", drain_grace="5m")
    fake = world.fake
    fake.drain_stop_after = 300.0  # a migrating allocation takes 5 minutes to stop
    world.tick()
    world.advance(BOOT)
    # Every GPU node also runs one allocation of another service (an exporter): scale-in drains are busy.
    fake.add_job("exporter", groups={"metrics": 13}, distinct_hosts=True, node_pool="gpu")
    assert len({a["NodeID"] for a in fake.allocations("exporter")}) == 13
    world.rate(15.0)
    world.advance(timedelta(minutes=20))
    _report, outcome = world.tick()
    nodes = outcome.nodes
    assert nodes is not None and not nodes.failed
    drained = [a for a in nodes.of_kind("drain") if a.status == "done"]
    assert len(drained) == 11 and all("least busy (1 live allocation)" in a.message for a in drained)
    assert not nodes.of_kind("terminate") and nodes.draining == 11
    assert aws.group(ASG)["DesiredCapacity"] == 13  # nothing is terminated before its node is drained
    stuck_node = drained[0].node_id
    stuck = next(a["ID"] for a in fake.allocations("exporter") if a["NodeID"] == stuck_node)
    fake.stuck_allocs.add(stuck)  # this one ignores its kill signal

    # forescale restarts; the drains are read back from Nomad (LastDrain.Meta) and finished.
    world.deps = world.new_forescale()
    world.advance(timedelta(minutes=6))
    _report, outcome = world.tick()
    nodes = outcome.nodes
    assert nodes is not None and not nodes.failed
    terminated = {a.machine for a in nodes.of_kind("terminate") if a.status == "done"}
    assert len(terminated) == 10 and drained[0].machine not in terminated
    assert terminated == {a.machine for a in drained[1:]}
    assert aws.group(ASG)["DesiredCapacity"] == 3
    (waiting,) = nodes.of_kind("waiting")
    assert waiting.node_id == stuck_node and "1 live allocation(s) left" in waiting.message

    # Nomad forces the drain at its deadline (10m) but the allocation keeps running: after the grace (5m) the
    # drain is a failure, reported once, and the machine is kept.
    world.advance(timedelta(minutes=10))
    report, outcome = world.tick()
    problems = [e for e in report.events if e.kind == "nodes.problem"]
    assert len(problems) == 1 and "did not finish within 15m" in problems[0].message
    assert drained[0].machine in aws.instance_ids(ASG)
    assert outcome.nodes is not None and outcome.nodes.failed
    world.advance(timedelta(minutes=20))
    report, outcome = world.tick()
    assert not [e for e in report.events if e.kind == "nodes.problem"]
    assert outcome.nodes is not None and not outcome.nodes.failed
    assert drained[0].machine in aws.instance_ids(ASG) and aws.group(ASG)["DesiredCapacity"] == 3
