"""The provider tables, the cloud providers' settings, their optional extras and `config check`'s words for them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.clouds import AzureVmssSettings, GceMigSettings
from autoscaler.core.settings.nodes import PROVIDERS
from autoscaler.nodes import cloud_calls
from autoscaler.nodes.checks import check_config
from autoscaler.nodes.cloud_calls import Extra, OperationTimeout, Pacer
from autoscaler.nodes.registry import BUILDERS, build_node_provider
from tests.helpers import make_config, pool_dict

SUB = "00000000-0000-4000-8000-000000000024"
GCE = {"project": "my-project", "zone": "us-central1-a", "name": "gpu-ocr"}
AZURE = {"subscription_id": SUB, "resource_group": "ml", "name": "gpu-ocr"}


def config(provider: str, section: dict[str, Any], name: str = "ocr", **more: Any) -> Any:
    key = PROVIDERS[provider].section
    return make_config(pool_dict(name, nodes={"provider": provider, "node_pool": "gpu", key: section}), **more)


def test_the_schema_and_builder_tables_have_the_same_providers() -> None:
    assert set(PROVIDERS) == set(BUILDERS) == {"aws_asg", "gce_mig", "azure_vmss", "command"}


def test_gce_settings_need_exactly_one_location_and_valid_names() -> None:
    assert GceMigSettings(**GCE).scope == "zones/us-central1-a"
    assert GceMigSettings(project="my-project", region="us-central1", name="g").scope == "regions/us-central1"
    for bad in ({"zone": None}, {"region": "us-central1"}, {"name": "GPU_ocr"}, {"project": "x"},
                {"endpoint": "127.0.0.1:8080"}, {"min_size": 3, "max_size": 2}):  # fmt: skip
        with pytest.raises(ValidationError):
            GceMigSettings(**{**GCE, **bad})


def test_azure_settings_validate_the_subscription_and_names() -> None:
    assert AzureVmssSettings(**AZURE).group_key() == ("VMSS", f"{SUB}/ml/gpu-ocr")
    for bad in ({"subscription_id": "my-sub"}, {"name": "-bad"}, {"endpoint": "https://x/y"}, {"timeout": "2h"}):
        with pytest.raises(ValidationError):
            AzureVmssSettings(**{**AZURE, **bad})


@pytest.mark.parametrize(("provider", "section"), [("gce_mig", GCE), ("azure_vmss", AZURE)])
def test_two_pools_on_one_group_are_refused(provider: str, section: dict[str, Any]) -> None:
    key = PROVIDERS[provider].section
    pools = [pool_dict(n, nodes={"provider": provider, "node_pool": "gpu", key: section}) for n in ("a", "b")]
    with pytest.raises(ValidationError, match="both manage the machines"):
        make_config(*pools)


def test_a_provider_section_is_required() -> None:
    with pytest.raises(ValidationError, match="needs its 'gce:' section"):
        make_config(pool_dict("ocr", nodes={"provider": "gce_mig", "node_pool": "gpu"}))


@pytest.mark.parametrize(("provider", "section", "extra"), [("gce_mig", GCE, "gcp"), ("azure_vmss", AZURE, "azure")])
def test_config_check_names_the_extra_when_the_sdk_is_missing(
    provider: str, section: dict[str, Any], extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config(provider, section)
    assert check_config(cfg) == []  # installed here ([dev] includes both extras)
    monkeypatch.setitem(cloud_calls.EXTRAS, provider, Extra(extra, ("forescale_no_such_sdk",), "the SDK"))
    (problem,) = check_config(cfg)
    assert problem.startswith("pools[0] (ocr).nodes.provider:") and f"pip install 'forescale[{extra}]'" in problem
    built = build_node_provider(cfg.pool("ocr"))  # building needs no SDK; the first call says what to install
    assert built is not None
    with pytest.raises(NodeProviderError) as info:
        built.describe(cfg.pool("ocr"))
    assert info.value.code == "MissingSDK" and f"forescale[{extra}]" in str(info.value)


def test_config_check_flags_an_endpoint_that_is_not_local_or_azure() -> None:
    assert check_config(config("gce_mig", {**GCE, "endpoint": "http://127.0.0.1:9"})) == []
    (problem,) = check_config(config("gce_mig", {**GCE, "endpoint": "https://compute.example.com"}))
    assert "gce.endpoint" in problem and "local test server" in problem
    assert check_config(config("azure_vmss", {**AZURE, "endpoint": "https://management.chinacloudapi.cn"})) == []
    (problem,) = check_config(config("azure_vmss", {**AZURE, "endpoint": "https://arm.example.com"}))
    assert "azure.endpoint" in problem


def test_pacer_retries_with_the_delay_asked_and_follows_to_a_deadline() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(lambda: now[0], sleep)
    calls = [0]

    def flaky() -> str:
        calls[0] += 1
        if calls[0] < 3:
            raise ConnectionError("boom")
        return "ok"

    assert pacer.retry(flaky, 4, lambda exc, n: 2.0 * n) == "ok" and slept == [2.0, 4.0]
    calls[0] = -10
    with pytest.raises(ConnectionError):
        pacer.retry(flaky, 3, lambda exc, n: 1.0)  # gives up after 3 attempts, raising the last failure
    with pytest.raises(ConnectionError):
        pacer.retry(flaky, 5, lambda exc, n: None)  # not retryable: at once
    polls = [0]

    def poll() -> tuple[bool, float]:
        polls[0] += 1
        return polls[0] >= 4, 10.0

    pacer.follow(poll, 60, "resize")
    assert polls[0] == 4
    polls[0] = -100
    start = now[0]
    with pytest.raises(OperationTimeout):
        pacer.follow(poll, timedelta(seconds=30).total_seconds(), "resize")
    assert now[0] - start <= 30


def test_the_secrets_default_azure_credential_reads_are_redacted() -> None:
    from autoscaler.core.settings.secrets import configured_secrets

    env = {"AZURE_CLIENT_SECRET": "azure-client-secret-value", "AWS_SECRET_ACCESS_KEY": "aws-secret-not-used"}
    assert configured_secrets(config("azure_vmss", AZURE), env) == {"azure-client-secret-value"}
    assert configured_secrets(config("gce_mig", GCE), env) == frozenset()


@pytest.mark.parametrize("name", ["forescale.gce.yaml", "forescale.azure.yaml"])
def test_the_example_configs_are_valid_and_pass_config_check(name: str) -> None:
    from pathlib import Path

    from autoscaler.config import extra_checks, load_config

    cfg = load_config(Path(__file__).resolve().parents[3] / "docs" / "examples" / name)
    assert cfg.pools[0].nodes.provider in ("gce_mig", "azure_vmss") and cfg.pools[0].nodes.section() is not None
    assert extra_checks(cfg) == []
