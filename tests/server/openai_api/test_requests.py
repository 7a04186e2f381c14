"""OpenAI bodies translated into native Workers AI bodies (`server.openai_api.requests`).

Every native field is either carried by the OpenAI body in a shape of its own (`TRANSLATED`) or
passed through under its own name, and then validated by the model's own schema. Earlier tool
calls are shaped the way each model's chat template reads them (`ModelSpec.tool_history`).
"""

import json
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.generation.specs import MODELS, QWQ_32B, R1_DISTILL_QWEN_32B, ModelSpec, ToolHistory
from server.openai_api.requests import TRANSLATED, chat_request, passed_through
from tests.support.app import AUTH, QWQ, R1
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
SPECS = [pytest.param(QWQ_32B, id="qwq"), pytest.param(R1_DISTILL_QWEN_32B, id="r1")]
# Sampling and this server's extensions: an OpenAI client sends them as Workers AI names them.
SAMPLING_AND_EXTENSIONS = {
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "guided_json",
    "lora",
    "json_after_reasoning",
    "include_reasoning",
}


def native_fields(spec: ModelSpec) -> set[str]:
    """Every field of the model's two native forms, `prompt` and `messages`."""
    return set(spec.prompt_schema.model_fields) | set(spec.messages_schema.model_fields)


@pytest.mark.parametrize("spec", SPECS)
def test_every_native_field_is_passed_through_or_translated(spec: ModelSpec) -> None:
    assert passed_through(spec) | TRANSLATED == native_fields(spec)
    assert passed_through(spec) & TRANSLATED == set()


@pytest.mark.parametrize("spec", SPECS)
def test_translated_names_only_native_fields(spec: ModelSpec) -> None:
    assert TRANSLATED - native_fields(spec) == set()


@pytest.mark.parametrize("spec", SPECS)
def test_sampling_and_extension_fields_pass_through(spec: ModelSpec) -> None:
    assert SAMPLING_AND_EXTENSIONS - passed_through(spec) == set()


PASSED_THROUGH = [
    pytest.param(model, field, id=f"{model_id}-{field}")
    for model, model_id in ((QWQ, "qwq"), (R1, "r1"))
    for field in sorted(passed_through(MODELS[model]))
]


@pytest.mark.parametrize(("model", "field"), PASSED_THROUGH)
def test_a_passed_through_field_is_validated_by_the_native_schema(
    client: TestClient, engines: dict[str, FakeEngine], model: str, field: str
) -> None:
    body = {"model": model, "messages": MESSAGES, field: ["not", "this", "type"]}

    response = client.post(CHAT, json=body, headers=AUTH)

    assert_error(response, 400, 5006, f"Type mismatch of '/{field}', 'array' not in '")
    assert engines[model].calls == []


CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
QWQ_HISTORY = ToolHistory(arguments_as_object=True, content_required=True)
R1_HISTORY = ToolHistory(arguments_as_object=False, content_required=False)


def assistant_turn(spec: ModelSpec, content: Any, call: dict[str, Any] = CALL) -> Any:
    """The native form of an OpenAI assistant turn that called a tool."""
    turn = {"role": "assistant", "content": content, "tool_calls": [call]}
    body = {"model": spec.name, "messages": [*MESSAGES, turn]}
    model, native = chat_request(body, lambda name: spec)
    assert model == spec.name
    return native["messages"][1]


def with_arguments(arguments: Any) -> dict[str, Any]:
    return {**CALL, "function": {**CALL["function"], "arguments": arguments}}


@pytest.mark.parametrize(
    ("spec", "history"),
    [
        pytest.param(QWQ_32B, QWQ_HISTORY, id="qwq"),
        pytest.param(R1_DISTILL_QWEN_32B, R1_HISTORY, id="r1"),
    ],
)
def test_each_model_states_its_tool_history(spec: ModelSpec, history: ToolHistory) -> None:
    assert spec.tool_history == history


# (tool_history, content sent, native content, native arguments)
HISTORIES = [
    pytest.param(QWQ_HISTORY, None, "", {"city": "Paris"}, id="qwq-null-content"),
    pytest.param(QWQ_HISTORY, "", "", {"city": "Paris"}, id="qwq-empty-content"),
    pytest.param(QWQ_HISTORY, "Checking.", "Checking.", {"city": "Paris"}, id="qwq-text"),
    pytest.param(R1_HISTORY, None, None, '{"city": "Paris"}', id="r1-null-content"),
    pytest.param(R1_HISTORY, "", None, '{"city": "Paris"}', id="r1-empty-content"),
    pytest.param(R1_HISTORY, "Checking.", "Checking.", '{"city": "Paris"}', id="r1-text"),
]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize(("history", "content", "native_content", "arguments"), HISTORIES)
def test_history_tool_calls_follow_the_spec_not_the_model(
    spec: ModelSpec, history: ToolHistory, content: Any, native_content: Any, arguments: Any
) -> None:
    turn = assistant_turn(replace(spec, tool_history=history), content)

    assert turn == {
        "role": "assistant",
        "content": native_content,
        "tool_calls": [with_arguments(arguments)],
    }


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param({"city": "Paris"}, id="already-an-object"),
    ],
)
def test_qwq_keeps_arguments_it_cannot_decode(arguments: Any) -> None:
    turn = assistant_turn(QWQ_32B, None, with_arguments(arguments))

    assert turn["tool_calls"] == [with_arguments(arguments)]


def test_r1_keeps_the_json_text_as_sent() -> None:
    text = json.dumps({"city": "東京"}, ensure_ascii=False, indent=1)

    turn = assistant_turn(R1_DISTILL_QWEN_32B, None, with_arguments(text))

    assert turn["tool_calls"][0]["function"]["arguments"] == text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "'/messages/0/content/0/text'",
            id="text-part-not-a-string",
        ),
        pytest.param(
            {"messages": [{"role": "assistant", "content": "a", "tool_calls": 5}], "model": QWQ},
            "'/messages/0/tool_calls'",
            id="tool-calls-not-a-list",
        ),
        pytest.param({"messages": MESSAGES, "tools": 5}, "'/tools'", id="tools-not-a-list"),
        pytest.param(
            {
                "messages": MESSAGES,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}],
            },
            "'/tools/0/function/parameters'",
            id="tool-parameters-not-an-object",
        ),
    ],
)
def test_malformed_bodies_are_bad_input_never_a_server_error(
    client: TestClient, body: dict[str, Any], fragment: str
) -> None:
    response = client.post(CHAT, json={"model": QWQ, **body}, headers=AUTH)

    assert_error(response, 400, 5006, fragment)
