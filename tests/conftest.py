from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.http.drain import Drain
from tests.support.app import QWQ, R1, ClientFactory, make_settings
from tests.support.fake_engine import FakeEngine


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {QWQ: FakeEngine(), R1: FakeEngine()}


@pytest.fixture
def make_client(engines: dict[str, FakeEngine]) -> Iterator[ClientFactory]:
    """Build a TestClient (lifespan running) over the fake engines, with settings overrides."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides), engines=engines))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


@pytest.fixture
def draining(client: TestClient) -> TestClient:
    """`client`, its server draining (refusing new requests) from now on."""
    drain: Drain = client.app.state.drain  # type: ignore[attr-defined]
    assert client.portal is not None
    assert client.portal.call(drain.begin) is True
    return client
