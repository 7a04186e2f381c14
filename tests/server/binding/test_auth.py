"""Binding calls carry no Authorization: with tokens, the connection string's path holds one."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.binding.calls import TOKEN_PATH, models, run
from tests.support.app import AUTH, TOKEN, ClientFactory


def assert_unauthenticated_run(response: Any) -> None:
    assert response.status_code == 401
    assert response.json() == {
        "internalCode": 10000,
        "name": "AiError",
        "description": "Authentication error",
    }


@pytest.mark.parametrize(
    "path",
    ["/binding/wrong/", "/binding/", f"/binding/{TOKEN}x/", f"/binding/x{TOKEN}/", "/"],
    ids=["wrong", "empty", "longer", "prefixed", "root-without-authorization"],
)
def test_a_run_without_a_valid_token_is_refused(client: TestClient, path: str) -> None:
    assert_unauthenticated_run(run(client, {"prompt": "Hi"}, path=path))


@pytest.mark.parametrize(
    "path", [TOKEN_PATH, f"/binding/{TOKEN}"], ids=["trailing-slash", "no-trailing-slash"]
)
def test_the_token_in_the_path_authenticates(client: TestClient, path: str) -> None:
    assert run(client, {"prompt": "Hi"}, path=path).status_code == 200


def test_the_root_takes_an_authorization_header(client: TestClient) -> None:
    # What a proxy in front (`workers-ai-local wrangler-dev`) may send instead of the path.
    assert run(client, {"prompt": "Hi"}, path="/", headers=AUTH).status_code == 200


def test_any_configured_token_works(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=["first", "sec/ond"])

    assert run(client, {"prompt": "Hi"}, path="/binding/sec%2Fond/").status_code == 200
    assert run(client, {"prompt": "Hi"}, path="/binding/first/").status_code == 200


def test_without_tokens_the_root_is_the_connection_string(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=[])

    assert run(client, {"prompt": "Hi"}, path="/").status_code == 200


def test_models_without_a_valid_token_is_refused_in_the_envelope(client: TestClient) -> None:
    response = models(client, path="/binding/wrong/")

    assert response.status_code == 401
    assert response.json()["errors"] == [{"code": 10000, "message": "Authentication error"}]
