"""Hermes-style `<tool_call>` blocks: parsed whole or left as text, however chunks fall."""

import pytest

from server.generation.schemas import ToolCall
from server.generation.tool_calls import ToolCallParser, extract_tool_calls, parse_call

WEATHER = ToolCall(name="get_weather", arguments={"city": "Paris"})
TIME = ToolCall(name="get_time", arguments={"zone": "CET", "format": {"h24": True}})
TWO_CALLS = (
    "Let me check.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET", "format": {"h24": true}}}'
    "\n</tool_call>"
)


def test_several_calls_are_extracted_and_removed() -> None:
    text, calls = extract_tool_calls(TWO_CALLS)

    assert calls == [WEATHER, TIME]
    assert text == "Let me check.\n\n"


@pytest.mark.parametrize(
    "block",
    [
        "<tool_call>not json</tool_call>",
        '<tool_call>{"arguments": {}}</tool_call>',
        '<tool_call>{"name": 3, "arguments": {}}</tool_call>',
        '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',
        '<tool_call>["f"]</tool_call>',
        '<tool_call>{"name": "f", "arguments": {}',
    ],
    ids=["not-json", "no-name", "name-not-string", "arguments-list", "not-object", "unclosed"],
)
def test_malformed_blocks_stay_text(block: str) -> None:
    text, calls = extract_tool_calls(f"before {block} after")

    assert calls == []
    assert text == f"before {block} after"


def test_string_arguments_are_decoded() -> None:
    assert parse_call('{"name": "f", "arguments": "{\\"a\\": 1}"}') == ToolCall(
        name="f", arguments={"a": 1}
    )


def test_missing_arguments_mean_none() -> None:
    assert parse_call('{"name": "f"}') == ToolCall(name="f", arguments={})


@pytest.mark.parametrize("size", [1, 3, 7, 11, 1000], ids=lambda size: f"chunks-of-{size}")
def test_streamed_calls_arrive_whole_and_in_order(size: int) -> None:
    parser = ToolCallParser()
    pieces = []
    for index in range(0, len(TWO_CALLS), size):
        pieces.extend(parser.feed(TWO_CALLS[index : index + size]))
    pieces.extend(parser.finish())

    calls = [piece for piece in pieces if isinstance(piece, ToolCall)]
    text = "".join(piece for piece in pieces if isinstance(piece, str))
    assert calls == [WEATHER, TIME]
    assert text == "Let me check.\n\n"
    assert pieces.index(WEATHER) < pieces.index(TIME)


def test_text_before_a_call_is_not_held_back() -> None:
    parser = ToolCallParser()

    assert parser.feed("Sure, ") == ["Sure, "]
    assert parser.feed("one moment <tool") == ["one moment "]
    assert parser.feed('_call>{"name": "f"}') == []
    assert parser.feed("</tool_call>") == [ToolCall(name="f", arguments={})]


def test_a_lookalike_tag_is_released_as_text() -> None:
    parser = ToolCallParser()

    assert parser.feed("a <tool") == ["a "]
    assert parser.feed("box> b") == ["<toolbox> b"]
