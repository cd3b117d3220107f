"""One end-to-end node world: forescale's real wiring (build_deps: NomadTarget, the node step, the provider on its
official SDK) against a cloud stand-in (tests/cloud_worlds.py: the strict Auto Scaling proxy in front of moto, the
fake Compute Engine or the fake Azure Resource Manager) and the strict fake Nomad, linked on one clock.

Only the request rate is in memory. Time is the cloud's ManualClock (it starts at the wall clock: moto stamps
launches with it), shared by the tick, the fake Nomad's timestamps, its clients (stops take shutdown_delay +
kill_timeout, drains follow migrate.max_parallel, missed heartbeats take a node down), the providers' waits and
retries (tests/fixtures/clouds.py) and the link (a launched machine registers ``boot`` after its launch, with
that cloud's fingerprint; a gone one stops heartbeating).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import tests.fakes.nomad as fake_module
from autoscaler.core.clock import ManualClock
from autoscaler.core.report import PoolOutcome, TickReport
from autoscaler.core.settings.forescale import Config
from autoscaler.policy.tick import TickDeps, run_tick
from autoscaler.wiring import build_deps
from tests.cloud_worlds import AwsCloud, Cloud
from tests.fakes.aws_asg_proxy import AsgProxy
from tests.fakes.cloud import AsgNomadLink
from tests.fakes.nomad import FakeNomad
from tests.fixtures.moto import Aws
from tests.helpers import FlatMetrics, make_config, pool_dict

ASG, JOB, GROUP = "gpu-ocr", "ml-ocr", "workers"
BOOT = timedelta(minutes=6)
ATTR = "unique.platform.aws.instance-id"


def aws_cloud(aws: Aws, proxy: AsgProxy, clock: ManualClock) -> AwsCloud:
    return AwsCloud(aws, proxy, clock)


def node_config(
    fake: FakeNomad, cloud: Cloud, tmp_path: Path, pool_kw: dict[str, Any] | None = None, **nodes: Any
) -> Config:
    node_settings = {"node_pool": "gpu", "min_boots": 3, "purge": False, **cloud.nodes_section(), **nodes}
    pool = pool_dict(
        "ocr",
        nomad={"job": JOB, "group": GROUP},
        max=20,
        max_step_down=None,  # the stories drop traffic in one tick: no step limit,
        scale_in_window="0s",  # and no hour-long memory of the higher need
        lead_time="auto",
        nodes=node_settings,
        **(pool_kw or {}),
    )
    return make_config(
        pool,
        nomad={"address": fake.address, "token_env": "FORESCALE_TEST_NOMAD_TOKEN", "timeout": "5s", "retries": 1},
        audit_log=str(tmp_path / "audit.jsonl"),
        predictor={"model": "trend_lr"},
    )


@dataclass
class Step:
    report: TickReport
    outcome: PoolOutcome

    @property
    def nodes(self) -> Any:
        assert self.outcome.nodes is not None
        return self.outcome.nodes

    def done(self, kind: str) -> list[Any]:
        return [a for a in self.nodes.of_kind(kind) if a.status == "done"]

    def events(self) -> list[str]:
        return [e.kind for e in self.report.events]


class World:
    """One test's cluster: the cloud's group + the strict fake Nomad + the link, on one clock."""

    def __init__(
        self,
        fake: FakeNomad,
        cloud: Cloud,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        *,
        machines: int = 1,
        foreign: int = 0,
        count: int | None = None,
        rebalance_suspended: bool = True,
        job: dict[str, Any] | None = None,
        pool_kw: dict[str, Any] | None = None,
        **nodes: Any,
    ) -> None:
        self.cloud, self.clock, self.fake = cloud, cloud.clock, fake
        clock = cloud.clock
        monkeypatch.setattr(fake_module, "_now_ns", lambda: int(self.clock.now().timestamp() * 1e9))
        monkeypatch.delenv("FORESCALE_TEST_NOMAD_TOKEN", raising=False)
        fake.wall_clock = lambda: self.clock.now().timestamp()
        fake.auto_nodes = False
        cloud.create(machines, 20)
        if isinstance(cloud, AwsCloud):
            self.aws, self.proxy, self.asg = cloud.aws, cloud.proxy, cloud.asg
            if rebalance_suspended:  # as docs/nodes.md asks; one test keeps it on to see the warning
                self.asg.suspend_processes(AutoScalingGroupName=ASG, ScalingProcesses=["AZRebalance"])
        self.link = AsgNomadLink(
            fake, None, ASG, clock.now, BOOT, foreign_next=foreign, source=cloud.truth, register=cloud.register
        )
        self.link.sync(booted=True)  # the machines the pool starts with are up (``foreign`` of them in pool other)
        groups = {GROUP: machines - foreign if count is None else count}
        fake.add_job(JOB, groups=groups, gpus=1, distinct_hosts=True, node_pool="gpu", **(job or {}))
        fake.progress()
        self.config = node_config(fake, cloud, tmp_path, pool_kw, **nodes)
        self.rates = FlatMetrics({self.config.pool("ocr").query: 100.0})
        self.deps = self.new_forescale()

    def new_forescale(self) -> TickDeps:
        """forescale as `forescale run` builds it (a new one = a restart: memory only from the audit log)."""
        deps = build_deps(self.config, clock=self.clock, notifiers=[])
        deps.metrics = self.rates
        return deps

    def rate(self, rps: float) -> None:
        self.rates.rates[self.config.pool("ocr").query] = rps

    def tick(self, *, dry_run: bool = False) -> Step:
        report = run_tick(self.deps, dry_run=dry_run)
        (outcome,) = report.outcomes
        self.link.sync()  # machines asked for in this tick start booting now
        return Step(report, outcome)

    def advance(self, delta: timedelta, step: timedelta = timedelta(seconds=30)) -> None:
        """Move time in small steps so the clients, heartbeats, drains and launches progress as they would."""
        end = self.clock.now() + delta
        while self.clock.now() < end:
            self.clock.set(min(end, self.clock.now() + step))
            self.cloud.tick()
            self.link.sync()

    # ---------------------------------------------------------------- the truth, read from outside
    def instances(self) -> list[str]:
        return self.link.instances()

    def desired(self) -> int:
        return self.cloud.desired()

    def running(self) -> dict[str, str]:
        """node ID → machine ID of the nodes running a wanted allocation of the pool's job."""
        attr = self.cloud.attribute
        by_node = {n["ID"]: self.cloud.machine_of(n["Attributes"].get(attr, "")) for n in self.fake.node_list()}
        return {
            a["NodeID"]: by_node.get(a["NodeID"], "")
            for a in self.fake.allocations(JOB)
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"
        }

    def count(self) -> int:
        return self.fake.group_count(JOB, GROUP)
