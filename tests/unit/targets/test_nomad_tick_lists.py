"""One allocation list and one job list per tick shared by every pool (NomadTarget.for_tick), against the fake
Nomad over HTTP: each pool's counts are exactly what the target reads alone; a job the lists do not show, or
lists that cannot be read, fall back to the job's own reads."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import requests

from autoscaler.core.settings.forescale import NomadSettings
from autoscaler.targets.nomad import NomadTarget
from tests.fakes.nomad import FakeNomad
from tests.helpers import make_config, pool_dict

POOLS = 8


def world(fake: FakeNomad) -> Any:
    for i in range(POOLS):
        fake.add_job(f"ml-p{i}", groups={"workers": 2 + i % 3, "sidecar": 1})
        if i % 2:
            fake.set_alloc_status(f"ml-p{i}", "pending", group="workers", limit=1)
            fake.add_alloc(f"ml-p{i}", "workers", client_status="failed")
    return make_config(*(pool_dict(f"p{i}") for i in range(POOLS)))


def kinds(fake: FakeNomad) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in fake.requests_to("GET"):
        out[r.path if r.path in ("/v1/allocations", "/v1/jobs") else r.path.rsplit("/", 1)[-1]] += 1
    return out


def test_one_list_each_per_tick_and_the_same_counts(fake_nomad: FakeNomad, nomad_settings: NomadSettings) -> None:
    cfg = world(fake_nomad)
    target = NomadTarget(nomad_settings, sleep=lambda _s: None)
    alone = {p.name: target.status(p) for p in cfg.pools}
    fake_nomad.clear_requests()
    tick = target.for_tick()
    barrier = threading.Barrier(POOLS, timeout=30)
    shared: dict[str, Any] = {}

    def read(pool: Any) -> None:
        barrier.wait()  # every pool asks at once: the lists are still read once
        shared[pool.name] = tick.status(pool)

    threads = [threading.Thread(target=read, args=(p,)) for p in cfg.pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert shared == alone
    got = kinds(fake_nomad)
    assert (got["/v1/allocations"], got["/v1/jobs"], got["summary"], got["allocations"]) == (1, 1, 0, 0)
    assert sum(1 for r in fake_nomad.requests_to("GET") if r.path.startswith("/v1/job/ml-p")) == POOLS  # the jobs


def test_a_job_newer_than_the_lists_and_failed_lists_fall_back(
    fake_nomad: FakeNomad, nomad_settings: NomadSettings
) -> None:
    cfg = world(fake_nomad)
    target = NomadTarget(nomad_settings.model_copy(update={"retries": 0}), sleep=lambda _s: None)
    tick = target.for_tick()
    tick.status(cfg.pools[0])
    fake_nomad.add_job("ml-late", groups={"workers": 4})
    late = make_config(pool_dict("late", nomad={"job": "ml-late", "group": "workers"})).pool("late")
    fake_nomad.clear_requests()
    assert tick.status(late).desired == 4 and tick.status(late).placed == 4
    assert kinds(fake_nomad)["summary"] == 2  # its own reads, not the tick's lists
    fake_nomad.fail_next(500, 1, method="GET", path="/v1/allocations")
    broken = target.for_tick()
    assert broken.status(cfg.pools[1]) == target.status(cfg.pools[1])


def test_the_fake_lists_the_namespaces_allocations_as_a_job_does(fake_nomad: FakeNomad) -> None:
    fake_nomad.add_job("ml-a", groups={"workers": 2})
    whole = requests.get(f"{fake_nomad.address}/v1/allocations", timeout=10).json()
    per_job = requests.get(f"{fake_nomad.address}/v1/job/ml-a/allocations", timeout=10).json()
    assert whole == per_job and all(a["TaskStates"] is not None for a in whole)
    lean = requests.get(f"{fake_nomad.address}/v1/allocations?task_states=false", timeout=10).json()
    assert [a["ID"] for a in lean] == [a["ID"] for a in whole] and all(a["TaskStates"] is None for a in lean)
    other = requests.get(f"{fake_nomad.address}/v1/allocations?namespace=other", timeout=10).json()
    assert other == []
