"""`forescale render`: rendered HCL parsed with python-hcl2 and checked for the jobspec invariants, golden files
for the example config, render-time validation, and injection attempts through every config string.

Regenerate the golden files after an intended template change:
    FORESCALE_UPDATE_GOLDEN=1 pytest tests/unit/jobspec/test_render.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2.utils import SerializationOptions
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config import load_config, parse_config
from autoscaler.core.durations import parse_duration
from autoscaler.core.errors import ConfigError, UnknownPool
from autoscaler.core.settings.forescale import Config
from autoscaler.jobspec.client import read_client_config
from autoscaler.jobspec.escape import heredoc_body
from autoscaler.jobspec.selfjob import SelfJob, render_self
from autoscaler.jobspec.workers import check_config, render_compose, render_jobs, write_rendered
from tests import REPO
from tests.conftest import require_service

GOLDEN = REPO / "tests" / "golden"
EXAMPLE = GOLDEN / "forescale.jobspec-example.yaml"
ENTRYPOINT = REPO / "scripts" / "forescale-compose-entrypoint"
_OPTS = SerializationOptions(
    with_comments=False, explicit_blocks=False, preserve_heredocs=True, strip_string_quotes=True
)


# ---------------------------------------------------------------- helpers: decode what Nomad would see


def parse_hcl(text: str) -> dict[str, Any]:
    return dict(hcl2.loads(text, serialization_options=_OPTS))


def hcl_unescape(text: str) -> str:
    """What HCL makes of a string: ``$${`` → ``${``, ``%%{`` → ``%{`` (python-hcl2 keeps them raw)."""
    return text.replace("$${", "${").replace("%%{", "%{")


def heredoc_data(value: str) -> str:
    """A template ``data`` heredoc as consul-template receives it, and then as it renders it."""
    match = re.fullmatch(r"<<(\w+)\n(.*)\n\1", value, re.S)
    assert match, value[:80]
    raw = match.group(2)
    # Safety property: no unescaped HCL interpolation/directive and no consul-template action survive.
    assert "${" not in raw.replace("$${", ""), "unescaped ${ in heredoc"
    assert "%{" not in raw.replace("%%{", ""), "unescaped %{ in heredoc"
    text = hcl_unescape(raw)
    assert "{{" not in text.replace('{{"{{"}}', ""), "unescaped {{ reaches consul-template"
    return text.replace('{{"{{"}}', "{{") + "\n"


def job_of(parsed: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((job_id, job),) = parsed["job"][0].items()
    return job_id, job


def groups_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for g in job["group"] for name, body in g.items()}


def tasks_of(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for t in group["task"] for name, body in t.items()}


def template(task: dict[str, Any], destination: str) -> dict[str, Any]:
    (found,) = [t for t in task["template"] if t["destination"] == destination]
    return dict(found)


def example() -> Config:
    return load_config(EXAMPLE)


def config_with(tmp_path: Path, jobspec: dict[str, Any], **pool: Any) -> Config:
    base: dict[str, Any] = {
        "name": "ocr",
        "query": "up",
        "nomad": {"job": "ml-workers", "group": "ocr"},
        "capacity_per_node": 10,
        "min": 1,
        "max": 5,
        "jobspec": {"image": "ocr:1.0", "max_kill_timeout": "5m", **jobspec},
    }
    base.update(pool)
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump({"pools": [base]}))
    return load_config(path)


# ---------------------------------------------------------------- invariants of the example


def test_example_job_has_every_invariant_per_pool() -> None:
    config = example()
    (rendered,) = render_jobs(config)
    job_id, job = job_of(parse_hcl(rendered.hcl))
    assert job_id == "ml-workers"
    assert job["type"] == "service"
    assert job["node_pool"] == "gpu"
    assert job["datacenters"] == ["eu-west-1a", "eu-west-1b"]
    groups = groups_of(job)
    assert list(groups) == ["ocr", "face-match"], "one group per pool, in config order"

    for pool in config.pools:
        js = pool.jobspec
        assert js is not None
        group = groups[pool.nomad.group]
        assert group["count"] == pool.min
        assert group["scaling"] == [{"enabled": True, "min": pool.min, "max": pool.max}]
        assert {"distinct_hosts": True} in group["constraint"]
        assert group["spread"][0]["attribute"] == "${node.datacenter}"
        assert group["update"] == [{"max_parallel": 0}], "scaling must never open a deployment"
        assert group["reschedule"][0]["unlimited"] is True
        assert "health" in group["network"][0]["port"][0]

        tasks = tasks_of(group)
        assert set(tasks) == {"workers", "cleanup"}
        workers, cleanup = tasks["workers"], tasks["cleanup"]
        assert workers["driver"] == "raw_exec" and cleanup["driver"] == "raw_exec"
        ((device,),) = [d.values() for d in workers["resources"][0]["device"] if "nvidia/gpu" in d]
        assert device["count"] == 1

        kill = parse_duration(workers["kill_timeout"])
        assert kill >= js.drain_timeout + js.stop_timeout + js.kill_margin
        assert kill <= parse_duration("5m"), "≤ max_kill_timeout of nomad.hcl"
        assert workers["kill_signal"] == js.kill_signal
        assert parse_duration(workers["shutdown_delay"]) == js.shutdown_delay

        args = workers["config"][0]["args"]
        opts = dict(zip(args[1::2], args[2::2], strict=False))
        assert args[0] == "run"
        assert opts["--project"] == f"{pool.nomad.group}-${{NOMAD_ALLOC_ID}}"
        assert int(opts["--workers"]) == js.workers_per_gpu
        assert int(opts["--drain-timeout"]) == js.drain_timeout.total_seconds()
        assert int(opts["--stop-timeout"]) == js.stop_timeout.total_seconds()

        # The poststop safety net cleans up the same project.
        assert cleanup["lifecycle"] == [{"hook": "poststop"}]
        cargs = cleanup["config"][0]["args"]
        assert cargs[0] == "cleanup" and cargs[cargs.index("--project") + 1] == opts["--project"]

        service = workers["service"][0]
        assert service["port"] == "health"
        assert service["check"][0]["type"] == "http" and service["check"][0]["path"] == "/healthz"

        # The compose file Nomad writes is exactly the one rendered for inspection, and it is valid.
        compose_text = heredoc_data(template(workers, "local/docker-compose.yml")["data"])
        assert compose_text == rendered.compose[pool.nomad.group]
        compose = yaml.safe_load(compose_text)
        services = compose["services"]
        assert list(services) == [f"worker-{i}" for i in range(1, js.workers_per_gpu + 1)]
        for name, svc in services.items():
            assert svc["image"] == js.image
            assert svc["pull_policy"] == {"missing": "if_not_present"}.get(js.pull_policy, js.pull_policy)
            assert svc["network_mode"] == js.network_mode
            assert svc["stop_signal"] == js.worker_stop_signal
            assert parse_duration(svc["stop_grace_period"]) == js.stop_timeout
            assert svc["labels"]["io.forescale.alloc"] == "${NOMAD_ALLOC_ID:-none}"
            assert svc["labels"]["io.forescale.managed"] == "true"
            assert svc["labels"]["io.forescale.worker"] == name.split("-")[1]
            gpu = [e for e in svc["environment"] if e.startswith("NVIDIA_VISIBLE_DEVICES=")]
            assert gpu and gpu[0].startswith("NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES:?")
            assert "networks" not in svc

        # The embedded entrypoint survives both escaping layers byte for byte, and is embedded once (issue 22,
        # item 14): rendered into the allocation's shared directory, where the poststop cleanup task runs it too.
        shared = "${NOMAD_ALLOC_DIR}/forescale-compose-entrypoint"
        embedded = heredoc_data(template(workers, shared)["data"])
        assert embedded == ENTRYPOINT.read_text()
        assert template(workers, shared)["perms"] == "0755"
        assert not [t for t in cleanup.get("template", []) if "entrypoint" in str(t)]
        assert rendered.hcl.count(ENTRYPOINT.read_text().splitlines()[0]) == len(groups)  # one copy per group


def test_example_pool_limits_gpu_memory_and_node_class() -> None:
    (rendered,) = render_jobs(example())
    groups = groups_of(job_of(parse_hcl(rendered.hcl))[1])
    ocr = tasks_of(groups["ocr"])["workers"]
    device = ocr["resources"][0]["device"][0]["nvidia/gpu"]
    assert device["constraint"] == [{"attribute": "${device.attr.memory}", "operator": ">=", "value": "15000 MiB"}]
    assert {"attribute": "${node.class}", "value": "gpu-t4"} in groups["ocr"]["constraint"]
    compose = yaml.safe_load(rendered.compose["ocr"])["services"]["worker-1"]
    assert compose["cpus"] == 1.5 and compose["mem_limit"] == "6144m" and compose["runtime"] == "nvidia"
    # Secrets: read from the job's Nomad Variable, passed to containers by name only.
    secrets = template(ocr, "secrets/workers.env")
    assert secrets["env"] is True
    assert 'nomadVar "nomad/jobs/ml-workers"' in secrets["data"]
    assert "QUEUE_PASSWORD={{ .QUEUE_PASSWORD | toJSON }}" in secrets["data"]
    assert "QUEUE_PASSWORD" in compose["environment"]


@pytest.mark.parametrize(
    "name",
    [
        "ml-workers.nomad.hcl",
        "ml-workers.ocr.docker-compose.yml",
        "ml-workers.face-match.docker-compose.yml",
        "forescale.nomad.hcl",
        "forescale-periodic.nomad.hcl",
    ],
)
def test_golden_files(tmp_path: Path, name: str) -> None:
    config = example()
    paths = write_rendered(render_jobs(config), tmp_path)
    image = "registry.example.com/forescale:0.1.0"
    (tmp_path / "forescale.nomad.hcl").write_text(render_self(config, SelfJob(image=image)))
    (tmp_path / "forescale-periodic.nomad.hcl").write_text(render_self(config, SelfJob(mode="periodic", image=image)))
    assert {p.name for p in paths} >= {"ml-workers.nomad.hcl", "ml-workers.ocr.docker-compose.yml"}
    got = (tmp_path / name).read_text()
    golden = GOLDEN / name
    if os.environ.get("FORESCALE_UPDATE_GOLDEN") == "1":
        golden.write_text(got)
    assert golden.exists(), f"missing {golden}; run with FORESCALE_UPDATE_GOLDEN=1 once"
    want = golden.read_text()
    if got != want:
        diff = "".join(
            list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(golden), "rendered"))[:60]
        )
        pytest.fail(f"{name} differs from the golden file (FORESCALE_UPDATE_GOLDEN=1 to accept):\n{diff}")


def test_self_job_service_and_periodic() -> None:
    config = example()
    service = job_of(parse_hcl(render_self(config, SelfJob(image="forescale:0.1.0"))))[1]
    assert service["type"] == "service"
    task = tasks_of(groups_of(service)["forescale"])["forescale"]
    assert task["config"][0]["args"] == ["run", "--config", "/local/forescale.yaml"]
    embedded = yaml.safe_load(heredoc_data(template(task, "local/forescale.yaml")["data"]))
    assert embedded["pools"][0]["query"] == 'sum(rate(http_requests_total{service="ocr"}[5m]))'
    assert embedded["daemon"] == {"listen_host": "0.0.0.0", "listen_port": 9464}
    secrets = template(task, "secrets/forescale.env")
    assert secrets["env"] is True and "NOMAD_TOKEN" in secrets["data"] and "nomadVar" in secrets["data"]
    assert "NOMAD_TOKEN=" not in heredoc_data(template(task, "local/forescale.yaml")["data"])

    periodic = job_of(parse_hcl(render_self(config, SelfJob(mode="periodic"))))[1]
    assert periodic["type"] == "batch"
    assert periodic["periodic"][0]["crons"] == ["*/20 * * * *"]
    assert periodic["periodic"][0]["prohibit_overlap"] is True
    ptask = tasks_of(groups_of(periodic)["forescale"])["forescale"]
    assert ptask["config"][0]["args"][0] == "tick"


# ---------------------------------------------------------------- validation


def test_kill_timeout_below_drain_plus_stop_plus_margin_is_rejected(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"drain_timeout": "60s", "stop_timeout": "10s", "kill_timeout": "30s"})
    with pytest.raises(ConfigError) as err:
        render_jobs(config)
    (problem,) = err.value.problems
    assert problem.startswith("pools[0] (ocr).jobspec.kill_timeout: 30s is below")
    assert "1m20s" in problem and "raise kill_timeout" in problem


def test_kill_timeout_above_max_kill_timeout_of_nomad_hcl_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "client.hcl").write_text('client {\n  node_pool = "gpu"\n  max_kill_timeout = "45s"\n}\n')
    config = config_with(tmp_path, {"max_kill_timeout": None, "nomad_client_config": "client.hcl"})
    with pytest.raises(ConfigError) as err:
        render_jobs(config)
    (problem,) = err.value.problems
    assert "1m20s exceeds the clients' max_kill_timeout 45s" in problem
    assert str(tmp_path / "client.hcl") in problem and "max_kill_timeout in nomad.hcl" in problem
    # Shorter drain fits: 25 + 10 + 10 = 45s.
    ok = config_with(tmp_path, {"max_kill_timeout": None, "nomad_client_config": "client.hcl", "drain_timeout": "25s"})
    assert render_jobs(ok)


def test_repo_nomad_hcl_is_the_default_bound() -> None:
    from autoscaler.jobspec.client import max_kill_timeout

    config = example()
    js = config.pools[1].jobspec
    assert js is not None
    cap, where = max_kill_timeout(js, config)
    assert cap == parse_duration("5m") and where.endswith("nomad.hcl")


def test_missing_or_broken_client_config_is_a_clear_error(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"max_kill_timeout": None, "nomad_client_config": "nope.hcl"})
    with pytest.raises(ConfigError, match=r"jobspec\.nomad_client_config: .*not found"):
        render_jobs(config)
    (tmp_path / "bad.hcl").write_text("client {\n")
    config = config_with(tmp_path, {"max_kill_timeout": None, "nomad_client_config": "bad.hcl"})
    with pytest.raises(ConfigError, match="not valid HCL"):
        render_jobs(config)


def test_workers_times_gpu_memory_must_fit_the_gpu(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"workers_per_gpu": 4, "worker_gpu_memory": "5GiB", "gpu_memory": "16GiB"})
    with pytest.raises(ConfigError) as err:
        render_jobs(config)
    assert "4 workers × 5120 MiB = 20480 MiB exceed gpu_memory 16384 MiB; lower workers_per_gpu to 3" in str(err.value)
    config = config_with(tmp_path, {"workers_per_gpu": 3, "worker_gpu_memory": "5GiB"})
    with pytest.raises(ConfigError, match=r"jobspec\.gpu_memory: required with worker_gpu_memory"):
        render_jobs(config)


def test_lead_time_shorter_than_image_pull_warns_but_renders(tmp_path: Path) -> None:
    limits = {"worker_cpus": 1, "worker_memory": "4GiB"}
    config = config_with(tmp_path, {"image_pull_time": "12m", **limits}, lead_time="10m")
    (warning,) = check_config(config).warnings
    assert "pulling the image (12m) takes longer than the pool's lead_time (10m)" in warning
    assert render_jobs(config)
    never = config_with(tmp_path, {"image_pull_time": "12m", "pull_policy": "never", **limits}, lead_time="10m")
    assert check_config(never).warnings == []


def test_pools_sharing_a_job_must_agree_on_job_level_fields(tmp_path: Path) -> None:
    pools = []
    for name, node_pool in (("a", "gpu"), ("b", "gpu-big")):
        pools.append(
            {
                "name": name,
                "query": "up",
                "nomad": {"job": "shared", "group": name},
                "capacity_per_node": 1,
                "max": 2,
                "jobspec": {"image": "x:1", "node_pool": node_pool, "max_kill_timeout": "5m"},
            }
        )
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump({"pools": pools}))
    with pytest.raises(ConfigError, match=r"pools\[1\] \(b\)\.jobspec\.node_pool: .*share job shared"):
        render_jobs(load_config(path))


def test_render_without_jobspec_or_unknown_pool_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "pools": [
                    {"name": "a", "query": "up", "nomad": {"job": "j", "group": "g"}, "capacity_per_node": 1, "max": 2}
                ]
            }
        )
    )
    config = load_config(path)
    with pytest.raises(ConfigError, match="no pool has a jobspec"):
        render_jobs(config)
    with pytest.raises(ConfigError, match=r"jobspec: missing; add a jobspec: section"):
        render_jobs(config, ["a"])
    with pytest.raises(UnknownPool, match="unknown pool 'zz'"):
        render_jobs(config, ["zz"])


# ---------------------------------------------------------------- injection


INJECTIONS = ['x"; }', "x${attr.unique.hostname}", "x\ny", 'x{{ env "HOME" }}', "x%{ if true }", "x'$(id)'", "X"]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("pool", "name"),
        ("nomad", "job"),
        ("nomad", "group"),
        ("jobspec", "image"),
        ("jobspec", "node_pool"),
        ("jobspec", "node_class"),
        ("jobspec", "spread_attribute"),
        ("jobspec", "lock_dir"),
        ("jobspec", "entrypoint"),
        ("jobspec", "datacenters"),
        ("jobspec", "volumes"),
        ("jobspec", "secret_env"),
        ("jobspec", "env_name"),
        ("jobspec", "health_service_name"),
    ],
)
def test_names_reaching_hcl_yaml_or_shell_reject_injection(tmp_path: Path, where: str, key: str, payload: str) -> None:
    pool: dict[str, Any] = {
        "name": "ocr",
        "query": "up",
        "nomad": {"job": "j", "group": "g"},
        "capacity_per_node": 1,
        "max": 2,
        "jobspec": {"image": "x:1", "max_kill_timeout": "5m"},
    }
    js = pool["jobspec"]
    if where == "pool":
        pool[key] = payload
    elif where == "nomad":
        pool["nomad"][key] = payload
    elif key in ("datacenters", "secret_env"):
        js[key] = [payload]
    elif key == "volumes":
        js[key] = [f"/data/{payload}:/work"]
    elif key == "env_name":
        js["env"] = {payload: "v"}
    elif key == "health_service_name":
        js["health"] = {"service_name": payload}
    else:
        js[key] = f"/{payload}" if key in ("lock_dir", "entrypoint") else payload
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump({"pools": [pool]}))
    if payload == "X" and key in ("lock_dir", "entrypoint", "volumes", "secret_env", "env_name"):
        assert render_jobs(load_config(path)), "upper case is fine in paths and env names"
        return
    with pytest.raises(ConfigError) as err:
        render_jobs(load_config(path))
    assert str(path) == err.value.path
    assert err.value.problems, "names the key and the fix"


VALUES = [
    'say "hi"',
    "cost $5 or ${HOME} or $$",
    '{{ env "NOMAD_TOKEN" }}',
    "%{ if x }y%{ endif }",
    "back\\slash",
    "'$(rm -rf /)'",
    "ünïcode ✓",
    "FORESCALE_EOF",
    "-- --project other",
]


@pytest.mark.parametrize("value", VALUES)
def test_free_form_values_are_escaped_through_every_layer(tmp_path: Path, value: str) -> None:
    config = config_with(
        tmp_path,
        {"env": {"NOTE": value}, "command": ["serve", value]},
    )
    config.nomad.namespace = value if "\n" not in value else "x"
    (rendered,) = render_jobs(config)
    _, job = job_of(parse_hcl(rendered.hcl))
    assert hcl_unescape(job["namespace"]) == value
    workers = tasks_of(groups_of(job)["ocr"])["workers"]
    compose_text = heredoc_data(template(workers, "local/docker-compose.yml")["data"])
    svc = yaml.safe_load(compose_text)["services"]["worker-1"]
    # compose doubles-$ escaping: "$$" in the file is a literal "$" for compose.
    assert f"NOTE={value}".replace("$", "$$") in svc["environment"]
    assert svc["command"] == ["serve", value.replace("$", "$$")]
    # The args of the raw_exec task are fixed: nothing from the config reaches the command line.
    assert workers["config"][0]["args"][:3] == ["run", "--project", "ocr-${NOMAD_ALLOC_ID}"]


@pytest.mark.parametrize("value", ["cost $5 or ${HOME}", 'say "hi" {{x}}', "a\\b"])
def test_compose_cli_sees_the_exact_value(tmp_path: Path, value: str) -> None:
    """docker-compose's own parser (no daemon needed) resolves the escaped env value to the original."""
    if shutil.which("docker-compose") is None:
        require_service("docker", "docker-compose is not installed (scripts/ci/setup.sh installs it)")
    config = config_with(tmp_path, {"env": {"NOTE": value}, "workers_per_gpu": 1})
    compose = tmp_path / "c.yml"
    compose.write_text(render_compose(config, config.pools[0]))
    env = {
        "PATH": os.environ["PATH"],
        "NVIDIA_VISIBLE_DEVICES": "GPU-1",
        "NOMAD_ALLOC_ID": "abc",
        "HOME": "/should-not-appear",
    }
    out = subprocess.run(
        ["docker-compose", "-p", "x", "-f", str(compose), "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)["services"]["worker-1"]
    # `config` re-escapes $ as $$ in its output; undo that to get what the container receives.
    assert resolved["environment"]["NOTE"].replace("$$", "$") == value
    assert resolved["environment"]["NVIDIA_VISIBLE_DEVICES"] == "GPU-1"
    assert resolved["labels"]["io.forescale.alloc"] == "abc"


def test_example_compose_files_are_valid_for_docker_compose(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        require_service("docker", "docker-compose is not installed (scripts/ci/setup.sh installs it)")
    (rendered,) = render_jobs(example())
    for group, text in rendered.compose.items():
        path = tmp_path / f"{group}.yml"
        path.write_text(text)
        out = subprocess.run(
            ["docker-compose", "-p", "x", "-f", str(path), "config", "--services"],
            env={"PATH": os.environ["PATH"], "NVIDIA_VISIBLE_DEVICES": "GPU-1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        js = example().pool(group).jobspec
        assert js is not None
        assert out.stdout.split() == [f"worker-{i}" for i in range(1, js.workers_per_gpu + 1)]


def test_newline_in_env_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="newlines and control characters are not allowed"):
        config_with(tmp_path, {"env": {"A": "x\ny"}})


def test_heredoc_marker_line_is_refused() -> None:
    with pytest.raises(ConfigError, match="FORESCALE_EOF"):
        heredoc_body("a\nFORESCALE_EOF\nb")


# ---------------------------------------------------------------- CLI


def test_render_cli_writes_files(tmp_path: Path) -> None:
    out = tmp_path / "jobs"
    result = CliRunner().invoke(app, ["render", "--config", str(EXAMPLE), "--out", str(out), "--self"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "forescale.nomad.hcl",
        "ml-workers.face-match.docker-compose.yml",
        "ml-workers.nomad.hcl",
        "ml-workers.ocr.docker-compose.yml",
    ]
    parse_hcl((out / "ml-workers.nomad.hcl").read_text())


def test_config_check_reports_jobspec_problems(tmp_path: Path) -> None:
    config_with(tmp_path, {"kill_timeout": "5s"})
    result = CliRunner().invoke(app, ["config", "check", str(tmp_path / "forescale.yaml")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert any("jobspec.kill_timeout" in p for p in result.exception.problems)


def test_parse_config_accepts_sizes_in_any_unit(tmp_path: Path) -> None:
    for text, mib in (("16GiB", 16384), ("4096MiB", 4096), ("12g", 12288), (2048, 2048)):
        cfg = parse_config(
            json.dumps(
                {
                    "pools": [
                        {
                            "name": "a",
                            "query": "up",
                            "nomad": {"job": "j", "group": "g"},
                            "capacity_per_node": 1,
                            "max": 2,
                            "jobspec": {"image": "x:1", "gpu_memory": text},
                        }
                    ]
                }
            ),
            tmp_path / "c.yaml",
        )
        assert cfg.pools[0].jobspec is not None and cfg.pools[0].jobspec.gpu_memory == mib


# ---------------------------------------------------------------- the job must be placeable on the clients


def client_hcl(tmp_path: Path, body: str) -> str:
    path = tmp_path / "client.hcl"
    path.write_text(body)
    return str(path)


def test_the_example_passes_the_t4_memory_and_datacenter_checks() -> None:
    config = example()
    assert check_config(config).problems == []
    client = read_client_config(REPO / "nomad.hcl")
    assert client.datacenter_set and client.meta["gpu_model"] == "tesla-t4"
    ocr = config.pools[0].jobspec
    assert ocr is not None and ocr.gpu_memory is not None
    assert ocr.gpu_memory <= 15079, "a T4 reports 15079-15110 MiB as ${device.attr.memory}"
    for pool in config.pools:
        assert pool.jobspec is not None and client.datacenter in pool.jobspec.datacenters
        assert pool.jobspec.node_pool == client.node_pool
    for path in (REPO / "forescale.example.yaml",):
        shipped = load_config(path)
        assert check_config(shipped).problems == [], path
        js = shipped.pools[0].jobspec
        assert js is not None and js.gpu_memory is not None and js.gpu_memory <= 15079


def test_a_nominal_16gib_constraint_matches_no_t4(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"gpu_memory": "16GiB", "node_class": "gpu-t4"})
    problems = check_config(config).problems
    (problem,) = [p for p in problems if "gpu_memory" in p]
    assert "16384 MiB, but a tesla-t4 (meta.gpu_model of" in problem
    assert "reports only 15079-15110 MiB as ${device.attr.memory}" in problem
    assert "require at most 15079MiB" in problem and "nomad node status -verbose" in problem
    explicit = config_with(tmp_path, {"gpu_memory": "15100MiB", "gpu_model": "Tesla T4"})
    assert any("a Tesla T4 (jobspec.gpu_model) reports only" in p for p in check_config(explicit).problems)
    fits = config_with(tmp_path, {"gpu_memory": "15000MiB", "gpu_model": "nvidia-t4"})
    assert not any("gpu_memory" in p for p in check_config(fits).problems)


def test_an_unknown_gpu_model_at_a_nominal_size_is_a_warning(tmp_path: Path) -> None:
    path = client_hcl(tmp_path, 'datacenter = "dc1"\nclient {\n  node_pool = "gpu"\n}\n')
    config = config_with(tmp_path, {"gpu_memory": "24GiB", "nomad_client_config": path, "datacenters": ["dc1"]})
    result = check_config(config)
    assert result.problems == []
    assert any("24GiB is a nominal GPU size, but Nomad sees less" in w for w in result.warnings)


def test_datacenters_node_pool_and_class_must_agree_with_the_client_config(tmp_path: Path) -> None:
    bare = client_hcl(tmp_path, 'client {\n  node_pool = "gpu"\n  node_class = "gpu-t4"\n}\n')
    pinned = {"nomad_client_config": bare, "datacenters": ["eu-west-1a", "eu-west-1b"]}
    (problem,) = check_config(config_with(tmp_path, pinned)).problems
    assert "jobspec.datacenters: the clients of" in problem
    assert "are in datacenter 'dc1' (Nomad's default: it sets no datacenter)" in problem
    assert "runs only in eu-west-1a, eu-west-1b: Nomad would place nothing" in problem
    assert check_config(config_with(tmp_path, {**pinned, "datacenters": ["*"]})).problems == []
    assert check_config(config_with(tmp_path, {**pinned, "datacenters": ["eu-west-1a", "dc1"]})).problems == []
    mismatch = {"nomad_client_config": bare, "node_pool": "gpu-big", "node_class": "gpu-a10"}
    problems = check_config(config_with(tmp_path, mismatch)).problems
    assert any("jobspec.node_pool: 'gpu-big' but the clients of" in p and "node pool 'gpu'" in p for p in problems)
    assert any("jobspec.node_class: 'gpu-a10' but the clients of" in p and "'gpu-t4'" in p for p in problems)
    with pytest.raises(ConfigError, match="Nomad would place nothing"):
        render_jobs(config_with(tmp_path, pinned))


def test_the_task_reserves_the_workers_total(tmp_path: Path) -> None:
    limits = {"workers_per_gpu": 3, "worker_cpus": 2, "worker_memory": "4GiB", "cpu_mhz_per_core": 3000}
    (rendered,) = render_jobs(config_with(tmp_path, limits))
    workers = tasks_of(groups_of(job_of(parse_hcl(rendered.hcl))[1])["ocr"])["workers"]
    resources = workers["resources"][0]
    assert (resources["cpu"], resources["memory"]) == (200 + 3 * 2 * 3000, 256 + 3 * 4096)
    compose = yaml.safe_load(rendered.compose["ocr"])["services"]
    assert sum(svc["cpus"] for svc in compose.values()) == 6 and {svc["mem_limit"] for svc in compose.values()} == {
        "4096m"
    }
    bare = config_with(tmp_path, {"workers_per_gpu": 3})
    warnings = check_config(bare).warnings
    assert any("set worker_cpus and worker_memory: the job then reserves 3 × each" in w for w in warnings)
    (rendered,) = render_jobs(bare)
    workers = tasks_of(groups_of(job_of(parse_hcl(rendered.hcl))[1])["ocr"])["workers"]
    assert (workers["resources"][0]["cpu"], workers["resources"][0]["memory"]) == (200, 256)


def test_render_self_refusal_names_the_use_not_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid config that does not suit forescale's own job (loopback Prometheus) is not called invalid."""
    from tests.cli_helpers import run_cli

    cfg = tmp_path / "forescale.yaml"
    text = EXAMPLE.read_text().replace("http://prometheus.service.consul:9090", "http://127.0.0.1:9090")
    assert text != EXAMPLE.read_text()
    cfg.write_text(text)
    res = run_cli(["render", "--config", str(cfg), "--out", str(tmp_path / "jobs"), "--self"], capsys, monkeypatch)
    assert res.code == 2
    errors = [line for line in res.err.splitlines() if line.startswith("error")]
    assert errors == [f"error: cannot render forescale's own job with {cfg}:"], res.err
    assert "prometheus.url http://127.0.0.1:9090: a loopback address" in res.text
