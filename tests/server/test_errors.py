"""Every error the API returns is a Cloudflare envelope with the right status and code."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineDeadError, EngineError, EngineRequestError
from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

BAD_INPUTS = [
    pytest.param(QWQ, {}, "required properties at '/' are 'prompt'", id="neither-form"),
    pytest.param(QWQ, {"prompt": "a", "messages": []}, "2 matches", id="both-forms"),
    pytest.param(QWQ, {"prompt": ""}, "'/prompt'", id="empty-prompt"),
    pytest.param(QWQ, {"prompt": 5}, "Type mismatch of '/prompt'", id="prompt-not-string"),
    pytest.param(
        QWQ,
        {"prompt": "a", "temperature": 5.1},
        "'/temperature' must be <= 5",
        id="temperature-high",
    ),
    pytest.param(
        QWQ,
        {"prompt": "a", "temperature": -0.1},
        "'/temperature' must be >= 0",
        id="temperature-low",
    ),
    pytest.param(QWQ, {"prompt": "a", "top_p": 2.1}, "'/top_p' must be <= 2", id="qwq-top-p"),
    pytest.param(R1, {"prompt": "a", "top_p": 1.5}, "'/top_p' must be <= 1", id="r1-top-p"),
    pytest.param(R1, {"prompt": "a", "top_p": 0}, "'/top_p' must be >= 0.001", id="r1-top-p-zero"),
    pytest.param(QWQ, {"prompt": "a", "top_k": 51}, "'/top_k' must be <= 50", id="top-k"),
    pytest.param(QWQ, {"prompt": "a", "top_k": 0}, "'/top_k' must be >= 1", id="top-k-zero"),
    pytest.param(QWQ, {"prompt": "a", "seed": 0}, "'/seed' must be >= 1", id="seed-zero"),
    pytest.param(QWQ, {"prompt": "a", "seed": 10000000000}, "'/seed' must be <=", id="seed-high"),
    pytest.param(
        QWQ, {"prompt": "a", "repetition_penalty": 2.5}, "'/repetition_penalty'", id="rep-penalty"
    ),
    pytest.param(
        QWQ,
        {"prompt": "a", "frequency_penalty": -1},
        "'/frequency_penalty' must be >= 0",
        id="qwq-freq-negative",
    ),
    pytest.param(
        R1,
        {"prompt": "a", "frequency_penalty": -2.5},
        "'/frequency_penalty' must be >= -2",
        id="r1-freq",
    ),
    pytest.param(
        R1,
        {"prompt": "a", "presence_penalty": 2.5},
        "'/presence_penalty' must be <= 2",
        id="r1-presence",
    ),
    pytest.param(
        QWQ,
        {"prompt": "a", "max_tokens": "10"},
        "Type mismatch of '/max_tokens'",
        id="max-tokens-string",
    ),
    pytest.param(
        QWQ, {"prompt": "a", "max_tokens": 0}, "'/max_tokens' must be >= 1", id="max-tokens-zero"
    ),
    pytest.param(
        QWQ, {"prompt": "a", "stream": "yes"}, "Type mismatch of '/stream'", id="stream-string"
    ),
    pytest.param(QWQ, {"messages": "hi"}, "Type mismatch of '/messages'", id="messages-string"),
    pytest.param(
        QWQ, {"messages": [{"content": "hi"}]}, "'/messages/0' are 'role'", id="missing-role"
    ),
    pytest.param(
        QWQ,
        {"messages": [{"role": "robot", "content": "hi"}]},
        "'/messages/0/role'",
        id="unknown-role",
    ),
    pytest.param(
        R1,
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]},
        "Type mismatch of '/messages/0/content', 'array' not in 'string'",
        id="r1-content-array",
    ),
    pytest.param(
        QWQ,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
                    ],
                }
            ]
        },
        "text only",
        id="image-part",
    ),
    pytest.param(
        QWQ,
        {"messages": [{"role": "user", "content": "a", "tool_call_id": "x"}]},
        "'/messages/0/tool_call_id'",
        id="tool-call-id-pattern",
    ),
    pytest.param(QWQ, [1, 2], "Type mismatch of '/', 'array' not in 'object'", id="body-array"),
]


@pytest.mark.parametrize(("model", "body", "fragment"), BAD_INPUTS)
def test_schema_violations_are_5006(
    client: TestClient, model: str, body: Any, fragment: str
) -> None:
    response = client.post(run_url(model), json=body, headers=AUTH)

    assert_error(response, 400, 5006, "AiError: Bad input: Error: ", fragment)


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [(QWQ, "functions", [{"name": "f", "code": "x"}])],
    ids=["functions"],
)
def test_later_parameters_are_refused_clearly(
    client: TestClient, model: str, field: str, value: Any
) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], field: value}

    response = client.post(run_url(model), json=body, headers=AUTH)

    assert_error(response, 400, 5006, f"'{field}' is not supported by this server yet")


def test_unknown_model(client: TestClient) -> None:
    response = client.post(run_url("@cf/meta/llama-3-8b"), json={"prompt": "a"}, headers=AUTH)

    assert_error(response, 400, 5007, "No such model @cf/meta/llama-3-8b or task")


@pytest.mark.parametrize(
    "path",
    ["/client/v4/accounts/acct/ai/nothing", "/client/v4/accounts/acct/ai/v2/x", "/nope"],
)
def test_unknown_path(client: TestClient, path: str) -> None:
    assert_error(client.post(path, json={}, headers=AUTH), 404, 7000, "No route for that URI")


def test_wrong_method(client: TestClient) -> None:
    response = client.get(run_url(QWQ), headers=AUTH)

    assert_error(response, 405, 7001, "GET not supported")


def test_body_not_json(client: TestClient) -> None:
    response = client.post(run_url(QWQ), content=b"{not json", headers=AUTH)

    assert_error(response, 400, 5006, "not valid JSON")


def test_body_missing(client: TestClient) -> None:
    response = client.post(run_url(QWQ), content=b"", headers=AUTH)

    assert_error(response, 400, 3003, "missing headers or body")


def test_context_window(client: TestClient) -> None:
    prompt = "x" * 23900  # the fake engine counts one token per character
    response = client.post(
        run_url(QWQ), json={"prompt": prompt, "raw": True, "max_tokens": 101}, headers=AUTH
    )

    assert_error(
        response,
        413,
        5021,
        "The estimated number of input and maximum output tokens (24001) exceeded this "
        "model context window limit (24000).",
    )


def test_context_window_exact_fit_is_accepted(client: TestClient) -> None:
    body = {"prompt": "x" * 23900, "raw": True, "max_tokens": 100}

    assert client.post(run_url(QWQ), json=body, headers=AUTH).status_code == 200


def test_template_failure_is_5006(client: TestClient) -> None:
    # QwQ's official template crashes on an earlier assistant turn with tool calls and no content.
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": None, "tool_calls": [{"name": "f", "arguments": {}}]},
        {"role": "user", "content": "b"},
    ]
    response = client.post(run_url(QWQ), json={"messages": messages}, headers=AUTH)

    assert_error(response, 400, 5006, "AiError: Bad input: Error: ")


@pytest.mark.parametrize(
    ("failure", "status", "code", "message"),
    [
        pytest.param(
            EngineDeadError("worker 3 segfaulted at 0xdeadbeef"),
            503,
            3040,
            "The model is not available right now, please try again.",
            id="dead-engine",
        ),
        pytest.param(
            EngineError("worker 3 segfaulted at 0xdeadbeef"),
            500,
            3043,
            "Internal server error",
            id="other-failure",
        ),
    ],
)
def test_engine_failures_never_leak_details(
    client: TestClient,
    engines: dict[str, FakeEngine],
    failure: EngineError,
    status: int,
    code: int,
    message: str,
) -> None:
    engines[QWQ].failure = failure

    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=AUTH)

    assert_error(response, status, code, message)
    assert "deadbeef" not in response.text


def test_engine_rejection_is_a_400(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].failure = EngineRequestError("top_k must be -1")

    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=AUTH)

    assert_error(response, 400, 5006, "top_k must be -1")


def test_timeout(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].delay = 0.5
    headers = {**AUTH, "cf-aig-request-timeout": "100"}

    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=headers)

    assert_error(response, 408, 3007, "Request timeout")
    assert engines[QWQ].aborted == 1
    assert engines[QWQ].running == 0


def test_configured_timeout(make_client: ClientFactory, engines: dict[str, FakeEngine]) -> None:
    client = make_client(request_timeout_s=0.1)
    engines[R1].delay = 0.5

    response = client.post(run_url(R1), json={"prompt": "a"}, headers=AUTH)

    assert_error(response, 408, 3007)


@pytest.mark.parametrize("value", ["soon", "-5", "0", "nan"])
def test_bad_timeout_header(client: TestClient, value: str) -> None:
    headers = {**AUTH, "cf-aig-request-timeout": value}

    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=headers)

    assert_error(response, 400, 5006, "cf-aig-request-timeout")


@pytest.mark.parametrize(
    "value",
    [b"x" * 257, "caf\u00e9".encode("latin-1"), b"tab\there"],
    ids=["long", "latin1", "tab"],
)
def test_bad_session_affinity_header(client: TestClient, value: bytes) -> None:
    headers = {key.encode(): item.encode() for key, item in AUTH.items()}
    headers[b"x-session-affinity"] = value

    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=headers)

    assert_error(response, 400, 5006, "x-session-affinity")


@pytest.mark.parametrize("chat", [False, True], ids=["ai-run", "openai"])
def test_session_affinity_reaches_the_engine(
    client: TestClient, engines: dict[str, FakeEngine], chat: bool
) -> None:
    headers = {**AUTH, "x-session-affinity": "ses_123-abc"}
    if chat:
        body = {"model": QWQ, "messages": [{"role": "user", "content": "a"}]}
        response = client.post(
            "/client/v4/accounts/acct/ai/v1/chat/completions", json=body, headers=headers
        )
    else:
        response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=headers)

    assert response.status_code == 200, response.text
    assert engines[QWQ].calls[-1].params.session_id == "ses_123-abc"


def test_unexpected_exception_is_a_generic_500(
    client: TestClient, engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(text: str) -> list[int]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engines[QWQ], "encode", explode)
    client_500 = TestClient(client.app, raise_server_exceptions=False)

    response = client_500.post(run_url(QWQ), json={"prompt": "a"}, headers=AUTH)

    assert_error(response, 500, 3043, "Internal server error")
    assert "secret internal detail" not in response.text
