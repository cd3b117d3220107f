"""A property of the node step over the strict stand-ins (hypothesis stateful testing).

Under random sequences of traffic, launch failures, machines that never register, machines of another node
pool, bad allocation answers, dead clients and forescale restarts, every node step of forescale's real wiring
(the strict Auto Scaling proxy in front of moto, the strict fake Nomad, tests/node_world.py) keeps:

* it never drains a node that runs an allocation of the pool's job still wanted — so the running allocations are
  never reduced by a node step below what the count asks for (the count step stops what a lower count does not
  need; the node step only retires what is left);
* it never terminates or reaps a machine on which anything may still run (judged by the fake's truth, not by what
  the possibly broken answer said): no pending, running or unknown allocation of any job;
* it never touches a machine of another node pool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from autoscaler.core.clock import ManualClock
from autoscaler.policy.tick import run_tick
from tests.cloud_worlds import AwsCloud
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws, MotoServer
from tests.node_world import ATTR, JOB, World

LIVE = ("pending", "running", "unknown")


class NodeStepMachine(RuleBasedStateMachine):
    """One example = one fresh world (moto wiped, a new proxy and fake Nomad), driven by random rules."""

    server: MotoServer
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def __init__(self) -> None:
        super().__init__()
        self.server.reset()
        self.aws = Aws(self.server)
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        self.fake = FakeNomad(max_delay_s=10.0, strict=True).start()
        self.proxy = AsgProxy(self.aws.url, clock=self.clock.now, region=self.aws.region).start()
        self.world: World | None = None
        self.violations: list[str] = []

    @initialize(machines=st.integers(1, 4), foreign=st.integers(0, 1))
    def start(self, machines: int, foreign: int) -> None:
        tmp = self.tmp / f"w{id(self)}"
        tmp.mkdir()
        self.world = World(
            self.fake, AwsCloud(self.aws, self.proxy, self.clock), tmp, self.monkeypatch, machines=machines + foreign,
            foreign=foreign, pool_kw={"scale_in_cooldown": "0s"}, boot_timeout="10m", down_timeout="10m",
        )  # fmt: skip
        self.foreign = {m for m in self.world.link.foreign}
        self._instrument()

    def _instrument(self) -> None:
        """Judge every drain and termination at the moment forescale sends it, against the fake's truth."""
        assert self.world is not None and self.world.deps.nodes is not None
        nodes = self.world.deps.nodes
        directory, provider = nodes.directory, nodes.providers["ocr"]
        drain, terminate = directory.drain, provider.terminate

        def judged_drain(node_id: str, *args: Any, **kw: Any) -> None:
            if "dead machine" not in str(args[-1].get("forescale_reason", "")):
                self._judge("drain", node_id, None)
            drain(node_id, *args, **kw)

        def judged_terminate(pool: Any, group: Any, machines: Any, **kw: Any) -> Any:
            for machine in machines:
                self._judge("terminate", None, machine)
            return terminate(pool, group, machines, **kw)

        directory.drain = judged_drain  # type: ignore[method-assign]
        provider.terminate = judged_terminate  # type: ignore[method-assign]

    def teardown(self) -> None:
        self.proxy.stop()
        self.fake.stop()

    # ---------------------------------------------------------------- what can happen
    @rule(rps=st.sampled_from([5.0, 15.0, 40.0, 100.0]))
    def traffic(self, rps: float) -> None:
        assert self.world is not None
        self.world.rate(rps)

    @rule(on=st.booleans())
    def gpu_capacity(self, on: bool) -> None:
        if on:
            self.proxy.fail_launches("InsufficientInstanceCapacity")
        else:
            self.proxy.clear_launch_failures()

    @rule()
    def broken_image(self) -> None:
        """The machines launched so far that have no node yet never will."""
        assert self.world is not None
        link = self.world.link
        link.never_register.update(m for m in link.instances() if m not in link.registered)

    @rule()
    def next_machine_is_foreign(self) -> None:
        assert self.world is not None
        self.world.link.foreign_next += 1

    @rule(kind=st.sampled_from(["null", "object", "no_client_status", "unknown", "500"]), pick=st.integers(0, 20))
    def bad_allocation_answer(self, kind: str, pick: int) -> None:
        nodes = sorted(n["ID"] for n in self.fake.node_list())
        if nodes:
            self.fake.fail_node_allocations(kind, node_id=nodes[pick % len(nodes)], times=3)

    @rule(kind=st.sampled_from(["null", "object", "no_client_status", "unknown"]))
    def traffic_drops_while_nomad_answers_badly(self, kind: str) -> None:
        """The worst moment for a bad answer: the node whose allocation survives the count drop (Nomad stops the
        highest name indexes) answers it just as the count drops."""
        assert self.world is not None
        wanted = [
            a for a in self.fake.allocations(JOB) if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"
        ]
        if wanted:
            survivor = min(wanted, key=lambda a: int(a["Name"].rsplit("[", 1)[1].rstrip("]")))
            self.fake.fail_node_allocations(kind, node_id=survivor["NodeID"], times=2)
        self.world.rate(5.0)
        self.tick()

    @rule()
    def another_service_on_every_node(self) -> None:
        """Other work on the GPU nodes (an exporter): emptied nodes are no longer empty, only less busy."""
        name = f"svc-{len(self.fake.jobs)}"
        self.fake.add_job(name, groups={"main": len(self.fake.node_list())}, distinct_hosts=True, node_pool="gpu")
        self.fake.progress()

    @rule(pick=st.integers(0, 20))
    def client_dies(self, pick: int) -> None:
        nodes = sorted(n["ID"] for n in self.fake.node_list() if n["Status"] == "ready")
        if nodes:
            self.fake.stop_heartbeats(nodes[pick % len(nodes)])

    @rule()
    def restart(self) -> None:
        assert self.world is not None
        self.world.deps = self.world.new_forescale()
        self._instrument()

    @rule(minutes=st.sampled_from([1, 3, 7, 12, 25]))
    def time_passes(self, minutes: int) -> None:
        assert self.world is not None
        self.world.advance(timedelta(minutes=minutes), step=timedelta(minutes=1))

    @rule()
    def tick(self) -> None:
        """One tick of forescale (its drains and terminations are judged as they are sent: ``_instrument``)."""
        assert self.world is not None
        run_tick(self.world.deps)
        self.world.link.sync()

    # ---------------------------------------------------------------- the property
    def _nodes_of(self, node_id: str | None, machine: str | None) -> list[dict[str, Any]]:
        nodes = self.fake.node_list()
        return [n for n in nodes if n["ID"] == node_id or (machine and n["Attributes"].get(ATTR) == machine)]

    def _judge(self, kind: str, node_id: str | None, machine: str | None) -> None:
        for node in self._nodes_of(node_id, machine):
            if node["NodePool"] != "gpu" or machine in self.foreign:
                self.violations.append(f"{kind} touched {machine}, a machine of node pool {node['NodePool']}")
            allocs = [a for job in self.fake.jobs for a in self.fake.allocations(job[1]) if a["NodeID"] == node["ID"]]
            if kind == "drain":
                wanted = [
                    a for a in allocs if a["JobID"] == JOB and a["DesiredStatus"] == "run" and a["ClientStatus"] in LIVE
                ]
                if wanted:
                    self.violations.append(f"drained {node['Name']} running wanted {[a['Name'] for a in wanted]}")
            else:
                live = [a for a in allocs if a["ClientStatus"] in LIVE]
                if live:
                    self.violations.append(f"{kind} of {machine} while {[a['Name'] for a in live]} may still run")

    @invariant()
    def never_retired_working_capacity(self) -> None:
        assert not self.violations, self.violations


def test_the_node_step_never_retires_working_capacity(
    moto_server: MotoServer, aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    NodeStepMachine.server, NodeStepMachine.tmp, NodeStepMachine.monkeypatch = moto_server, tmp_path, monkeypatch
    run_state_machine_as_test(
        NodeStepMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=14,
            deadline=None,
            derandomize=True,  # the same sequences in every run: CI is reproducible; widen locally with a seed
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
