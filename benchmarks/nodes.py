"""Node-hours of GPU machines: machines following the count (lead time learned) vs a fixed fleet, through every
node provider.

Run: .venv/bin/python benchmarks/nodes.py [--providers sim,aws_asg,gce_mig,azure_vmss] [--traces all|bundled]

Every row replays the real tick (``run_tick``: metrics → predictor → decide → target → node step) over a real
trace, every 20 minutes, with DEFAULT policy settings. The pool's machines are simulated (``MachineSim``, a
NodeProvider and a NodeDirectory in memory, on the replay's clock), driven by the real node step
(``NodeReconciler``: scale-out, least_busy selection, drain, terminate exactly the drained machines):

- asking for a machine starts a boot whose length is drawn from a lognormal (median 6 min, p95 ≈ 10.7 min,
  fixed seed): a GPU instance boot + Nomad client + image pull. The node then registers; the pool's queued
  allocations are placed on free registered nodes and run at once;
- lowering the count stops the highest allocations at once (Nomad's reconciler); the node step drains the
  emptied nodes (empty: complete at once) and terminates exactly those machines;
- demand is served by running allocations only (capacity_per_node each); a machine costs from the ask to its
  termination (booting and draining included).

Policies: ``fixed peak`` = a fleet sized for the trace's peak, all the time; ``<provider> auto`` = lead_time: auto
(configured 10m until 5 boots, then the p95 of the last 7 days of boots: the lead time the tick plans with);
``sim 10m`` = the simulated group with a fixed 10m lead time, for reference. Capacity = trace peak / 50 nodes.

Providers: ``sim`` is the group simulated in memory; ``aws_asg``, ``gce_mig`` and ``azure_vmss`` are forescale's
real providers on their official SDKs against the local stand-ins (benchmarks/node_clouds.py: the strict Auto
Scaling proxy in front of moto, the fake Compute Engine, the fake Azure Resource Manager), every launch succeeding
at once, the same seeded boots. The provider must not change the policy: the same figures are expected within
noise.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autoscaler.core.clock import ManualClock  # noqa: E402
from autoscaler.core.decision import Decision, PoolState  # noqa: E402
from autoscaler.core.nodes import (  # noqa: E402
    DRAINED_BY,
    Machine,
    MachineGroup,
    NodeAllocation,
    PoolNode,
    TerminateResult,
)
from autoscaler.core.ports import NoOverrides  # noqa: E402
from autoscaler.core.settings.forescale import Config, NomadGroupRef, PoolConfig  # noqa: E402
from autoscaler.policy.nodes import NodeReconciler  # noqa: E402
from autoscaler.policy.tick import TickDeps, run_tick  # noqa: E402
from autoscaler.sources.trace import TraceMetricsSource  # noqa: E402
from predictor.factory import make_predictor  # noqa: E402
from predictor.trace import Trace, load_trace  # noqa: E402

TRACES = ROOT.parent / "shared" / "data" / "traces"  # ../shared beside the checkout, as in CI
BUNDLED = ROOT / "data" / "nasa_http_1995_jul_5min.csv"
ELB = "aws_elb_request_count_8c0756_5min.csv"
BOOT_MEDIAN_S = 360.0
BOOT_SIGMA = 0.35
SIM_STEP_S = 60.0
WARMUP_S = 3600.0


@dataclass
class SimMachine:
    id: str
    asked_at: float
    ready_at: float
    node_id: str
    create_index: int
    drain_started: float | None = None
    alloc: bool = False  # runs the pool's allocation


ATTRIBUTE = "unique.platform.aws.instance-id"


@dataclass
class MachineSim:
    """An Auto Scaling group + Nomad's nodes + the pool's allocations, in memory, on ``clock``."""

    clock: ManualClock
    job: str
    group_name: str
    seed: int = 7
    max_size: int = 10_000
    machines: dict[str, SimMachine] = field(default_factory=dict)
    desired_count: int = 0  # the task group's count (the Target)
    machine_seconds: float = 0.0
    boots: list[float] = field(default_factory=list)
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    kind = "aws_asg"
    where = "ASG sim"
    attribute: str = ATTRIBUTE  # the node attribute naming a machine (the provider's node_key)
    attribute_value: Any = None  # machine id → that attribute's value (None: the id itself)

    def now(self) -> float:
        return self.clock.now().timestamp()

    # -- the Target: the group's count --------------------------------------------------------------------
    def status(self, pool: PoolConfig) -> PoolState:
        """Desired = the count; placed = allocations on ready nodes; queued = the rest (no free node yet)."""
        placed = sum(1 for m in self.machines.values() if m.alloc)
        return PoolState(self.desired_count, placed, max(self.desired_count - placed, 0), running=placed)

    def scale(self, pool: PoolConfig, decision: Decision) -> str:
        self.desired_count = decision.desired
        self.place()
        return "simulated"

    # -- NodeProvider ------------------------------------------------------------------------------------
    def describe(self, pool: PoolConfig) -> MachineGroup:
        machines = tuple(
            Machine(m.id, "InService", datetime.fromtimestamp(m.asked_at, UTC)) for m in self.machines.values()
        )
        return MachineGroup(self.where, len(self.machines), machines, 0, self.max_size)

    def launch(self, n: int, now: float, ready_now: bool = False) -> None:
        for _ in range(n):
            self._n += 1
            self._add(f"i-{self._n:05d}", now, ready_now)

    def _add(self, mid: str, now: float, ready_now: bool) -> None:
        boot = 0.0 if ready_now else float(self.rng.lognormal(math.log(BOOT_MEDIAN_S), BOOT_SIGMA))
        self.machines[mid] = SimMachine(mid, now - (1 if ready_now else 0), now + boot, f"node-{self._n:05d}", self._n)

    def adopt(self, present: Sequence[str], ready_now: bool = False) -> None:
        """A real provider's group holds ``present``: machines that appeared start booting (the same seeded draws,
        in the order they appear), machines that went are gone."""
        now = self.now()
        for mid in [m for m in self.machines if m not in present]:
            self.machines.pop(mid)
        for mid in sorted(m for m in present if m not in self.machines):
            self._n += 1
            self._add(mid, now, ready_now)

    def machine_id(self, pool: PoolConfig, attributes: Mapping[str, str]) -> str | None:
        return attributes.get(ATTRIBUTE) or None

    def node_key(self, pool: PoolConfig) -> str:
        return ATTRIBUTE

    def scale_out(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        self.launch(desired - len(self.machines), self.now())
        return "simulated"

    def cancel_launches(self, pool: PoolConfig, group: MachineGroup, desired: int) -> str:
        return "simulated (every launch succeeds)"

    def terminate(
        self, pool: PoolConfig, group: MachineGroup, machines: Sequence[str], *, replace: bool = False
    ) -> list[TerminateResult]:
        for mid in machines:
            self.machines.pop(mid)
        if replace:
            self.launch(len(machines), self.now())
        return [TerminateResult(m, True) for m in machines]

    # -- NodeDirectory -----------------------------------------------------------------------------------
    def pool_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        now = self.now()
        out = []
        for m in self.machines.values():
            if m.ready_at > now:
                continue  # still booting: no node yet
            alloc = (
                (
                    NodeAllocation(
                        f"a-{m.id}",
                        self.job,
                        self.group_name,
                        "running",
                        running_since=datetime.fromtimestamp(max(m.ready_at, m.asked_at), UTC),
                    ),
                )
                if m.alloc
                else ()
            )
            draining = m.drain_started is not None
            out.append(
                PoolNode(
                    id=m.node_id,
                    name=m.node_id,
                    status="ready",
                    eligible=not draining,
                    draining=False,  # an empty node's drain completes at once (allocations stop at the count)
                    machine_id=m.id,
                    create_index=m.create_index,
                    node_pool="gpu",
                    last_drain_status="complete" if draining else None,
                    last_drain_started=datetime.fromtimestamp(m.drain_started, UTC) if draining else None,
                    last_drain_meta={"drained_by": DRAINED_BY} if draining else {},
                    allocations=alloc,
                    attributes={self.attribute: self.attribute_value(m.id) if self.attribute_value else m.id},
                )
            )
        return out

    def other_nodes(self, pool: PoolConfig) -> list[PoolNode]:
        return []  # every machine of the simulated group is the pool's

    def _by_node(self, node_id: str) -> SimMachine:
        return next(m for m in self.machines.values() if m.node_id == node_id)

    def drain(self, node_id: str, deadline_s: float, ignore_system_jobs: bool, meta: dict[str, str]) -> None:
        m = self._by_node(node_id)
        m.drain_started = self.now()
        if m.alloc:  # Nomad migrates it: placed again on a free node, if any
            m.alloc = False
        self.place()

    def cancel_drain(self, node_id: str, meta: dict[str, str]) -> None:
        self._by_node(node_id).drain_started = None
        self.place()

    def purge(self, node_id: str) -> None:
        pass

    # -- Nomad's scheduler ---------------------------------------------------------------------------------
    def place(self) -> None:
        """Allocations follow the count: stop the newest beyond it; place missing ones on free ready nodes."""
        now = self.now()
        running = [m for m in self.machines.values() if m.alloc]
        for m in sorted(running, key=lambda m: -m.create_index)[: max(len(running) - self.desired_count, 0)]:
            m.alloc = False
        missing = self.desired_count - sum(1 for m in self.machines.values() if m.alloc)
        free = [m for m in self.machines.values() if not m.alloc and m.drain_started is None and m.ready_at <= now]
        for m in sorted(free, key=lambda m: m.create_index)[: max(missing, 0)]:
            m.alloc = True
            if m.asked_at < m.ready_at:
                self.boots.append(m.ready_at - m.asked_at)

    def running(self) -> int:
        return sum(1 for m in self.machines.values() if m.alloc)


@dataclass
class Result:
    machine_hours: float
    unserved_pct: float
    boots: int
    lead_s: float
    lead_source: str


def pool_config(cap: float, lead: str, section: dict[str, Any] | None = None) -> Config:
    nodes = {**(section or {"provider": "aws_asg", "aws": {"asg_name": "sim"}}), "node_pool": "gpu"}
    pool = PoolConfig.model_validate(
        {
            "name": "gpu",
            "query": "trace",
            "nomad": NomadGroupRef(job="sim", group="workers"),
            "capacity_per_node": cap,
            "max": 100_000,
            "lead_time": lead,
            "nodes": nodes,
        }
    )
    return Config(pools=[pool])


def run(trace: Trace, cap: float, lead: str, kind: str = "sim") -> Result:
    first = int(np.searchsorted(trace.t, trace.t[0] + min(WARMUP_S, 0.25 * (trace.end - trace.start))))
    clock = ManualClock(datetime.fromtimestamp(float(trace.t[first]), UTC))
    sim = MachineSim(clock, "sim", "workers")
    stand = None
    if kind == "sim":
        config = pool_config(cap, lead)
        provider: Any = sim
    else:
        from autoscaler.nodes.registry import build_node_provider
        from benchmarks.node_clouds import CloudProvider, start

        stand = start(kind, clock)
        config = pool_config(cap, lead, stand.section)
        real = build_node_provider(config.pools[0])
        assert real is not None
        provider = CloudProvider(real, lambda: sim.adopt(stand.truth()))
        sim.attribute, sim.attribute_value = real.node_key(config.pools[0]), stand.attribute_value
    pool = config.pools[0]
    reconciler = NodeReconciler({pool.name: provider}, sim, clock)
    model = make_predictor(config.predictor, pool)
    deps = TickDeps(
        config=config,
        metrics=TraceMetricsSource(trace),
        predictor_for=lambda _p: model,
        target=sim,
        overrides=NoOverrides(),
        clock=clock,
        nodes=reconciler,
    )
    interval = config.daemon.interval.total_seconds()
    end = float(trace.t[-1]) + trace.step_s
    t = float(trace.t[first])
    next_tick = t
    served = unserved = 0.0
    started = False
    while t < end:
        clock.set(datetime.fromtimestamp(t, UTC))
        sim.place()
        if t >= next_tick:
            if not started:  # the replay starts with the first decision's count ready (as the backtest does)
                report = run_tick(deps, dry_run=True)
                d = report.outcomes[0].decision
                sim.desired_count = d.desired if d is not None else pool.min
                if stand is None:
                    sim.launch(sim.desired_count, t, ready_now=True)
                else:
                    stand.seed(sim.desired_count)
                    sim.adopt(stand.truth(), ready_now=True)
                sim.place()
                started = True
            if stand is not None:  # the cloud's own progress (creations, deletions), twice: new VMs running
                stand.tick()
                stand.tick()
                sim.adopt(stand.truth())
            run_tick(deps)
            next_tick += interval
        i = min(int(np.searchsorted(trace.t, t, side="right")) - 1, len(trace.t) - 1)
        demand = float(trace.rps[i]) * SIM_STEP_S
        capacity = sim.running() * cap * SIM_STEP_S
        served += min(demand, capacity)
        unserved += max(demand - capacity, 0.0)
        sim.machine_seconds += len(sim.machines) * SIM_STEP_S
        t += SIM_STEP_S
    lead_time = reconciler.lead_time(pool, clock.now())
    if stand is not None:
        stand.stop()
    total = served + unserved
    return Result(
        sim.machine_seconds / 3600,
        100 * unserved / total if total else 0.0,
        len(sim.boots),
        lead_time.seconds,
        lead_time.source,
    )


def fixed_fleet(trace: Trace, cap: float) -> float:
    first = int(np.searchsorted(trace.t, trace.t[0] + min(WARMUP_S, 0.25 * (trace.end - trace.start))))
    hours = (float(trace.t[-1]) + trace.step_s - float(trace.t[first])) / 3600
    return math.ceil(float(np.max(trace.rps[first:])) / cap) * hours


LABELS = {
    "sim": "sim (in-memory group)",
    "aws_asg": "aws_asg (boto3 → moto + proxy)",
    "gce_mig": "gce_mig (google-cloud-compute → fake)",
    "azure_vmss": "azure_vmss (azure-mgmt-compute → fake)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--providers", default="sim,aws_asg,gce_mig,azure_vmss", help="comma-separated: " + ", ".join(LABELS)
    )
    parser.add_argument(
        "--traces", choices=["all", "bundled", "elb"], default="all", help="bundled: the NASA trace only; elb: ELB only"
    )
    parser.add_argument("--traces-dir", type=Path, default=TRACES, help=f"the shared traces (default {TRACES})")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.providers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in LABELS]
    if unknown:
        parser.error(f"unknown provider(s) {', '.join(unknown)}; one of {', '.join(LABELS)}")
    console = Console(width=140)
    cases = [BUNDLED, *(args.traces_dir / name for name in ("nasa_http_1995_jul_5min.csv", ELB))]
    if args.traces != "all":
        cases = [BUNDLED] if args.traces == "bundled" else [args.traces_dir / ELB]
    seen = set()
    table = Table(title="GPU machine-hours: fixed fleet for the peak vs machines following the count, per provider")
    for col in ("trace", "policy", "machine-hours", "× fixed", "unserved %", "boots", "lead time at the end", "wall s"):
        table.add_column(col, justify="left" if col in ("trace", "policy", "lead time at the end") else "right")
    for path in cases:
        if not path.exists() or path.name in seen:
            continue
        seen.add(path.name)
        trace = load_trace(path)
        cap = float(np.max(trace.rps)) / 50.0
        fixed = fixed_fleet(trace, cap)
        table.add_row(path.stem, "fixed peak", f"{fixed:.0f}", "1.00", "0.000", "—", "—", "—")
        rows = [(f"{LABELS[k]} auto", "auto", k) for k in kinds]
        if "sim" in kinds:
            rows.append(("sim (in-memory group) 10m", "10m", "sim"))
        for i, (label, lead, kind) in enumerate(rows):
            began = time.perf_counter()
            r = run(trace, cap, lead, kind)
            table.add_row(
                "",
                label,
                f"{r.machine_hours:.0f}",
                f"{r.machine_hours / fixed:.2f}",
                f"{r.unserved_pct:.3f}",
                str(r.boots),
                f"{r.lead_s / 60:.1f} min ({r.lead_source})",
                f"{time.perf_counter() - began:.0f}",
                end_section=i == len(rows) - 1,
            )
    console.print(table)
    console.print(
        f"boots: lognormal, median {BOOT_MEDIAN_S / 60:.0f} min, p95 "
        f"{BOOT_MEDIAN_S * math.exp(1.645 * BOOT_SIGMA) / 60:.1f} min; capacity = peak / 50; tick 20 min; "
        "default policy (seasonal_lr, SLO 1 %); every launch succeeds at once on every stand-in"
    )


if __name__ == "__main__":
    main()
