from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.config import EngineConfig
from server.app import create_app
from server.settings import ModelSettings, Settings
from tests.fake_engine import FakeEngine

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run_url(model: str, account: str = "acct") -> str:
    return f"/client/v4/accounts/{account}/ai/run/{model}"


def make_settings(**overrides: Any) -> Settings:
    models = [
        ModelSettings(name=QWQ, engine=EngineConfig(builtin="tiny-qwq-32b", max_model_len=24000)),
        ModelSettings(
            name=R1,
            engine=EngineConfig(builtin="tiny-deepseek-r1-distill-qwen-32b", max_model_len=80000),
        ),
    ]
    values: dict[str, Any] = {"models": models, "api_tokens": [TOKEN], **overrides}
    return Settings.model_validate(values)


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {QWQ: FakeEngine(), R1: FakeEngine()}


ClientFactory = Callable[..., TestClient]


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
