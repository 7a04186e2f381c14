"""Server-sent events exactly as Workers AI frames them.

    data: {"response":"Hel","p":"abcdefg"}

    data: {"response":"","usage":{"prompt_tokens":24,"completion_tokens":17,"total_tokens":41}}

    data: [DONE]

Every event carries `response`; token events carry a random-length padding field `p` (Workers AI
pads events against token-length side channels; clients ignore it). A completed tool call is one
event `{"response": "", "tool_calls": [...]}`. An error after the first byte becomes one in-band
event with `errors`, then `[DONE]`.
"""

import json
import secrets
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from server.errors import WorkersAIError
from server.output import Finished, ReasoningChunk, StreamEvent, TextChunk, ToolCallChunk

PADDING = "abcdefghijklmnopqrstuvwxyz0123456789" * 2
MAX_PADDING = 50
DONE = b"data: [DONE]\n\n"


def padding() -> str:
    return PADDING[: secrets.randbelow(MAX_PADDING + 1)]


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE event: `data: <compact JSON>` and a blank line."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return b"data: " + text.encode() + b"\n\n"


def event_payload(event: StreamEvent, *, include_reasoning: bool) -> dict[str, Any] | None:
    """The JSON of one event, or None for reasoning the client did not ask for."""
    if isinstance(event, TextChunk):
        return {"response": event.text, "p": padding()}
    if isinstance(event, ToolCallChunk):
        return {"response": "", "tool_calls": [event.call.model_dump()], "p": padding()}
    if isinstance(event, ReasoningChunk):
        if not include_reasoning:
            return None
        return {"response": "", "reasoning": event.text, "p": padding()}
    assert isinstance(event, Finished)
    return {"response": "", "usage": event.usage.model_dump()}


async def sse_stream(
    events: AsyncGenerator[StreamEvent, None], *, include_reasoning: bool = False
) -> AsyncGenerator[bytes, None]:
    """Encode service events as Workers AI SSE, always ending with `[DONE]`."""
    try:
        async with aclosing(events):
            async for event in events:
                payload = event_payload(event, include_reasoning=include_reasoning)
                if payload is not None:
                    yield encode(payload)
    except WorkersAIError as error:
        yield encode({"response": "", "errors": [{"code": error.code, "message": error.message}]})
    yield DONE
