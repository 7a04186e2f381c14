"""Hermes-style tool calls in model output: `<tool_call>{"name", "arguments"}</tool_call>`.

QwQ emits these after its reasoning, one block per call, several per turn. A well-formed block
becomes a `ToolCall` and leaves the response text; a malformed one stays in the text as written.
Streaming: text outside blocks passes through at once (minus a tail that could open a block), a
block is held until it closes and is then emitted whole.
"""

import json

from server.generation.reasoning import partial_suffix
from server.generation.schemas import ToolCall

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

Piece = str | ToolCall


class ToolCallParser:
    """Incremental parser over content text (reasoning excluded)."""

    def __init__(self) -> None:
        self._buffer = ""
        self._in_block = False

    def feed(self, text: str) -> list[Piece]:
        self._buffer += text
        pieces: list[Piece] = []
        while True:
            if self._in_block:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    return pieces
                body = self._buffer[len(OPEN) : end]
                raw = self._buffer[: end + len(CLOSE)]
                self._buffer = self._buffer[end + len(CLOSE) :]
                self._in_block = False
                call = parse_call(body)
                pieces.append(call if call is not None else raw)
            else:
                start = self._buffer.find(OPEN)
                if start < 0:
                    keep = partial_suffix(self._buffer, OPEN)
                    text_out = self._buffer[: len(self._buffer) - keep]
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    if text_out:
                        pieces.append(text_out)
                    return pieces
                if start:
                    pieces.append(self._buffer[:start])
                self._buffer = self._buffer[start:]
                self._in_block = True

    def finish(self) -> list[str]:
        """What is left: an unclosed block or a held tail stays text."""
        rest, self._buffer, self._in_block = self._buffer, "", False
        return [rest] if rest else []


def parse_call(body: str) -> ToolCall | None:
    """The call in a block's body, or None when the body is not a well-formed call."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name=value["name"], arguments=arguments)


def extract_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Whole-text form: (text without well-formed blocks, the calls in order)."""
    parser = ToolCallParser()
    pieces = parser.feed(text) + parser.finish()
    calls = [piece for piece in pieces if isinstance(piece, ToolCall)]
    return "".join(piece for piece in pieces if isinstance(piece, str)), calls
