"""`OutputShaper`: raw model text as response text, reasoning and tool calls, in order.

Reasoning (up to `</think>`) is text unless the plan hides it, then it is `ReasoningChunk`s and
the marker goes; tool calls are read only from the text after the reasoning.
"""

import pytest

from server.generation.output import (
    OutputPlan,
    OutputShaper,
    ReasoningChunk,
    StreamEvent,
    TextChunk,
    ToolCallChunk,
)
from server.generation.schemas import ToolCall

WEATHER = ToolCall(name="get_weather", arguments={"city": "Paris"})
TIME = ToolCall(name="get_time", arguments={})
BLOCK = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TIME_BLOCK = '<tool_call>{"name": "get_time"}</tool_call>'
THINKING_OF_A_CALL = f"I could write {BLOCK} here."

REASONING = OutputPlan(in_reasoning=True)
HIDDEN = OutputPlan(in_reasoning=True, hide_reasoning=True)
TOOLS = OutputPlan(in_reasoning=True, parse_tools=True)
HIDDEN_TOOLS = OutputPlan(in_reasoning=True, hide_reasoning=True, parse_tools=True)


def shape(plan: OutputPlan, chunks: list[str]) -> list[StreamEvent]:
    shaper = OutputShaper(plan)
    events = [event for chunk in chunks for event in shaper.feed(chunk)]
    return events + shaper.finish()


def merged(events: list[StreamEvent]) -> list[StreamEvent]:
    """Adjacent text and adjacent reasoning joined: what a client assembles."""
    out: list[StreamEvent] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, TextChunk) and isinstance(last, TextChunk):
            out[-1] = TextChunk(last.text + event.text)
        elif isinstance(event, ReasoningChunk) and isinstance(last, ReasoningChunk):
            out[-1] = ReasoningChunk(last.text + event.text)
        else:
            out.append(event)
    return out


def chunked(text: str, size: int) -> list[str]:
    return [text[index : index + size] for index in range(0, len(text), size)]


CASES = [
    pytest.param(OutputPlan(), ["Hello", " world"], [TextChunk("Hello world")], id="plain"),
    pytest.param(
        REASONING,
        ["Think.</think>", "\n\nParis."],
        [TextChunk("Think.</think>\n\nParis.")],
        id="reasoning-shown-with-its-marker",
    ),
    pytest.param(
        HIDDEN,
        ["Think.</think>", "\n\nParis."],
        [ReasoningChunk("Think."), TextChunk("\n\nParis.")],
        id="reasoning-hidden-without-its-marker",
    ),
    pytest.param(
        HIDDEN,
        ["Still thinking </thi"],
        [ReasoningChunk("Still thinking </thi")],
        id="unfinished-reasoning-stays-reasoning",
    ),
    pytest.param(
        TOOLS,
        [THINKING_OF_A_CALL, "</think>", "\n\n", BLOCK],
        [TextChunk(THINKING_OF_A_CALL + "</think>\n\n"), ToolCallChunk(WEATHER)],
        id="calls-parsed-only-after-shown-reasoning",
    ),
    pytest.param(
        HIDDEN_TOOLS,
        [THINKING_OF_A_CALL, "</think>", "\n\n", BLOCK],
        [ReasoningChunk(THINKING_OF_A_CALL), TextChunk("\n\n"), ToolCallChunk(WEATHER)],
        id="calls-parsed-only-after-hidden-reasoning",
    ),
    pytest.param(
        OutputPlan(parse_tools=True),
        ["Checking. ", BLOCK, " and ", TIME_BLOCK, " done."],
        [
            TextChunk("Checking. "),
            ToolCallChunk(WEATHER),
            TextChunk(" and "),
            ToolCallChunk(TIME),
            TextChunk(" done."),
        ],
        id="text-and-calls-in-order",
    ),
    pytest.param(
        OutputPlan(),
        [BLOCK],
        [TextChunk(BLOCK)],
        id="no-tools-offered-no-calls-parsed",
    ),
    pytest.param(
        OutputPlan(parse_tools=True),
        ["Almost <tool_call>{", '"name": "f"'],
        [TextChunk('Almost <tool_call>{"name": "f"')],
        id="unclosed-call-is-text-at-the-end",
    ),
    pytest.param(
        OutputPlan(parse_tools=True),
        ["Ends with <tool_"],
        [TextChunk("Ends with <tool_")],
        id="held-tail-is-text-at-the-end",
    ),
]


@pytest.mark.parametrize(("plan", "chunks", "expected"), CASES)
def test_output_is_shaped_by_the_plan(
    plan: OutputPlan, chunks: list[str], expected: list[StreamEvent]
) -> None:
    assert merged(shape(plan, chunks)) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000], ids=lambda size: f"chunks-of-{size}")
def test_any_chunking_shapes_the_same_output(size: int) -> None:
    text = f"{THINKING_OF_A_CALL}</think>\n\nChecking. {BLOCK} and {TIME_BLOCK} done."

    events = merged(shape(HIDDEN_TOOLS, chunked(text, size)))

    assert events == [
        ReasoningChunk(THINKING_OF_A_CALL),
        TextChunk("\n\nChecking. "),
        ToolCallChunk(WEATHER),
        TextChunk(" and "),
        ToolCallChunk(TIME),
        TextChunk(" done."),
    ]


def test_text_is_given_out_as_it_arrives() -> None:
    shaper = OutputShaper(OutputPlan(parse_tools=True))

    assert shaper.feed("Hello") == [TextChunk("Hello")]
    assert shaper.feed(" <tool") == [TextChunk(" ")]
    assert shaper.feed("_call>") == []
    assert shaper.feed(BLOCK.removeprefix("<tool_call>")) == [ToolCallChunk(WEATHER)]
    assert shaper.finish() == []
