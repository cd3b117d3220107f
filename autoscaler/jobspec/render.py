"""`forescale render`: the pools' Nomad jobs and forescale's own, split on their seams.

    escape.py    escaping per layer (HCL string, heredoc + consul-template, compose YAML) and the Jinja2 environment
    client.py    the GPU clients' nomad.hcl and what a job must agree with in it
    workers.py   the pools' worker jobs: validate, render, write
    selfjob.py   forescale's own job (`render --self`)

This module re-exports their public names for one release, so ``from autoscaler.jobspec.render import …`` keeps
working; new code imports from the module that owns the name.
"""

from __future__ import annotations

from autoscaler.jobspec.client import (
    NOMAD_DEFAULT_MAX_KILL_TIMEOUT,
    ClientConfig,
    Validation,
    client_config_path,
    max_kill_timeout,
    read_client_config,
    read_max_kill_timeout,
)
from autoscaler.jobspec.escape import HEREDOC_MARKER, hcl_list, hcl_string, heredoc_body, yaml_list, yaml_string
from autoscaler.jobspec.selfjob import (
    SELF_IMAGE,
    SelfFile,
    SelfJob,
    is_loopback,
    leader_election_on,
    render_self,
    resolve_count,
    secret_env_names,
    self_job_warnings,
)
from autoscaler.jobspec.workers import (
    RenderedJob,
    check_config,
    has_jobspecs,
    render_compose,
    render_jobs,
    validate_pool,
    write_rendered,
)

__all__ = [
    "HEREDOC_MARKER",
    "NOMAD_DEFAULT_MAX_KILL_TIMEOUT",
    "SELF_IMAGE",
    "ClientConfig",
    "RenderedJob",
    "SelfFile",
    "SelfJob",
    "Validation",
    "check_config",
    "client_config_path",
    "has_jobspecs",
    "hcl_list",
    "hcl_string",
    "heredoc_body",
    "is_loopback",
    "leader_election_on",
    "max_kill_timeout",
    "read_client_config",
    "read_max_kill_timeout",
    "render_compose",
    "render_jobs",
    "render_self",
    "resolve_count",
    "secret_env_names",
    "self_job_warnings",
    "validate_pool",
    "write_rendered",
    "yaml_list",
    "yaml_string",
]
