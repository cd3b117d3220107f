"""One node list per tick shared by every pool (``NomadNodeDirectory.for_tick``), against the fake Nomad over HTTP.

Pools share a Nomad node pool and are told apart by ``meta`` (the documented setup), where every pool used to read
every node. A tick's snapshot reads the list once, each node's allocations once, each node's record only when its
ModifyIndex moved; what every pool sees is what a fresh read would show; a write makes the next read fresh.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from autoscaler.nodes.directory import NomadNodeDirectory
from autoscaler.nomad.client import NomadClient
from tests.fakes.nomad import FakeNomad
from tests.helpers import make_config, pool_dict

POOLS = 6
PER_POOL = 4


def world(fake: FakeNomad) -> Any:
    fake.auto_nodes = False
    for p in range(POOLS):
        for i in range(PER_POOL):
            fake.add_node(f"gpu-{p}-{i}", node_pool="gpu", meta={"team": f"t{p}"}, instance_id=f"i-{p}-{i}")
    fake.add_node("cpu-0", node_pool="default", instance_id="i-cpu")
    pools = [
        pool_dict(
            f"t{p}",
            nodes={
                "provider": "aws_asg",
                "aws": {"asg_name": f"asg-{p}"},
                "node_pool": "gpu",
                "meta": {"team": f"t{p}"},
            },
        )
        for p in range(POOLS)
    ]
    return make_config(*pools)


def gets(fake: FakeNomad) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for r in fake.requests_to("GET"):
        if r.path == "/v1/nodes":
            kinds["list"] += 1
        elif r.path.endswith("/allocations"):
            kinds["allocations"] += 1
        elif r.path.startswith("/v1/node/"):
            kinds["node"] += 1
    return kinds


def test_a_tick_reads_the_node_list_once_and_each_node_once(fake_nomad: FakeNomad, nomad_client: NomadClient) -> None:
    cfg = world(fake_nomad)
    fresh = {p.name: NomadNodeDirectory(nomad_client).pool_nodes(p) for p in cfg.pools}  # as the step read them
    directory = NomadNodeDirectory(nomad_client)
    fake_nomad.clear_requests()
    tick = directory.for_tick()
    seen = {p.name: tick.pool_nodes(p) for p in cfg.pools}
    assert seen == fresh and all(len(nodes) == PER_POOL for nodes in seen.values())
    # every pool read every node before: POOLS × (1 list + all 25 records) + the 24 allocation lists
    assert gets(fake_nomad) == {"list": 1, "node": POOLS * PER_POOL, "allocations": POOLS * PER_POOL}
    others = tick.other_nodes(cfg.pools[0])
    assert {n.name for n in others} == {"cpu-0"} | {f"gpu-{p}-{i}" for p in range(1, POOLS) for i in range(PER_POOL)}
    assert others == NomadNodeDirectory(nomad_client).other_nodes(cfg.pools[0])
    # The next tick: the list and the allocations again (they change without the node changing), no record.
    fake_nomad.clear_requests()
    tick = directory.for_tick()
    assert {p.name: tick.pool_nodes(p) for p in cfg.pools} == fresh
    assert gets(fake_nomad) == {"list": 1, "allocations": POOLS * PER_POOL}


def test_a_changed_node_is_read_again_and_a_write_makes_the_next_read_fresh(
    fake_nomad: FakeNomad, nomad_client: NomadClient
) -> None:
    cfg = world(fake_nomad)
    pool = cfg.pools[0]
    directory = NomadNodeDirectory(nomad_client)
    directory.for_tick().pool_nodes(pool)
    victim = fake_nomad.node_by_name("gpu-0-1")
    fake_nomad.set_node_eligibility(victim["ID"], False)  # someone else's change: its ModifyIndex moves
    tick = directory.for_tick()
    fake_nomad.clear_requests()
    nodes = {n.name: n for n in tick.pool_nodes(pool)}
    assert not nodes["gpu-0-1"].eligible and nodes["gpu-0-0"].eligible
    assert gets(fake_nomad)["node"] == 1  # only the node that changed
    # A drain through the snapshot: what the same tick reads next is fresh (the node step's follow-up needs it).
    target = nodes["gpu-0-0"]
    tick.drain(target.id, 300.0, False, {"drained_by": "forescale", "forescale_pool": pool.name})
    fake_nomad.clear_requests()
    after = {n.name: n for n in tick.pool_nodes(pool)}
    assert after["gpu-0-0"].drained_by_us and not after["gpu-0-0"].eligible
    assert gets(fake_nomad) == {"list": 1, "node": 1, "allocations": PER_POOL}


def test_pools_of_one_tick_on_threads_share_one_list(fake_nomad: FakeNomad, nomad_client: NomadClient) -> None:
    cfg = world(fake_nomad)
    tick = NomadNodeDirectory(nomad_client).for_tick()
    fake_nomad.clear_requests()
    barrier = threading.Barrier(POOLS, timeout=30)
    out: dict[str, int] = {}

    def step(pool: Any) -> None:
        barrier.wait()  # every pool asks at the same moment
        out[pool.name] = len(tick.pool_nodes(pool))

    threads = [threading.Thread(target=step, args=(p,)) for p in cfg.pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == {p.name: PER_POOL for p in cfg.pools}
    assert gets(fake_nomad) == {"list": 1, "node": POOLS * PER_POOL, "allocations": POOLS * PER_POOL}


def test_a_failed_node_list_is_read_once_per_tick(fake_nomad: FakeNomad, nomad_settings: Any) -> None:
    cfg = world(fake_nomad)
    client = NomadClient(nomad_settings.model_copy(update={"retries": 0}), sleep=lambda _s: None)
    tick = NomadNodeDirectory(client).for_tick()
    fake_nomad.fail_next(500, 1, method="GET", path="/v1/nodes")
    fake_nomad.clear_requests()
    errors = []
    for pool in cfg.pools:
        try:
            tick.pool_nodes(pool)
        except Exception as exc:
            errors.append(type(exc).__name__)
    assert errors == ["NomadUnavailable"] * POOLS  # every pool reports it, none asks again
    assert gets(fake_nomad) == {"list": 1}
