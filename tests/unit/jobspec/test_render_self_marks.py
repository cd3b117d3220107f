"""`render --self` walks the schema's marks: on a config with every secret-bearing field set and a pool with a
`command` node provider, the job embeds no secret (file values, URL credentials, the renderer's environment),
lists every secret's variable in its Nomad Variable template, and embeds the command's program next to the
config, where the allocation's config finds it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import load_config
from autoscaler.core.errors import ConfigError
from autoscaler.jobspec.selfjob import SelfJob, render_self, secret_env_names, self_job_warnings
from tests import REPO
from tests.unit.jobspec.test_render import heredoc_data, template
from tests.unit.jobspec.test_render_self import action_template, place_files, task_of

SECRETS = {
    "slack.token": "xoxb-FILE-TOKEN-0001",
    "slack.webhook_url": "https://hooks.slack.com/services/T0/B0/FILEHOOKSECRET",
    "prometheus password": "PROMPASS",
    "nomad password": "NOMADPASS",
    "ui password": "UIPASS",
    "slack base password": "SLACKBASEPASS",
    "aws endpoint password": "AWSPASS",
    "command env": "CMD-ENV-SECRET",
}
ENVIRONMENT = {  # what the renderer's own environment holds: never copied into the job either
    "NOMAD_TOKEN": "ENV-NOMAD-TOKEN",
    "SLACK_BOT_TOKEN": "xoxb-ENV-TOKEN",
    "PROM_AUTH": "Bearer ENV-PROM",
    "INVENTORY_TOKEN": "ENV-INVENTORY",
}


def config_file(tmp_path: Path, program: Path | None = None) -> Path:
    program = program or tmp_path / "providers" / "inventory"
    if not program.exists():
        program.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "scripts" / "nodes" / "inventory", program)
    data: dict[str, Any] = {
        "prometheus": {
            "url": "https://prom:PROMPASS@prometheus.service.consul:9090",
            "headers_env": {"Authorization": "PROM_AUTH"},
        },
        "nomad": {
            "address": "https://ops:NOMADPASS@nomad.service.consul:4646",
            "ui_url": "https://ops:UIPASS@nomad-ui.example.com",
        },
        "overrides": {"store": "nomad"},
        "slack": {
            "channel": "#ops",
            "token": SECRETS["slack.token"],
            "webhook_url": SECRETS["slack.webhook_url"],
            "base_url": "https://proxy:SLACKBASEPASS@slack-proxy.example.com/api/",
        },
        "pools": [
            {
                "name": "onprem",
                "query": "up",
                "nomad": {"job": "ml", "group": "onprem"},
                "capacity_per_node": 10,
                "max": 5,
                "nodes": {
                    "provider": "command",
                    "node_pool": "gpu-onprem",
                    "command": {
                        "path": os.path.relpath(program, tmp_path),
                        "args": ["--file", "/etc/forescale/gpu-hosts.txt"],
                        "env": {"INVENTORY_TOKEN": SECRETS["command env"]},
                    },
                },
            },
            {
                "name": "cloud",
                "query": "up",
                "nomad": {"job": "ml", "group": "cloud"},
                "capacity_per_node": 10,
                "max": 5,
                "nodes": {
                    "provider": "aws_asg",
                    "node_pool": "gpu-cloud",
                    "aws": {"asg_name": "gpu", "endpoint_url": "http://key:AWSPASS@aws-proxy.internal:5000"},
                },
            },
        ],
    }
    path = tmp_path / "forescale.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)


def test_no_secret_reaches_the_job_and_every_secret_variable_is_listed(tmp_path: Path, env: None) -> None:
    config = load_config(config_file(tmp_path))
    hcl = render_self(config, SelfJob())
    for what, secret in {**SECRETS, **ENVIRONMENT}.items():
        assert secret not in hcl, what
    assert "@" not in yaml.dump(yaml.safe_load(heredoc_data(template(task_of(hcl), "local/forescale.yaml")["data"])))
    keys = ["PROM_AUTH", "NOMAD_TOKEN", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "INVENTORY_TOKEN"]
    assert secret_env_names(config) == keys  # schema order
    body = action_template(template(task_of(hcl), "secrets/forescale.env")["data"])
    for key in keys:
        assert f"{{{{ if .{key} }}}}{key}={{{{ .{key} | toJSON }}}}{{{{ end }}}}" in body
    assert f"nomad var put nomad/jobs/forescale {' '.join(f'{k}=...' for k in keys)}" in hcl


def test_the_embedded_config_keeps_what_is_not_secret_and_loads_in_the_allocation(tmp_path: Path, env: None) -> None:
    config = load_config(config_file(tmp_path))
    task = task_of(render_self(config, SelfJob()))
    embedded = yaml.safe_load(heredoc_data(template(task, "local/forescale.yaml")["data"]))
    assert embedded["prometheus"] == {
        "url": "https://prometheus.service.consul:9090",
        "headers_env": {"Authorization": "PROM_AUTH"},
    }
    assert embedded["nomad"]["address"] == "https://nomad.service.consul:4646"
    assert embedded["nomad"]["ui_url"] == "https://nomad-ui.example.com"
    assert embedded["slack"] == {"channel": "#ops", "base_url": "https://slack-proxy.example.com/api/"}
    command = embedded["pools"][0]["nodes"]["command"]
    assert command == {"path": "bin/onprem-inventory", "args": ["--file", "/etc/forescale/gpu-hosts.txt"], "env": {}}
    assert embedded["pools"][1]["nodes"]["aws"]["endpoint_url"] == "http://aws-proxy.internal:5000"
    alloc = tmp_path / "alloc-task"
    place_files(task, alloc)
    inside = load_config(alloc / "local" / "forescale.yaml")
    program = inside.pools[0].nodes.command.path  # type: ignore[union-attr]
    assert program == alloc / "local" / "bin" / "onprem-inventory"
    assert program.read_text() == (REPO / "scripts" / "nodes" / "inventory").read_text()


def test_the_program_is_an_executable_template(tmp_path: Path, env: None) -> None:
    task = task_of(render_self(load_config(config_file(tmp_path)), SelfJob()))
    embedded = template(task, "local/bin/onprem-inventory")
    assert embedded["perms"] == "0755"
    assert heredoc_data(embedded["data"]).startswith("#!/usr/bin/env python3\n")


def test_warnings_say_where_each_secret_goes_instead(tmp_path: Path, env: None) -> None:
    config = load_config(config_file(tmp_path))
    warnings = self_job_warnings(config, SelfJob())
    text = "\n".join(warnings)
    for secret in {**SECRETS, **ENVIRONMENT}.values():
        assert secret not in text
    assert (
        "slack.token is not embedded in the job (a secret): put it in the Nomad Variable nomad/jobs/forescale "
        "as SLACK_BOT_TOKEN" in text
    )
    assert (
        "pools[0].nodes.command.env.INVENTORY_TOKEN is not embedded in the job (a secret): put it in the Nomad "
        "Variable nomad/jobs/forescale as INVENTORY_TOKEN (the command inherits forescale's environment)" in text
    )
    for key in ("prometheus.url", "nomad.address", "nomad.ui_url", "slack.base_url", "pools[1].nodes.aws.endpoint_url"):
        assert f"{key} carries credentials; they are not embedded in the job" in text, key
    assert "files its args name (--file /etc/forescale/gpu-hosts.txt) must exist inside the allocation" in text


def test_a_binary_program_cannot_be_embedded_and_the_fix_is_named(tmp_path: Path, env: None) -> None:
    binary = tmp_path / "providers" / "provider-bin"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    config = load_config(config_file(tmp_path, binary))
    with pytest.raises(ConfigError) as info:
        render_self(config, SelfJob())
    (problem,) = info.value.problems
    assert problem.startswith(f"pools[0].nodes.command.path: {binary} is not a script forescale can embed")
    assert "write a short script that runs it" in problem
