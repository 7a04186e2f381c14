"""Server-sent events exactly as Workers AI frames them.

    data: {"response":"Hel","p":"abcdefg"}

    data: {"response":"","usage":{"prompt_tokens":24,"completion_tokens":17,"total_tokens":41}}

    data: [DONE]

Every event carries `response`; token events carry a random-length padding field `p` (Workers AI
pads events against token-length side channels; clients ignore it). An error after the first
byte becomes one in-band event with `errors`, then `[DONE]`.
"""

import json
import secrets
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from server.errors import WorkersAIError
from server.service import StreamEvent, TextChunk

PADDING = "abcdefghijklmnopqrstuvwxyz0123456789" * 2
MAX_PADDING = 50
DONE = b"data: [DONE]\n\n"


def padding() -> str:
    return PADDING[: secrets.randbelow(MAX_PADDING + 1)]


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE event: `data: <compact JSON>` and a blank line."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return b"data: " + text.encode() + b"\n\n"


async def sse_stream(events: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[bytes, None]:
    """Encode service events as Workers AI SSE, always ending with `[DONE]`."""
    try:
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextChunk):
                    yield encode({"response": event.text, "p": padding()})
                else:
                    yield encode({"response": "", "usage": event.usage.model_dump()})
    except WorkersAIError as error:
        yield encode({"response": "", "errors": [{"code": error.code, "message": error.message}]})
    yield DONE
