"""The binding's wire protocol (server.binding.protocol): calls, errors, connection strings."""

from typing import Any

import pytest

from server.binding.protocol import (
    ModelsCall,
    RunCall,
    connection_string,
    error_body,
    is_binding_request,
    parse_call,
    token_of,
)
from server.errors import BadInput, CapacityExceeded, NoRoute
from tests.server.binding.calls import GATEWAY_URL, MODELS_URL, RUN_URL

MODEL = "@cf/qwen/qwq-32b"


def headers(url: str, **inner: str) -> dict[str, str]:
    sent = {"mf-binding": "AI", "mf-url": url, "mf-header-cf-consn-model-id": MODEL}
    sent.update({f"mf-header-{name}": value for name, value in inner.items()})
    return sent


@pytest.mark.parametrize(
    ("method", "sent", "call"),
    [
        ("POST", headers(RUN_URL), RunCall(MODEL)),
        ("POST", headers(GATEWAY_URL), RunCall(MODEL)),
        ("POST", headers(RUN_URL, **{"x-session-affinity": "s1"}), RunCall(MODEL, "s1")),
        ("POST", headers(RUN_URL + "&userInputs=%7B%7D"), RunCall(MODEL, stream_input=True)),
        ("GET", headers(MODELS_URL), ModelsCall()),
        (
            "GET",
            headers(MODELS_URL + "?search=qwq&page=2"),
            ModelsCall({"search": "qwq", "page": "2"}),
        ),
    ],
    ids=["run", "gateway", "session", "readable-stream", "models", "models-search"],
)
def test_calls_are_told_apart_by_their_mf_url(
    method: str, sent: dict[str, str], call: RunCall | ModelsCall
) -> None:
    assert parse_call(method, sent) == call


@pytest.mark.parametrize(
    ("method", "sent"),
    [
        ("POST", {"mf-url": RUN_URL}),
        ("GET", headers("https://workers-binding.ai/ai-gateway/gateways/g/logs/1")),
        ("POST", headers(MODELS_URL)),
        ("GET", headers("")),
    ],
    ids=["no-mf-binding", "gateway-logs", "models-by-post", "no-mf-url"],
)
def test_anything_else_finds_no_route(method: str, sent: dict[str, str]) -> None:
    with pytest.raises(NoRoute):
        parse_call(method, sent)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            BadInput("oneOf at '/' not met"),
            {
                "internalCode": 5006,
                "name": "AiError",
                "description": "Bad input: Error: oneOf at '/' not met",
            },
        ),
        (
            CapacityExceeded(),
            {
                "internalCode": 3040,
                "name": "AiError",
                "description": "Capacity temporarily exceeded, please try again.",
            },
        ),
    ],
    ids=["named-in-the-rest-message", "plain-message"],
)
def test_errors_read_as_ai_error(error: Any, expected: dict[str, Any]) -> None:
    # workerd throws `${name}: ${internalCode}: ${description}`, "AiError" said once.
    assert error_body(error) == expected


@pytest.mark.parametrize(
    ("server", "token", "expected"),
    [
        ("http://127.0.0.1:8787", None, "http://127.0.0.1:8787/"),
        ("http://127.0.0.1:8787/", None, "http://127.0.0.1:8787/"),
        ("https://gpu.example:8787", "s3cret", "https://gpu.example:8787/binding/s3cret/"),
        ("http://h:1", "a/b c?", "http://h:1/binding/a%2Fb%20c%3F/"),
    ],
    ids=["no-token", "trailing-slash", "token", "token-to-quote"],
)
def test_connection_strings(server: str, token: str | None, expected: str) -> None:
    assert connection_string(server, token) == expected


@pytest.mark.parametrize("token", ["s3cret", "a/b", "ends/"], ids=["plain", "slash", "ends-slash"])
def test_the_path_gives_back_the_token(token: str) -> None:
    # The server sees the path decoded: /binding/<token>/ with the token's %2F as "/".
    path = connection_string("http://h", token).removeprefix("http://h/binding/")
    decoded = path.replace("%2F", "/")

    assert token_of(decoded) == token


@pytest.mark.parametrize(
    ("sent", "query", "expected"),
    [
        ({"MF-Binding": "AI"}, {}, True),
        ({}, {"MF-Binding": "AI"}, True),
        ({"cf-workers-preview-token": "p"}, {}, False),
    ],
    ids=["call", "websocket", "other"],
)
def test_binding_requests_are_recognized(
    sent: dict[str, str], query: dict[str, str], expected: bool
) -> None:
    assert is_binding_request(sent, query) is expected
