"""OpenAI-compatible routes over the fake engine: plain OpenAI bodies, Cloudflare errors."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chat_templates import ChatTemplate
from engine.types import StructuredOutput
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"
COMPLETIONS = "/client/v4/accounts/acct/ai/v1/completions"
THINKING = ["I think", " hard.", "</think>", "\n\nParis", "."]
MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def chat(client: TestClient, **body: Any) -> Any:
    return client.post(CHAT, json={"model": QWQ, "messages": MESSAGES, **body}, headers=AUTH)


def sse_payloads(text: str) -> list[Any]:
    lines = [line for line in text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_chat_completion_splits_reasoning_from_content(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = THINKING

    body = chat(client).json()

    assert body["object"] == "chat.completion"
    assert body["model"] == QWQ
    assert body["id"].startswith("chatcmpl-")
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == "\n\nParis."
    assert message["reasoning_content"] == "I think hard."
    assert message["reasoning"] == "I think hard."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 5


def test_chat_finish_reason_length(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = THINKING

    body = chat(client, max_completion_tokens=2).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] is None
    assert body["choices"][0]["message"]["reasoning_content"] == "I think hard."


def test_chat_stream_chunks(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = THINKING

    response = chat(client, stream=True, stream_options={"include_usage": True})

    chunks = sse_payloads(response.text)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks[1:-2]]
    assert "".join(delta.get("reasoning_content", "") for delta in deltas) == "I think hard."
    assert "".join(delta.get("content", "") for delta in deltas) == "\n\nParis."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_chat_stream_without_usage(client: TestClient) -> None:
    chunks = sse_payloads(chat(client, stream=True).text)

    assert all("usage" not in chunk for chunk in chunks)


def test_chat_tool_calls(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = [
        "Need weather.</think>\n\n",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    ]
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object"}},
    }

    body = chat(client, tools=[tool]).json()

    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_openai_tools_are_completed_for_the_template(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    tool = {"type": "function", "function": {"name": "now"}}

    chat(client, tools=[tool])

    full = {
        "type": "function",
        "function": {
            "name": "now",
            "description": "",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    expected = ChatTemplate.builtin("qwq-32b").render(MESSAGES, tools=[full])
    assert engines[QWQ].calls[0].prompt_token_ids == engines[QWQ].encode(expected)


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_tool_history_is_rendered_for_each_template(
    client: TestClient, engines: dict[str, FakeEngine], model: str
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "Thanks"},
    ]

    response = client.post(CHAT, json={"model": model, "messages": messages}, headers=AUTH)

    assert response.status_code == 200, response.text
    prompt = "".join(chr(token) for token in engines[model].calls[0].prompt_token_ids)
    if model == QWQ:
        assert '{"name": "f", "arguments": {"a": 1}}' in prompt
    else:
        assert '<｜tool▁sep｜>f\n```json\n{"a": 1}\n```' in prompt


@pytest.mark.parametrize(
    ("model", "response_format", "expected"),
    [
        (QWQ, {"type": "json_object"}, StructuredOutput(json_object=True)),
        (
            QWQ,
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
            StructuredOutput(json_schema={"type": "array"}),
        ),
        (R1, {"type": "json_object"}, StructuredOutput(json_object=True)),
        (
            R1,
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}},
            StructuredOutput(json_schema={"type": "array"}),
        ),
    ],
    ids=["qwq-object", "qwq-schema", "r1-object", "r1-schema"],
)
def test_response_format_reaches_the_engine(
    client: TestClient,
    engines: dict[str, FakeEngine],
    model: str,
    response_format: dict[str, Any],
    expected: StructuredOutput,
) -> None:
    engines[model].script = ["[1]"] if "array" in json.dumps(response_format) else ["{}"]
    body = {"model": model, "messages": MESSAGES, "response_format": response_format}
    native = {"messages": MESSAGES, "response_format": response_format}

    response = client.post(CHAT, json=body, headers=AUTH)
    native_response = client.post(run_url(model), json=native, headers=AUTH)

    assert response.status_code == 200, response.text
    assert native_response.status_code == 200, native_response.text
    # One JSON-mode rule: the OpenAI route asks the engine for exactly what /ai/run asks for.
    assert engines[model].calls[0].params.structured == expected
    assert engines[model].calls[1].params.structured == expected


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "@cf/meta/llama", "messages": MESSAGES}, 400, 5007),
        ({"model": QWQ, "messages": MESSAGES, "temperature": 9}, 400, 5006),
        ({"model": QWQ}, 400, 5006),
        ({"messages": MESSAGES}, 400, 5006),
        ({"model": QWQ, "messages": MESSAGES, "n": 2}, 400, 5006),
        ({"model": QWQ, "messages": MESSAGES, "stop": ["x"]}, 400, 5006),
    ],
    ids=["unknown-model", "temperature", "no-messages", "no-model", "n", "stop"],
)
def test_errors_keep_the_cloudflare_envelope(
    client: TestClient, body: dict[str, Any], status: int, code: int
) -> None:
    assert_error(client.post(CHAT, json=body, headers=AUTH), status, code)


def test_chat_needs_a_token(client: TestClient) -> None:
    assert_error(client.post(CHAT, json={"model": QWQ, "messages": MESSAGES}), 401, 10000)


def test_text_completion(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    body = {"model": R1, "prompt": "Once upon", "max_tokens": 3}

    response = client.post(COMPLETIONS, json=body, headers=AUTH).json()

    assert response["object"] == "text_completion"
    assert response["choices"][0]["text"] == "Hello, world"
    assert response["choices"][0]["finish_reason"] == "length"
    assert engines[R1].calls[0].prompt_token_ids == engines[R1].encode("Once upon")


def test_text_completion_stream(client: TestClient) -> None:
    body = {
        "model": R1,
        "prompt": "Once",
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    chunks = sse_payloads(client.post(COMPLETIONS, json=body, headers=AUTH).text)

    assert "".join(chunk["choices"][0]["text"] for chunk in chunks[:-1]) == "Hello, world."
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_models_list(client: TestClient) -> None:
    response = client.get("/client/v4/accounts/acct/ai/v1/models", headers=AUTH).json()

    assert response["object"] == "list"
    assert [model["id"] for model in response["data"]] == sorted([QWQ, R1])


@pytest.mark.parametrize(
    "path",
    [
        "/client/v4/accounts/acct/ai/run",
        "/accounts/acct/ai/run",
    ],
)
def test_universal_run(client: TestClient, path: str) -> None:
    body = {"model": QWQ, "input": {"prompt": "Hi"}}

    response = client.post(path, json=body, headers={**AUTH, "cf-aig-gateway-id": "default"})

    assert response.json()["result"]["response"] == "Hello, world."


def test_universal_run_needs_a_model(client: TestClient) -> None:
    response = client.post("/client/v4/accounts/acct/ai/run", json={"input": {}}, headers=AUTH)

    assert_error(response, 400, 5006, "'model'")


@pytest.mark.parametrize(
    "path",
    [f"/v1/acct/my-gateway/workers-ai/{QWQ}", f"/v1/acct/my-gateway/workers-ai/run/{QWQ}"],
    ids=["bare", "run"],
)
def test_gateway_run(client: TestClient, path: str) -> None:
    headers = {**AUTH, "cf-aig-cache-ttl": "60", "cf-aig-skip-cache": "true"}

    response = client.post(path, json={"prompt": "Hi"}, headers=headers)

    assert response.json()["result"]["response"] == "Hello, world."


def test_gateway_chat_completions(client: TestClient) -> None:
    body = {"model": R1, "messages": MESSAGES}

    response = client.post(
        "/v1/acct/my-gateway/workers-ai/v1/chat/completions", json=body, headers=AUTH
    )

    assert response.json()["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/client/v4/accounts/acct/ai/run/{QWQ}", {"prompt": "Hi"}),
        (CHAT, {"model": QWQ, "messages": MESSAGES}),
    ],
    ids=["native", "openai"],
)
def test_reject_if_busy_is_accepted(client: TestClient, path: str, body: dict[str, Any]) -> None:
    response = client.post(path, json={**body, "options": {"rejectIfBusy": True}}, headers=AUTH)

    assert response.status_code == 200


def test_error_after_the_first_byte_is_in_band(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    from engine.errors import EngineError

    engines[QWQ].failure = EngineError("boom")
    engines[QWQ].fail_at = 1

    chunks = sse_payloads(chat(client, stream=True).text)

    detail = {"code": 3043, "message": "Internal server error"}
    assert chunks[-1] == {"error": detail, "errors": [detail]}
