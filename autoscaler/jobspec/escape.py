"""Escaping for every layer a rendered job has, one function per layer, and the Jinja2 environment that applies them.

Jinja2 with Nomad Pack's delimiters (``[[ ]]``, ``[% %]``, ``[# #]``) so Nomad's own ``{{ }}`` template
syntax passes through. Names reach the templates only after the ``[a-z0-9-]`` check; every other string is
escaped for its layer (HCL string, HCL heredoc + consul-template, compose YAML + compose interpolation).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import jinja2

from autoscaler.core.errors import ConfigError
from autoscaler.core.resources import bundled

HEREDOC_MARKER = "FORESCALE_EOF"


def hcl_string(value: object) -> str:
    """A quoted HCL string literal: JSON escapes plus HCL's ``$${`` / ``%%{`` so nothing is interpolated."""
    text = json.dumps(str(value), ensure_ascii=False)
    return text.replace("${", "$${").replace("%{", "%%{")


def hcl_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(hcl_string(v) for v in values) + "]"


def heredoc_body(text: str) -> str:
    """Text for a ``<<FORESCALE_EOF`` template ``data``: escaped for consul-template, then for HCL."""
    text = text.rstrip("\n")
    if any(line.strip() == HEREDOC_MARKER for line in text.splitlines()):
        raise ConfigError("template", [f"a line may not consist of {HEREDOC_MARKER} (it ends the heredoc)"])
    text = text.replace("{{", '{{"{{"}}')  # consul-template: a literal "{{"
    return text.replace("${", "$${").replace("%{", "%%{")  # HCL heredoc: literal "${" and "%{"


def yaml_string(value: object) -> str:
    """A compose YAML scalar: ``$`` doubled (no compose interpolation), then JSON quoting (valid YAML)."""
    return json.dumps(str(value).replace("$", "$$"), ensure_ascii=True)


def yaml_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(yaml_string(v) for v in values) + "]"


def environment() -> jinja2.Environment:
    """The templates' environment: Nomad Pack delimiters, strict undefined, the escaping filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(bundled("jobspecs", "ml-worker.nomad.hcl.j2").parent)),
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        hcl=hcl_string, hcl_list=hcl_list, heredoc=heredoc_body, yaml_str=yaml_string, yaml_list=yaml_list
    )
    return env
