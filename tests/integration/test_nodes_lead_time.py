"""`lead_time: auto` learns only from boots forescale saw, from launch to running — with the `command` provider (the
shipped on-prem inventory) and an existing fleet: six hosts already serving when forescale starts teach nothing
(never "0 seconds"); hosts it switches on and sees booting do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tests.fakes.nomad as fake_module
from autoscaler.core.clock import ManualClock
from autoscaler.policy.tick import run_tick
from autoscaler.wiring import build_deps
from tests.fakes.nomad import FakeNomad
from tests.helpers import FlatMetrics, make_config, pool_dict

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "scripts" / "nodes" / "inventory"


def test_an_existing_fleet_teaches_nothing_and_seen_boots_do(
    fake_nomad: FakeNomad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(fake_module, "_now_ns", lambda: int(clock.now().timestamp() * 1e9))
    fake_nomad.wall_clock = lambda: clock.now().timestamp()
    fake_nomad.auto_nodes = False
    fake_nomad.new_alloc_status = "running"
    hosts = [f"gpu-{i}" for i in range(1, 10)]
    inventory = tmp_path / "hosts.txt"
    inventory.write_text("".join(f"{h} {'active' if i < 6 else 'standby'}\n" for i, h in enumerate(hosts)))
    for host in hosts[:6]:  # the fleet forescale inherits: serving long before it starts
        fake_nomad.add_node(host, node_pool="gpu")
    fake_nomad.add_job("ml-ocr", groups={"workers": 6}, gpus=1, distinct_hosts=True, node_pool="gpu")
    nodes = {
        "provider": "command",
        "node_pool": "gpu",
        "min_boots": 3,
        "command": {"path": str(INVENTORY), "args": ["--file", str(inventory)]},
    }
    cfg = make_config(
        pool_dict("ocr", nomad={"job": "ml-ocr", "group": "workers"}, max=9, lead_time="auto", nodes=nodes),
        nomad={"address": fake_nomad.address, "retries": 0, "timeout": "5s", "token_env": "FORESCALE_LT_TOKEN"},
        audit_log=str(tmp_path / "audit.jsonl"),
        predictor={"model": "trend_lr"},
    )
    rates = FlatMetrics({cfg.pool("ocr").query: 45.0})  # 45 rps at 10 × 0.8 → 6 nodes
    deps = build_deps(cfg, clock=clock, notifiers=[])
    deps.metrics = rates

    for _ in range(3):
        report = run_tick(deps)
        (outcome,) = report.outcomes
        assert outcome.decision is not None and outcome.decision.desired == 6
        assert outcome.nodes is not None and outcome.nodes.boots == ()  # serving when first seen: no sample
        lead = outcome.nodes.lead_time
        assert lead is not None and lead.source == "initial" and lead.seconds == 600 and lead.boots == 0
        clock.advance(timedelta(minutes=20))

    # Traffic rises: forescale switches three standby hosts on; they boot for 7 minutes, then register.
    rates.rates[cfg.pool("ocr").query] = 70.0  # → 9 nodes
    report = run_tick(deps)
    (outcome,) = report.outcomes
    assert outcome.nodes is not None and [a.capacity for a in outcome.nodes.of_kind("scale_out")] == [9]
    asked = clock.now()
    clock.advance(timedelta(minutes=2))
    run_tick(deps)  # sees them booting (no node yet)
    clock.advance(timedelta(minutes=5))
    for host in hosts[6:]:
        fake_nomad.add_node(host, node_pool="gpu")  # Nomad places the queued allocations on them
    clock.advance(timedelta(minutes=1))
    report = run_tick(deps)
    (outcome,) = report.outcomes
    assert outcome.nodes is not None
    boots = outcome.nodes.boots
    assert sorted(b.machine for b in boots) == hosts[6:]
    assert all(b.asked_at == asked and 7 * 60 <= b.seconds <= 8 * 60 for b in boots)
    lead = outcome.nodes.lead_time
    assert lead is not None and lead.source == "learned" and 7 * 60 <= lead.seconds <= 8 * 60
