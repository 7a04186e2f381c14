"""`GET /health`: every model by default; `?model=` judges only those named, `?ready=any` is up
while one of them is; draining is 503 whatever the query; a query it does not understand is a
Cloudflare error, never a silent fallback to the default."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.app import QWQ, R1
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine


def test_healthy(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["models"][QWQ] == {
        "healthy": True,
        "running_requests": 0,
        "waiting_requests": 0,
        "context_window": 24000,
    }
    assert response.json()["models"][R1]["context_window"] == 80000


def test_one_dead_engine_is_503(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[R1].healthy = False

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["models"][R1]["healthy"] is False
    assert response.json()["models"][QWQ]["healthy"] is True


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").status_code == 200


# --- what is judged: `model` and `ready` ----------------------------------------------------------

# (query params, the models that are down, the expected status)
JUDGEMENTS: list[Any] = [
    pytest.param({"model": QWQ}, [R1], 200, id="model-up-while-another-is-down"),
    pytest.param({"model": R1}, [R1], 503, id="model-down"),
    pytest.param({"model": R1}, [QWQ], 200, id="model-up-the-other-down"),
    pytest.param({"model": [QWQ, R1]}, [R1], 503, id="repeated-model-one-down"),
    pytest.param({"model": [QWQ, R1]}, [], 200, id="repeated-model-all-up"),
    pytest.param({"model": [QWQ, QWQ]}, [R1], 200, id="repeated-same-model"),
    pytest.param({"ready": "any"}, [R1], 200, id="any-one-down"),
    pytest.param({"ready": "any"}, [QWQ], 200, id="any-the-other-down"),
    pytest.param({"ready": "any"}, [QWQ, R1], 503, id="any-all-down"),
    pytest.param({"ready": "all"}, [R1], 503, id="all-explicit-one-down"),
    pytest.param({"ready": "all"}, [], 200, id="all-explicit-all-up"),
    pytest.param({"model": [QWQ, R1], "ready": "any"}, [R1], 200, id="any-of-named-one-up"),
    pytest.param({"model": [R1], "ready": "any"}, [R1], 503, id="any-of-named-all-down"),
]


@pytest.mark.parametrize(("params", "down", "status"), JUDGEMENTS)
def test_judged_on_the_models_asked(
    client: TestClient,
    engines: dict[str, FakeEngine],
    params: dict[str, Any],
    down: list[str],
    status: int,
) -> None:
    for name in down:
        engines[name].healthy = False

    response = client.get("/health", params=params)

    assert response.status_code == status
    assert response.json()["status"] == ("ok" if status == 200 else "unavailable")


def test_the_body_reports_every_model_whatever_was_asked(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[R1].healthy = False

    response = client.get("/health", params={"model": QWQ})

    assert response.status_code == 200
    assert {name: model["healthy"] for name, model in response.json()["models"].items()} == {
        QWQ: True,
        R1: False,
    }


def test_slashes_and_at_sign_may_be_percent_encoded(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[R1].healthy = False
    encoded = QWQ.replace("@", "%40").replace("/", "%2F")

    assert client.get(f"/health?model={encoded}").status_code == 200
    assert client.get(f"/health?model={QWQ}").status_code == 200


# --- draining beats everything --------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="default"),
        pytest.param(f"?model={QWQ}", id="model"),
        pytest.param("?ready=any", id="any"),
        pytest.param(f"?model={QWQ}&model={R1}&ready=any", id="both"),
        pytest.param("?model=@cf/nobody/nothing", id="unknown-model"),
        pytest.param("?ready=some", id="bad-ready"),
        pytest.param("?modle=x", id="unknown-parameter"),
    ],
)
def test_draining_is_503_whatever_the_query(draining: TestClient, query: str) -> None:
    response = draining.get("/health" + query)

    assert response.status_code == 503
    assert response.json()["status"] == "draining"
    assert set(response.json()["models"]) == {QWQ, R1}


# --- a query it does not understand ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        pytest.param(
            "?model=@cf/nobody/nothing", 5007, "No such model @cf/nobody/nothing", id="unknown"
        ),
        pytest.param(
            f"?model={QWQ}&model=@cf/x/y", 5007, "No such model @cf/x/y", id="one-of-two-unknown"
        ),
        pytest.param(
            "?model=", 5006, "query parameter 'model' must name a served model", id="empty-model"
        ),
        pytest.param(
            "?ready=some",
            5006,
            "query parameter 'ready' must be one of 'all' or 'any'",
            id="bad-ready",
        ),
        pytest.param("?ready=ANY", 5006, "query parameter 'ready'", id="ready-is-lowercase"),
        pytest.param("?modle=" + QWQ, 5006, "query parameter 'modle'", id="unknown-parameter"),
        pytest.param("?redy=any", 5006, "query parameter 'redy'", id="typo-of-ready"),
    ],
)
def test_a_query_it_does_not_understand_is_a_cloudflare_error(
    client: TestClient, query: str, code: int, fragment: str
) -> None:
    response = client.get("/health" + query)

    assert_error(response, 400, code, fragment)


def test_an_unknown_model_is_refused_even_while_the_others_are_down(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].healthy = False
    engines[R1].healthy = False

    assert_error(client.get("/health?model=@cf/x/y&ready=any"), 400, 5007)
