"""The fake preview edge, over real TLS, forwarding to the real app on the scripted engines."""

import json
import time

import httpx
import pytest
import websockets.sync.client
from websockets.exceptions import InvalidStatus

from server.wrangler_dev.certs import TLSFiles
from server.wrangler_dev.cloudflare_api import API_PREFIX
from tests.server.wrangler_dev.conftest import RunningEdge, running_edge
from tests.support.app import QWQ
from tests.support.fake_engine import FakeEngine

RUN_URL = "https://workers-binding.ai/run?version=3"
MODELS_URL = "https://workers-binding.ai/ai-api/models/search?search=qwq"
# websockets gives an opening handshake 10 s; the machines these tests run on can stand still
# for longer (the server's loop watch has logged stalls of 12 s and more).
OPEN_TIMEOUT_S = 60


def run_headers(edge: RunningEdge, model: str = QWQ) -> dict[str, str]:
    """`env.AI.run(model, ...)` as wrangler's proxy Worker sends it to the edge."""
    return {
        "MF-Binding": "AI",
        "MF-URL": RUN_URL,
        "MF-Header-content-type": "application/json",
        "MF-Header-cf-consn-sdk-version": "2.0.0",
        "MF-Header-cf-consn-model-id": model,
        "MF-Original-URL": "http://localhost:40000/",
        **edge.binding_headers(),
    }


def run(edge: RunningEdge, inputs: object, **headers: str) -> httpx.Response:
    with edge.client() as client:
        body = json.dumps({"inputs": inputs, "options": {}})
        return client.post("/", content=body, headers={**run_headers(edge), **headers})


def test_a_run_answers_the_bare_result_as_exactly_application_json(edge: RunningEdge) -> None:
    response = run(edge, {"prompt": "Hi", "max_tokens": 8})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["response"] == "Hello, world."
    assert response.headers["cf-ai-req-id"]


def test_a_stream_passes_through_as_workers_ais_sse(edge: RunningEdge) -> None:
    response = run(edge, {"prompt": "Hi", "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    text = "".join(json.loads(event[6:])["response"] for event in events[:-1])
    assert text.startswith("Hello, world.")
    assert events[-1] == "data: [DONE]"


def test_an_error_reaches_the_worker_as_an_ai_error(edge: RunningEdge) -> None:
    response = run(edge, {"prompt": "Hi", "max_tokens": -1})

    assert response.status_code == 400
    assert response.json()["name"] == "AiError"
    assert response.json()["internalCode"] == 5006


def test_models_answers_the_catalog_in_its_envelope(edge: RunningEdge) -> None:
    headers = {"MF-Binding": "AI", "MF-URL": MODELS_URL, **edge.binding_headers()}
    with edge.client() as client:
        response = client.get("/", headers=headers)

    assert response.status_code == 200
    assert QWQ in [model["name"] for model in response.json()["result"]]


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["no-token", "wrong-token"])
def test_the_server_judges_the_token(server_url: str, tls: TLSFiles, token: str | None) -> None:
    with running_edge(server_url, token, tls) as edge:
        response = run(edge, {"prompt": "Hi"})

    assert response.status_code == 401
    assert response.json() == {
        "internalCode": 10000,
        "name": "AiError",
        "description": "Authentication error",
    }


def test_a_call_without_the_runs_preview_token_is_refused_here(
    edge: RunningEdge, engines: dict[str, FakeEngine]
) -> None:
    response = run(edge, {"prompt": "Hi"}, **{"cf-workers-preview-token": "guessed"})

    assert response.status_code == 401
    assert response.json()["name"] == "AiError"
    assert engines[QWQ].calls == []


def test_another_bindings_call_is_cloudflare_only(edge: RunningEdge) -> None:
    edge.session.bindings = {"AI": "ai", "KV": "kv_namespace"}

    response = run(edge, {"prompt": "Hi"}, **{"MF-Binding": "KV"})

    assert response.status_code == 404
    assert "KV (kv_namespace) needs Cloudflare" in response.json()["description"]


def test_a_server_that_is_down_is_named_in_an_ai_error(edge_to_nowhere: RunningEdge) -> None:
    response = run(edge_to_nowhere, {"prompt": "Hi"})

    assert response.status_code == 502
    assert response.json()["name"] == "AiError"
    assert (
        "cannot reach the workers-ai-local server at http://127.0.0.1:"
        in (response.json()["description"])
    )


def test_a_worker_that_leaves_mid_stream_aborts_the_generation(
    edge: RunningEdge, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ["word "] * 1000
    engines[QWQ].delay = 0.01
    body = json.dumps({"inputs": {"prompt": "Hi", "stream": True}, "options": {}})
    with (
        edge.client() as client,
        client.stream("POST", "/", content=body, headers=run_headers(edge)) as response,
    ):
        assert next(response.iter_lines()).startswith("data: ")

    deadline = time.monotonic() + 30
    while engines[QWQ].aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engines[QWQ].aborted == 1


def test_the_access_probe_is_answered_without_a_redirect(edge: RunningEdge) -> None:
    with edge.client() as client:
        response = client.get("/.workers.dev")

    assert response.status_code == 200


def test_the_api_is_served_on_the_same_listener(edge: RunningEdge) -> None:
    headers = {"Authorization": f"Bearer {edge.session.api_token}"}
    with edge.client() as client:
        response = client.get(f"{API_PREFIX}/accounts/a/workers/subdomain", headers=headers)

    assert response.json()["result"] == {"subdomain": "0.0.1/"}


def test_the_bindings_websocket_is_accepted_and_held_idle(edge: RunningEdge) -> None:
    url = edge.url.replace("https://", "wss://") + "/?MF-Binding=AI"
    with (
        websockets.sync.client.connect(
            url, ssl=edge.ssl_context(), open_timeout=OPEN_TIMEOUT_S
        ) as socket,
        pytest.raises(TimeoutError),
    ):
        socket.recv(timeout=0.5)  # open, and silent


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param("", {}, id="no-binding"),
        pytest.param("?MF-Binding=AI", {"MF-URL": RUN_URL}, id="run-over-websocket"),
    ],
)
def test_other_websockets_are_refused(
    edge: RunningEdge, query: str, headers: dict[str, str]
) -> None:
    url = edge.url.replace("https://", "wss://") + "/" + query
    with pytest.raises(InvalidStatus):
        websockets.sync.client.connect(
            url,
            ssl=edge.ssl_context(),
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
        )
