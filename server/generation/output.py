"""Shape raw model text into what a Workers AI client receives.

Per request, an `OutputShaper` splits the stream into response text, reasoning (hidden only when
JSON mode lets the model reason first) and completed tool calls, in order.
"""

from dataclasses import dataclass

from engine.types import FinishReason
from server.generation.reasoning import ReasoningSplitter, Segment
from server.generation.schemas import ToolCall, Usage
from server.generation.tool_calls import ToolCallParser


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningChunk:
    """Reasoning kept out of `response` (JSON mode after reasoning)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class Finished:
    usage: Usage
    finish_reason: FinishReason | None = None


StreamEvent = TextChunk | ReasoningChunk | ToolCallChunk | Finished


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How to read one request's output.

    `in_reasoning`: the prompt opened the reasoning, so output starts inside it.
    `hide_reasoning`: reasoning and `</think>` are not part of `response`.
    `parse_tools`: the request offered tools; tool calls are read from the text after reasoning.
    """

    in_reasoning: bool = False
    hide_reasoning: bool = False
    parse_tools: bool = False


class OutputShaper:
    def __init__(self, plan: OutputPlan) -> None:
        self._plan = plan
        self._splitter = ReasoningSplitter(in_reasoning=plan.in_reasoning)
        self._tools = ToolCallParser() if plan.parse_tools else None

    def feed(self, text: str) -> list[StreamEvent]:
        return self._shape(self._splitter.feed(text), final=False)

    def finish(self) -> list[StreamEvent]:
        return self._shape(self._splitter.finish(), final=True)

    def _shape(self, segments: list[Segment], *, final: bool) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for segment in segments:
            if segment.kind == "content":
                events.extend(self._content(segment.text))
            elif not self._plan.hide_reasoning:
                events.append(TextChunk(segment.text))
            elif segment.kind == "reasoning":
                events.append(ReasoningChunk(segment.text))
        if final and self._tools is not None:
            events.extend(TextChunk(text) for text in self._tools.finish())
        return events

    def _content(self, text: str) -> list[StreamEvent]:
        if self._tools is None:
            return [TextChunk(text)]
        return [
            TextChunk(piece) if isinstance(piece, str) else ToolCallChunk(piece)
            for piece in self._tools.feed(text)
        ]
