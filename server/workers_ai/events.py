"""Workers AI's response shapes: the `result` envelope, and SSE events exactly as it frames them.

    data: {"response":"Hel","p":"abcdefg"}

    data: {"response":"","usage":{"prompt_tokens":24,"completion_tokens":17,"total_tokens":41}}

    data: [DONE]

Every event carries `response`; token events carry a random-length padding field `p` (Workers AI
pads events against token-length side channels; clients ignore it). A completed tool call is one
event `{"response": "", "tool_calls": [...]}`. An error after the first byte becomes one in-band
event with `errors`, then `[DONE]` (framing: `server.http.sse`).
"""

import secrets
from typing import Any, assert_never

from server.errors import WorkersAIError, success_envelope
from server.generation.output import Finished, ReasoningChunk, StreamEvent, TextChunk, ToolCallChunk
from server.generation.service import Collected, PreparedRequest, workers_ai_result

PADDING = "abcdefghijklmnopqrstuvwxyz0123456789" * 2
MAX_PADDING = 50


# Random bytes drawn from the OS 4 KiB at a time: `secrets.randbelow` would ask it once per event.
_RANDOM_BATCH = 4096
_UNBIASED_BELOW = 256 - 256 % (MAX_PADDING + 1)  # bytes from here up would favour short lengths
_random = bytearray()


def padding() -> str:
    """A random-length prefix of PADDING, 0 to MAX_PADDING characters, each length as likely."""
    while True:
        if not _random:
            _random.extend(secrets.token_bytes(_RANDOM_BATCH))
        byte = _random.pop()
        if byte < _UNBIASED_BELOW:
            return PADDING[: byte % (MAX_PADDING + 1)]


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
    if isinstance(event, Finished):
        return {"response": "", "usage": event.usage.model_dump()}
    assert_never(event)


class WorkersAIFormat:
    """Workers AI's answer to one `/ai/run` request, streamed or whole."""

    def __init__(self, prepared: PreparedRequest) -> None:
        self._prepared = prepared

    def opening(self) -> list[dict[str, Any]]:
        return []

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        payload = event_payload(event, include_reasoning=self._prepared.include_reasoning)
        return [] if payload is None else [payload]

    def error(self, error: WorkersAIError) -> dict[str, Any]:
        return {"response": "", "errors": [{"code": error.code, "message": error.message}]}

    def body(self, output: Collected) -> dict[str, Any]:
        result = workers_ai_result(self._prepared, output)
        unset = {"reasoning"} if result.reasoning is None else None
        return success_envelope(result.model_dump(exclude=unset))
