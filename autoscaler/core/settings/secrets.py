"""Every secret value a Config knows: the one list redaction works from (``core.text.remember_secrets``).

``configured_secrets(config)`` walks the whole model, so a new section is covered by the same rules:

* a ``SecretStr`` field (``slack.token``, ``slack.webhook_url``) → its value;
* a field naming an environment variable that holds a secret (``*_env``, and the values of ``headers_env``) →
  that variable's value, when set;
* a URL with ``user:password@`` anywhere (``prometheus.url``, ``nomad.address``, ``nodes.aws.endpoint_url`` …)
  → the password and the whole userinfo;
* the values of fields listed in ``SECRET_VALUED`` (``nodes.command.env``: whatever the user hands the command);
* the AWS credentials of the standard chain's environment variables, when a pool uses ``aws_asg`` (botocore
  reads them; forescale never puts them in the file), and the secrets DefaultAzureCredential reads from the
  environment when a pool uses ``azure_vmss`` (``PROVIDER_ENV``).

Values shorter than ``MIN_SECRET_CHARS`` are left out: masking "1" or "prod" everywhere would garble output and
protect nothing. When the schema marks secrets by type (``SecretValue``), this walk is where they are collected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

MIN_SECRET_CHARS = 8
# (model class name, field name) whose values are secrets as a whole (dict values, list items or the value).
SECRET_VALUED = frozenset({("CommandSettings", "env")})
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
AZURE_ENV = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD")
PROVIDER_ENV = {"aws_asg": AWS_ENV, "azure_vmss": AZURE_ENV}  # gce_mig: ADC reads a key *file*, no env secret


def configured_secrets(config: BaseModel, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every secret value ``config`` refers to (see the module docstring), longest first when sorted by caller."""
    env = os.environ if environ is None else environ
    found = set(_walk(config, env))
    for pool in getattr(config, "pools", []):
        names = PROVIDER_ENV.get(getattr(getattr(pool, "nodes", None), "provider", None) or "", ())
        found.update(env[name] for name in names if env.get(name))
    return frozenset(v for v in found if len(v) >= MIN_SECRET_CHARS)


def _walk(node: Any, env: Mapping[str, str]) -> Iterator[str]:
    if isinstance(node, BaseModel):
        owner = type(node).__name__
        for name in type(node).model_fields:
            value = getattr(node, name, None)
            if value is None:
                continue
            if (owner, name) in SECRET_VALUED:
                yield from _values(value)
            elif name.endswith("_env"):
                yield from _env_values(value, env)
            else:
                yield from _walk(value, env)
    elif isinstance(node, SecretStr):
        secret = node.get_secret_value()
        yield secret
        yield from _url_secrets(secret)
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _walk(value, env)
    elif isinstance(node, list | tuple | set | frozenset):
        for value in node:
            yield from _walk(value, env)
    elif isinstance(node, str) or type(node).__name__.endswith("Url"):
        yield from _url_secrets(str(node))


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        yield from (str(v) for v in value.values())
    elif isinstance(value, list | tuple):
        yield from (str(v) for v in value)
    else:
        yield str(value)


def _env_values(value: Any, env: Mapping[str, str]) -> Iterator[str]:
    """``token_env: NOMAD_TOKEN`` → $NOMAD_TOKEN; ``headers_env: {Authorization: PROM_AUTH}`` → $PROM_AUTH
    (and the part after a scheme word such as ``Bearer``)."""
    for name in _values(value):
        secret = env.get(name)
        if secret:
            yield secret
            scheme, _, rest = secret.partition(" ")
            if rest and scheme.isalpha():
                yield rest


def _url_secrets(text: str) -> Iterator[str]:
    if "://" not in text or "@" not in text:
        return
    try:
        parts = urlsplit(text)
    except ValueError:
        return
    if parts.password:
        yield parts.password
        yield f"{parts.username or ''}:{parts.password}"
