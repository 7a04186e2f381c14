"""`env.AI.models()` over the binding: the catalog, in the envelope the binding unwraps."""

from fastapi.testclient import TestClient

from tests.server.binding.calls import models
from tests.support.app import AUTH, QWQ, R1
from tests.support.envelopes import assert_error


def test_models_lists_the_served_catalog(client: TestClient) -> None:
    response = models(client)

    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True  # the binding returns `result`
    assert [entry["name"] for entry in payload["result"]] == sorted([QWQ, R1])
    assert response.headers["cf-ai-req-id"] == response.headers["x-request-id"]


def test_models_is_the_rest_search(client: TestClient) -> None:
    binding = models(client, "search=qwq&per_page=5")
    rest = client.get("/client/v4/accounts/a/ai/models/search?search=qwq&per_page=5", headers=AUTH)

    assert binding.json() == rest.json()
    assert [entry["name"] for entry in binding.json()["result"]] == [QWQ]


def test_a_bad_parameter_is_the_envelope_the_binding_throws_from(client: TestClient) -> None:
    # models() throws errors[0].message of the envelope (AiInternalError).
    assert_error(models(client, "per_page=0"), 400, 5006, "per_page")
