"""Nomad node JSON → PoolNode, held to the documented samples and the shapes read from Nomad's source."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from autoscaler.core.settings.nodes import NodesSettings
from autoscaler.nodes.directory import meta_matches, parse_alloc, parse_node, stub_matches
from tests.fakes.nomad import sample

ATTR = "unique.platform.aws.instance-id"


def test_sample_node_parses_with_its_last_drain() -> None:
    node = sample("node-read.response")
    parsed = parse_node(node, [])
    assert (parsed.id, parsed.name, parsed.status, parsed.eligible, parsed.draining) == (
        node["ID"],
        "mew",
        "ready",
        True,
        False,
    )
    assert ATTR not in parsed.attributes  # the docs' node is not on AWS
    assert parsed.last_drain_status == "complete" and parsed.last_drain_meta == {"message": "node maintenance"}
    assert parsed.last_drain_started == datetime(2021, 3, 31, 12, 12, 20, tzinfo=UTC)
    assert not parsed.drained_by_us  # someone else's maintenance drain: never taken for forescale's


def test_flat_drain_strategy_and_instance_attribute() -> None:
    node = copy.deepcopy(sample("node-read.response"))
    node["Attributes"][ATTR] = "i-0abc"
    node["SchedulingEligibility"] = "ineligible"
    node["DrainStrategy"] = {
        "Deadline": 900_000_000_000,
        "IgnoreSystemJobs": False,
        "ForceDeadline": "2026-03-02T12:15:00.123456789Z",
        "StartedAt": "2026-03-02T12:00:00Z",
    }
    node["LastDrain"] = {
        "StartedAt": "2026-03-02T12:00:00Z",
        "UpdatedAt": "2026-03-02T12:00:00Z",
        "Status": "draining",
        "AccessorID": "token:x",
        "Meta": {"drained_by": "forescale"},
    }
    parsed = parse_node(node, [])
    assert parsed.attributes[ATTR] == "i-0abc" and parsed.draining and not parsed.eligible and parsed.drained_by_us
    assert parsed.drain_deadline == datetime(2026, 3, 2, 12, 15, 0, 123456, tzinfo=UTC)


def test_allocations_from_the_sample() -> None:
    alloc = sample("allocation-read.response")
    parsed = parse_alloc(alloc)
    assert parsed.job == alloc["JobID"] and parsed.group == alloc["TaskGroup"]
    assert parsed.client_status == alloc["ClientStatus"]
    if alloc["ClientStatus"] == "running":
        assert parsed.running_since is not None
    pending = dict(alloc, ClientStatus="pending")
    assert parse_alloc(pending).running_since is None and parse_alloc(pending).live


def test_pool_filters_are_anded() -> None:
    s = NodesSettings(node_pool="gpu", node_class="t4", meta={"pool": "ocr"})
    stub = {"NodePool": "gpu", "NodeClass": "t4", "Datacenter": "dc1"}
    assert stub_matches(stub, s)
    assert not stub_matches({**stub, "NodeClass": ""}, s)
    assert not stub_matches({**stub, "NodePool": "default"}, s)
    assert meta_matches({**stub, "Meta": {"pool": "ocr"}}, s)
    assert not meta_matches({**stub, "Meta": {"pool": "asr"}}, s)
    assert not meta_matches({**stub, "Meta": None}, s)
