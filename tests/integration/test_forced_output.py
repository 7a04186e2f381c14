"""Tool calls and reasoning, parsed from real vLLM output that a grammar forces."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.settings import load_settings
from tests.integration.conftest import TINY_CONFIG
from tests.support.forced import QWQ, ForcedEngine, forced_server, literal
from tests.support.live_server import TOKEN
from tests.support.sse import parse_events

# vLLM runs in this process here; its own imports warn about their dependencies.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:vllm"),
    pytest.mark.filterwarnings("ignore::FutureWarning:vllm"),
]

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}
REASONING = "The user asks for the weather. I will call the tool.\n</think>\n\n"
WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TIME = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'


@pytest.fixture(scope="module")
def forced() -> Iterator[tuple[httpx.Client, ForcedEngine]]:
    with forced_server(load_settings(TINY_CONFIG)) as (base_url, engine):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            yield client, engine


def ask(forced: tuple[httpx.Client, ForcedEngine], output: str, **body: Any) -> httpx.Response:
    client, engine = forced
    engine.regex = literal(output)
    payload = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [TOOL],
        "max_tokens": 200,
        **body,
    }
    return client.post(f"/client/v4/accounts/a/ai/run/{QWQ}", json=payload)


def test_the_forced_text_comes_back_verbatim(forced: tuple[httpx.Client, ForcedEngine]) -> None:
    text = REASONING + "Nothing to call, it is sunny."

    result = ask(forced, text).json()["result"]

    assert result["response"] == text
    assert result["tool_calls"] == []


def test_a_tool_call_is_parsed(forced: tuple[httpx.Client, ForcedEngine]) -> None:
    result = ask(forced, REASONING + WEATHER).json()["result"]

    assert result["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert result["response"] == REASONING


def test_two_tool_calls_in_one_turn(forced: tuple[httpx.Client, ForcedEngine]) -> None:
    result = ask(forced, REASONING + WEATHER + "\n" + TIME).json()["result"]

    assert [call["name"] for call in result["tool_calls"]] == ["get_weather", "get_time"]
    assert result["response"] == REASONING + "\n"


def test_a_malformed_call_stays_text(forced: tuple[httpx.Client, ForcedEngine]) -> None:
    broken = '<tool_call>\n{"name": "get_weather", "arguments": }\n</tool_call>'

    result = ask(forced, REASONING + broken).json()["result"]

    assert result["tool_calls"] == []
    assert result["response"] == REASONING + broken


def test_a_call_inside_the_reasoning_is_not_a_call(
    forced: tuple[httpx.Client, ForcedEngine],
) -> None:
    text = "Should I write " + WEATHER + "? No.\n</think>\n\nIt is sunny."

    result = ask(forced, text).json()["result"]

    assert result["tool_calls"] == []
    assert result["response"] == text


def test_streamed_call_is_one_event_after_the_text(
    forced: tuple[httpx.Client, ForcedEngine],
) -> None:
    response = ask(forced, REASONING + WEATHER, stream=True)

    events, done = parse_events(response.text)
    assert done
    call_events = [event for event in events if "tool_calls" in event]
    assert call_events == [
        {
            "response": "",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
            "p": call_events[0]["p"],
        }
    ]
    before = events[: events.index(call_events[0])]
    assert "".join(event["response"] for event in before) == REASONING
    assert len(before) > 1  # the reasoning streamed token by token, not held back
    assert "usage" in events[-1]


def test_json_after_reasoning_drops_the_reasoning(
    forced: tuple[httpx.Client, ForcedEngine],
) -> None:
    result = ask(
        forced,
        "Let me think.\n</think>\n\n" + '{"city": "Paris", "temp": 21}',
        guided_json={"type": "object"},
        json_after_reasoning=True,
        include_reasoning=True,
    ).json()["result"]

    assert result["response"] == {"city": "Paris", "temp": 21}
    assert result["reasoning"] == "Let me think.\n"
