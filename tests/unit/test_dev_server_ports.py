"""Which Temporal server `awfdrs up` uses: its own, unless one was named on purpose."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from awfdrs.config import Settings
from awfdrs.devstack.stack import dev_server_ports
from awfdrs.devstack.temporal import free_port


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on (another folder's stack, say)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _found_by_default(address: str) -> Settings:
    """Settings whose Temporal address is the default one, not named by the user."""
    settings = Settings(temporal_address=address)
    settings.model_fields_set.discard("temporal_address")
    return settings


def test_a_server_at_the_default_address_is_not_joined(listening: int) -> None:
    ports = dev_server_ports(_found_by_default(f"127.0.0.1:{listening}"))
    assert ports is not None
    assert listening not in ports


def test_a_named_server_that_answers_is_used(listening: int) -> None:
    assert dev_server_ports(Settings(temporal_address=f"127.0.0.1:{listening}")) is None


def test_a_named_address_with_nothing_there_gets_a_dev_server() -> None:
    port = free_port("127.0.0.1")
    ports = dev_server_ports(Settings(temporal_address=f"127.0.0.1:{port}"))
    assert ports is not None
    assert ports[0] == port
