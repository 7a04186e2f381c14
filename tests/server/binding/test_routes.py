"""What the binding routes leave alone, and the WebSocket the binding opens and never uses."""

import logging

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.server.binding.calls import TOKEN_PATH, run, run_headers
from tests.support.app import TOKEN, ClientFactory
from tests.support.envelopes import assert_error


@pytest.mark.parametrize("path", ["/", TOKEN_PATH], ids=["root", "token-path"])
def test_a_request_that_is_no_binding_call_finds_no_route(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, 7000, "No route for that URI")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "https://workers-binding.ai/ai-gateway/gateways/g/url/openai"),
        ("POST", "https://workers-binding.ai/autorag/rags/r/search"),
        ("GET", "https://workers-binding.ai/run?version=3"),
    ],
    ids=["gateway-get-url", "autorag", "run-by-get"],
)
def test_what_only_cloudflare_serves_is_named(client: TestClient, method: str, url: str) -> None:
    headers = {**run_headers(), "MF-URL": url}

    response = client.request(method, TOKEN_PATH, headers=headers)

    assert_error(response, 404, 7000, "Cloudflare-only")


def test_the_binding_routes_are_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not [path for path in paths if path == "/" or path.startswith("/binding")]


def test_the_access_line_never_shows_the_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    run(client, {"prompt": "Hi"})

    (line,) = [r for r in caplog.records if r.name == "workers_ai_local.access"]
    assert line.access["path"] == "/binding/***/"  # type: ignore[attr-defined]
    server_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert not [line for line in server_lines if TOKEN in line]


@pytest.mark.parametrize(
    "path", [f"{TOKEN_PATH}?MF-Binding=AI", "/?MF-Binding=AI"], ids=["token-path", "open-root"]
)
def test_the_binding_websocket_is_accepted_and_held(make_client: ClientFactory, path: str) -> None:
    client = make_client(api_tokens=[TOKEN] if path.startswith("/binding") else [])

    with client.websocket_connect(path) as socket:
        socket.send_text("a JSRPC call")  # nothing here serves JSRPC: closed, with the reason
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_text()

    assert closed.value.code == 1011
    assert "env.AI.run()" in closed.value.reason


def test_an_idle_binding_websocket_is_closed_in_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.binding.routes.IDLE_WEBSOCKET_S", 0.05)

    with (
        client.websocket_connect(f"{TOKEN_PATH}?MF-Binding=AI") as socket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        socket.receive_text()

    assert closed.value.code == 1000


def test_the_websocket_path_is_logged_without_the_token(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with client.websocket_connect(f"{TOKEN_PATH}?MF-Binding=AI") as socket:
        assert socket.scope["path"] == "/binding/***/"  # what uvicorn's "[accepted]" line reads


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/binding/wrong/?MF-Binding=AI", {}),
        ("/?MF-Binding=AI", {}),
        (TOKEN_PATH, {}),
        (f"{TOKEN_PATH}?body=%7B%7D", {"MF-Binding": "AI", "MF-URL": "https://x/run?version=3"}),
    ],
    ids=["wrong-token", "root-without-authorization", "no-binding", "inference-websocket"],
)
def test_other_websockets_are_refused(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(path, headers=headers):
        pass
