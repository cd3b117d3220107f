"""Integration tests against a real Nomad: run only when NOMAD_ADDR is set (reported skipped otherwise).

Needs a cluster with at least one client that has raw_exec enabled, and a token (NOMAD_TOKEN) with
submit-job in the namespace (NOMAD_NAMESPACE, default "default"). TLS: NOMAD_CACERT, NOMAD_CLIENT_CERT/KEY.
Each test registers a uniquely named tiny job and purges it afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.decision import Decision, Reason
from autoscaler.core.errors import NomadNotFound, ScalingBoundsError
from autoscaler.core.settings.forescale import NomadSettings, PoolConfig
from autoscaler.nomad.client import NomadClient
from autoscaler.targets.nomad import NomadTarget

pytestmark = [
    pytest.mark.nomad,
    pytest.mark.skipif(not os.environ.get("NOMAD_ADDR"), reason="needs a real Nomad: set NOMAD_ADDR"),
]

# update.max_parallel = 0: no deployments, so a scale right after register is not blocked (NOTES.md §C).
JOBSPEC = """
job "%(job)s" {
  type        = "service"
  datacenters = ["*"]

  update {
    max_parallel = 0
  }

  group "workers" {
    count = 1

    scaling {
      enabled = true
      min     = 0
      max     = 3
    }

    task "sleep" {
      driver       = "raw_exec"
      kill_timeout = "2s"

      config {
        command = "/bin/sleep"
        args    = ["3600"]
      }

      resources {
        cpu    = 20
        memory = 16
      }
    }
  }
}
"""


def _path(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value) if value else None


@pytest.fixture
def settings() -> NomadSettings:
    return NomadSettings(
        address=os.environ["NOMAD_ADDR"],
        token_env="NOMAD_TOKEN",
        namespace=os.environ.get("NOMAD_NAMESPACE", "default"),
        region=os.environ.get("NOMAD_REGION") or None,
        ca_cert=_path("NOMAD_CACERT"),
        client_cert=_path("NOMAD_CLIENT_CERT"),
        client_key=_path("NOMAD_CLIENT_KEY"),
        timeout=timedelta(seconds=10),
        retries=2,
    )


@pytest.fixture
def job(settings: NomadSettings) -> Iterator[str]:
    client = NomadClient(settings)
    job_id = f"forescale-it-{uuid.uuid4().hex[:8]}"
    parsed = client.post_json("jobs/parse", {"JobHCL": JOBSPEC % {"job": job_id}, "Canonicalize": True}).body
    client.post_json("jobs", {"Job": parsed})
    try:
        yield job_id
    finally:
        client.delete(f"job/{job_id}", {"purge": "true"})


def pool_for(job_id: str) -> PoolConfig:
    return PoolConfig.model_validate(
        {
            "name": "it",
            "query": "vector(1)",
            "nomad": {"job": job_id, "group": "workers"},
            "capacity_per_node": 1,
            "min": 0,
            "max": 3,
        }
    )


def wait_for_live(client: NomadClient, job_id: str, want: int, timeout_s: float = 90.0) -> int:
    """Long-poll the job's allocations (blocking query, no sleeping) until ``want`` are running or pending."""
    deadline = time.monotonic() + timeout_s
    index = 0
    live = -1
    while time.monotonic() < deadline:
        resp = client.get_json(f"job/{job_id}/allocations", {"index": index, "wait": "5s"})
        index = resp.nomad_index or index
        live = sum(
            1
            for a in resp.body
            if a["TaskGroup"] == "workers"
            and a["DesiredStatus"] == "run"
            and a["ClientStatus"] in ("running", "pending")
        )
        if live == want:
            return live
    pytest.fail(f"{job_id}: {live} live allocations after {timeout_s:.0f}s, wanted {want} (is raw_exec enabled?)")


def test_register_read_scale_and_see_the_event(settings: NomadSettings, job: str) -> None:
    target = NomadTarget(settings)
    pool = pool_for(job)
    assert wait_for_live(target.client, job, 1) == 1
    assert target.status(pool).placed == 1
    decision = Decision(
        pool="it",
        at=datetime.now(UTC),
        current=1,
        desired=2,
        reasons=(Reason("forecast", "integration test"),),
        forecast_rps=1.5,
        observed_rps=1.0,
        forecast_nodes=2,
        model="trend_lr",
    )
    note = target.scale(pool, decision)
    assert note.startswith("eval ")
    status: dict[str, Any] = target.client.scale_status(job)
    group = status["TaskGroups"]["workers"]
    assert group["Desired"] == 2
    event = group["Events"][0]
    assert event["Count"] == 2 and event["PreviousCount"] == 1 and event["Error"] is False
    assert event["Message"] == "it: 1 → 2: integration test"
    assert event["Meta"]["model"] == "trend_lr"
    assert wait_for_live(target.client, job, 2) == 2
    assert target.status(pool).placed == 2
    with pytest.raises(ScalingBoundsError) as err:
        target.scale(pool, replace(decision, current=2, desired=4))
    assert "group count was greater than scaling policy maximum: 4 > 3" in str(err.value)


def test_missing_job_is_not_found(settings: NomadSettings) -> None:
    target = NomadTarget(settings)
    with pytest.raises(NomadNotFound) as err:
        target.status(pool_for(f"forescale-missing-{uuid.uuid4().hex[:8]}"))
    assert f"namespace '{settings.namespace}'" in str(err.value)
