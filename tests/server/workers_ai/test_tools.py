"""Tools over the fake engine: rendering, parsing calls out of the output, streaming them."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from chat_templates import ChatTemplate
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events

PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
BARE_TOOL = {"name": "get_weather", "description": "Current weather", "parameters": PARAMETERS}
WRAPPED_TOOL = {"type": "function", "function": BARE_TOOL}
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
CALL_OUTPUT = [
    "The user wants weather.\n",
    "</think>\n\n",
    "<tool_call>\n",
    '{"name": "get_weather", ',
    '"arguments": {"city": "Paris"}}',
    "\n</tool_call>",
]
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def post(client: TestClient, model: str, **body: Any) -> Any:
    return client.post(run_url(model), json={"messages": MESSAGES, **body}, headers=AUTH)


def prompt_of(engine: FakeEngine) -> str:
    return "".join(chr(token) for token in engine.calls[-1].prompt_token_ids)


@pytest.mark.parametrize("tool", [BARE_TOOL, WRAPPED_TOOL], ids=["bare", "wrapped"])
def test_tools_are_rendered_by_the_qwq_template(
    client: TestClient, engines: dict[str, FakeEngine], tool: dict[str, Any]
) -> None:
    post(client, QWQ, tools=[tool])

    expected = ChatTemplate.builtin("qwq-32b").render(MESSAGES, tools=[tool])
    assert prompt_of(engines[QWQ]) == expected
    assert "# Tools" in expected


def test_r1_template_ignores_tools(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    post(client, R1, tools=[WRAPPED_TOOL])

    assert "get_weather" not in prompt_of(engines[R1])


def test_tool_calls_are_parsed_out_of_the_response(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = CALL_OUTPUT

    result = post(client, QWQ, tools=[WRAPPED_TOOL]).json()["result"]

    assert result["tool_calls"] == [WEATHER_CALL]
    assert result["response"] == "The user wants weather.\n</think>\n\n"


def test_several_calls_per_turn(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    second = '<tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}</tool_call>'
    engines[QWQ].script = [*CALL_OUTPUT, "\n", second]

    result = post(client, QWQ, tools=[BARE_TOOL]).json()["result"]

    assert result["tool_calls"] == [
        WEATHER_CALL,
        {"name": "get_time", "arguments": {"zone": "CET"}},
    ]


def test_calls_inside_the_reasoning_are_not_calls(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = [
        'Maybe <tool_call>{"name": "x", "arguments": {}}</tool_call>?',
        "</think>ok",
    ]

    result = post(client, QWQ, tools=[BARE_TOOL]).json()["result"]

    assert result["tool_calls"] == []
    assert "<tool_call>" in result["response"]


def test_without_tools_nothing_is_parsed(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = CALL_OUTPUT

    result = post(client, QWQ).json()["result"]

    assert result["tool_calls"] == []
    assert result["response"] == "".join(CALL_OUTPUT)


def test_malformed_call_stays_in_the_response(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ["</think>", "<tool_call>{broken</tool_call>"]

    result = post(client, QWQ, tools=[BARE_TOOL]).json()["result"]

    assert result["tool_calls"] == []
    assert result["response"] == "</think><tool_call>{broken</tool_call>"


def test_streamed_tool_call_is_one_event(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = CALL_OUTPUT

    response = post(client, QWQ, tools=[WRAPPED_TOOL], stream=True)

    events, done = parse_events(response.text)
    assert done
    calls = [event for event in events if "tool_calls" in event]
    assert len(calls) == 1
    assert calls[0]["tool_calls"] == [WEATHER_CALL]
    assert calls[0]["response"] == ""
    text = "".join(event["response"] for event in events)
    assert text == "The user wants weather.\n</think>\n\n"
    assert events[0]["response"] == "The user wants weather.\n"


def test_multi_turn_with_tool_results(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    messages: list[dict[str, Any]] = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": WEATHER_CALL}],
        },
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "abc123def"},
    ]

    response = client.post(
        run_url(QWQ), json={"messages": messages, "tools": [BARE_TOOL]}, headers=AUTH
    )

    assert response.status_code == 200
    expected = ChatTemplate.builtin("qwq-32b").render(messages, tools=[BARE_TOOL])
    assert prompt_of(engines[QWQ]) == expected
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in expected


@pytest.mark.parametrize(
    "tool",
    [
        {"name": "f"},
        {"name": "f", "description": "d", "parameters": {"type": "object"}},
        {"type": "function"},
        "get_weather",
    ],
    ids=["no-description", "no-properties", "wrapped-no-function", "not-an-object"],
)
def test_malformed_tools_are_5006(client: TestClient, tool: Any) -> None:
    assert_error(post(client, QWQ, tools=[tool]), 400, 5006, "'/tools")
