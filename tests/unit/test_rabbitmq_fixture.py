"""The RabbitMQ fixture's guard rails, without a broker: what counts as missing, loud failure in CI, and a
config that binds every listener to loopback."""

from __future__ import annotations

import pytest

from tests.conftest import require_service
from tests.fixtures import rabbitmq_server


def test_a_missing_broker_fails_loudly_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rabbitmq_server, "SERVER", "/nonexistent/rabbitmq-server")
    assert rabbitmq_server.missing()[0] == "rabbitmq-server"
    monkeypatch.setenv("FORESCALE_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="rabbitmq is not available"):
        require_service("rabbitmq", "rabbitmq-server not installed")
    monkeypatch.delenv("FORESCALE_REQUIRE_SERVICES")
    with pytest.raises(pytest.skip.Exception):
        require_service("rabbitmq", "rabbitmq-server not installed")


def test_every_listener_of_the_config_is_on_loopback() -> None:
    conf = rabbitmq_server._config(5673, 15693)
    assert "listeners.tcp.1 = 127.0.0.1:5673" in conf and "listeners.ssl = none" in conf
    assert "prometheus.tcp.ip = 127.0.0.1" in conf and "prometheus.tcp.port = 15693" in conf
    assert "management" not in conf  # no management listener at all
    ports = rabbitmq_server.free_ports(4)
    assert len(set(ports)) == 4
