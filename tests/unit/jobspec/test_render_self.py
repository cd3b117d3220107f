"""`forescale render --self`: forescale's own job deploys as is — what the allocation's templates write is a
config that loads there (schedule file found next to it, state on the sticky disk, overrides in Nomad
Variables), secrets only ever come from the Nomad Variable, and addresses that cannot work inside a
container (loopback) are refused with the fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config import load_config
from autoscaler.core.errors import ConfigError
from autoscaler.jobspec.selfjob import SELF_IMAGE, SelfJob, is_loopback, render_self
from overrides.schedule import schedule_for
from tests.unit.jobspec.test_render import (
    EXAMPLE,
    GOLDEN,
    groups_of,
    heredoc_data,
    job_of,
    parse_hcl,
    tasks_of,
    template,
)

SCHEDULE = "timezone: Europe/Berlin\nrules:\n  - {name: day, pool: ocr, days: daily, window: '08:00-20:00', min: 3}\n"


def write_config(tmp_path: Path, **over: Any) -> Path:
    data: dict[str, Any] = {
        "prometheus": {"url": "http://prometheus.service.consul:9090"},
        "nomad": {"address": "https://nomad.service.consul:4646"},
        "overrides": {"store": "nomad", "schedule_file": "rules/schedule.yaml"},
        "pools": [
            {"name": "ocr", "query": "up", "nomad": {"job": "ml", "group": "ocr"}, "capacity_per_node": 10, "max": 5}
        ],
    }
    for key, value in over.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "schedule.yaml").write_text(SCHEDULE)
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def action_template(value: str) -> str:
    """A heredoc that is meant to hold consul-template actions (the Variable lookups), unescaped."""
    match = re.fullmatch(r"<<(\w+)\n(.*)\n\1", value, re.S)
    assert match, value[:80]
    return match.group(2) + "\n"


def task_of(hcl: str) -> dict[str, Any]:
    job = job_of(parse_hcl(hcl))[1]
    return tasks_of(groups_of(job)["forescale"])["forescale"]


def place_files(task: dict[str, Any], task_dir: Path) -> None:
    """Write the non-secret templates where Nomad would (task_dir/local/…), as consul-template renders them."""
    for tpl in task["template"]:
        if tpl["destination"].startswith("local/"):
            path = task_dir / tpl["destination"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(heredoc_data(tpl["data"]))


def test_the_embedded_config_loads_in_the_allocation_with_its_schedule(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    task = task_of(render_self(config, SelfJob()))
    assert task["config"][0]["image"] == SELF_IMAGE
    # The config path is where the docker driver mounts the task's local/ dir.
    assert task["config"][0]["args"] == ["run", "--config", "/local/forescale.yaml"]
    alloc = tmp_path / "alloc-task"
    place_files(task, alloc)
    assert (alloc / "local" / "schedule.yaml").read_text() == SCHEDULE
    inside = load_config(alloc / "local" / "forescale.yaml")
    assert inside.overrides.schedule_file == alloc / "local" / "schedule.yaml"  # next to the config
    assert [rule.name for rule in schedule_for(inside).rules] == ["day"]
    assert inside.overrides.store == "nomad"
    assert str(inside.audit_log) == "/alloc/data/forescale-audit.jsonl"  # the sticky, migrating disk
    assert (inside.daemon.listen_host, inside.daemon.listen_port) == ("0.0.0.0", 9464)
    assert inside.prometheus.url == "http://prometheus.service.consul:9090"
    assert inside.nomad.address == "https://nomad.service.consul:4646"


def test_the_nomad_store_is_the_default_and_a_file_store_is_kept_on_the_sticky_disk(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, overrides={"store": "file"}))
    default = task_of(render_self(config, SelfJob()))
    embedded = yaml.safe_load(heredoc_data(template(default, "local/forescale.yaml")["data"]))
    assert embedded["overrides"]["store"] == "nomad"
    as_file_hcl = render_self(config, SelfJob(override_store="file"))
    assert groups_of(job_of(parse_hcl(as_file_hcl))[1])["forescale"]["count"] == 1  # one file, one daemon
    as_file = task_of(as_file_hcl)
    embedded = yaml.safe_load(heredoc_data(template(as_file, "local/forescale.yaml")["data"]))
    assert embedded["overrides"] == {"store": "file", "path": "/alloc/data/forescale-overrides.json"}


def test_cli_warns_when_the_local_config_would_write_overrides_elsewhere(tmp_path: Path) -> None:
    path = write_config(tmp_path, overrides={"store": "file"})
    result = CliRunner().invoke(app, ["render", "-c", str(path), "--self", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "set overrides.store: nomad there too" in result.output
    assert "next: nomad var put nomad/jobs/forescale NOMAD_TOKEN=…" in result.output  # what to do next
    # No pool has a jobspec: only forescale's own job is written.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["forescale.nomad.hcl"]


def test_secrets_come_only_from_the_nomad_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_TOKEN", "s3cr3t-nomad-token")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-s3cr3t")
    config = load_config(write_config(tmp_path, slack={"channel": "#ops"}))
    hcl = render_self(config, SelfJob())
    assert "s3cr3t" not in hcl  # the renderer's environment never reaches the job
    task = task_of(hcl)
    secrets = template(task, "secrets/forescale.env")
    assert secrets["env"] is True
    body = action_template(secrets["data"])
    assert body.startswith('{{ with nomadVar "nomad/jobs/forescale" }}')
    for key in ("NOMAD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"):
        assert f"{{{{ if .{key} }}}}{key}={{{{ .{key} | toJSON }}}}{{{{ end }}}}" in body
    # Every other template is plain data (escaped), never a Variable lookup.
    others = [t for t in task["template"] if t["destination"] != "secrets/forescale.env"]
    assert others and all("nomadVar" not in heredoc_data(t["data"]).replace('{{"{{"}}', "") for t in others)


def test_tls_files_ca_embedded_client_key_from_the_variable_readable_by_the_image_user(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    nomad = {
        "address": "https://nomad.service.consul:4646",
        "ca_cert": "ca.pem",
        "client_cert": "/home/me/client.pem",
        "client_key": "/home/me/client-key.pem",
    }
    config = load_config(write_config(tmp_path, nomad=nomad))
    hcl = render_self(config, SelfJob())
    assert "/home/me" not in hcl.split("FORESCALE_EOF")[1]  # laptop paths do not reach the allocation config
    task = task_of(hcl)
    assert heredoc_data(template(task, "local/nomad-ca.pem")["data"]).startswith("-----BEGIN CERTIFICATE-----")
    key = template(task, "secrets/nomad-client-key.pem")
    assert (key["perms"], key["uid"], key["gid"]) == ("0400", 10001, 10001)
    lookup = '{{ with nomadVar "nomad/jobs/forescale" }}{{ .NOMAD_CLIENT_KEY }}{{ end }}'
    assert action_template(key["data"]).strip() == lookup
    place_files(task, tmp_path / "alloc")
    inside = load_config(tmp_path / "alloc" / "local" / "forescale.yaml")
    assert inside.nomad.ca_cert == tmp_path / "alloc" / "local" / "nomad-ca.pem"
    assert str(inside.nomad.client_key) == "/secrets/nomad-client-key.pem"
    assert "NOMAD_CLIENT_CERT=@file.pem NOMAD_CLIENT_KEY=@file.pem" in hcl.splitlines()[2]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9090", "http://localhost:9090", "http://[::1]:9090", "http://0.0.0.0:9090", "http://127.3.2.1"],
)
def test_loopback_prometheus_is_refused_with_the_fix(tmp_path: Path, url: str) -> None:
    assert is_loopback(url)
    config = load_config(write_config(tmp_path, prometheus={"url": url}))
    with pytest.raises(ConfigError) as err:
        render_self(config, SelfJob())
    (problem,) = err.value.problems
    assert problem.startswith(f"prometheus.url {url}: a loopback address inside the allocation")
    assert "--self-prometheus-url" in problem
    fixed = task_of(render_self(config, SelfJob(prometheus_url="http://prom.internal:9090")))
    embedded = yaml.safe_load(heredoc_data(template(fixed, "local/forescale.yaml")["data"]))
    assert embedded["prometheus"]["url"] == "http://prom.internal:9090"


def test_loopback_nomad_from_the_environment_is_refused_naming_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:4646")
    config = load_config(write_config(tmp_path, nomad=None))
    with pytest.raises(ConfigError) as err:
        render_self(config, SelfJob())
    (problem,) = err.value.problems
    assert problem.startswith("nomad.address (not set in the file: taken from $NOMAD_ADDR or the default)")
    with pytest.raises(ConfigError, match="--self-nomad-addr http://localhost:4646: a loopback"):
        render_self(config, SelfJob(nomad_address="http://localhost:4646"))
    # A reachable $NOMAD_ADDR is written into the embedded config (the container has no $NOMAD_ADDR).
    monkeypatch.setenv("NOMAD_ADDR", "https://nomad.example.internal:4646")
    config = load_config(write_config(tmp_path, nomad=None))
    task = task_of(render_self(config, SelfJob()))
    embedded = yaml.safe_load(heredoc_data(template(task, "local/forescale.yaml")["data"]))
    assert embedded["nomad"]["address"] == "https://nomad.example.internal:4646"


def test_hosts_that_merely_look_local_are_not_refused() -> None:
    for url in ("http://prometheus:9090", "https://10.0.0.5:4646", "http://localhost-proxy.internal", "http://[fd00::1]"):
        assert not is_loopback(url), url


def test_two_daemons_by_default_because_leader_election_is_on(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))  # leader election is on by default
    hcl = render_self(config, SelfJob())
    group = groups_of(job_of(parse_hcl(hcl))[1])["forescale"]
    assert group["count"] == 2
    assert group["spread"][0]["attribute"] == "${node.unique.id}"  # on different nodes where there are several
    embedded = yaml.safe_load(heredoc_data(template(task_of(hcl), "local/forescale.yaml")["data"]))
    assert embedded.get("leader", {}).get("enabled", True) is True  # the embedded config keeps it on
    assert "write on forescale/leader (the leader lock)" in hcl.split('job "forescale"')[0]  # the token's ACL
    periodic = groups_of(job_of(parse_hcl(render_self(config, SelfJob(mode="periodic"))))[1])["forescale"]
    assert periodic["count"] == 1
    single = load_config(write_config(tmp_path, leader={"enabled": False}))
    alone = groups_of(job_of(parse_hcl(render_self(single, SelfJob())))[1])["forescale"]
    assert alone["count"] == 1 and "spread" not in alone


def test_several_daemons_need_leader_election(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    single = load_config(write_config(tmp_path, leader={"enabled": False}))
    with pytest.raises(ConfigError, match="--self-count 2: several daemons would each scale the pools"):
        render_self(single, SelfJob(count=2))
    with pytest.raises(ConfigError, match="a periodic job runs one `forescale tick` at a time"):
        render_self(config, SelfJob(mode="periodic", count=2))


def test_a_missing_schedule_file_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = load_config(path)
    (tmp_path / "rules" / "schedule.yaml").unlink()
    with pytest.raises(ConfigError, match=r"overrides.schedule_file: cannot read .*schedule.yaml to embed it"):
        render_self(config, SelfJob())


def test_cli_self_error_writes_nothing(tmp_path: Path) -> None:
    path = write_config(tmp_path, prometheus={"url": "http://127.0.0.1:9090"})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", "-c", str(path), "--self", "-o", str(out)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert not out.exists()


def test_golden_example_embeds_its_schedule() -> None:
    task = task_of(render_self(load_config(EXAMPLE), SelfJob()))
    schedule = heredoc_data(template(task, "local/schedule.yaml")["data"])
    assert schedule == (GOLDEN / "schedule.yaml").read_text()
