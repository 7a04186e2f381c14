"""Server-sent events, written once for both API families.

    data: <compact JSON>\\n\\n        one event per payload the family's format gives
    data: [DONE]\\n\\n                always last, whatever happened before

A `StreamFormat` turns service events into JSON payloads (Workers AI's in
`server.workers_ai.events`, OpenAI's in `server.openai_api.responses`); `sse_body` frames them.
An error after the first byte cannot change the HTTP status any more: it becomes one in-band
event, in the family's error shape, before `[DONE]`; so does the end of a graceful drain
(`server.http.drain.until_drained`).
"""

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Protocol

from sse_starlette import EventSourceResponse

from server.errors import InternalError, WorkersAIError
from server.generation.output import StreamEvent
from server.http.drain import until_drained

DONE = b"data: [DONE]\n\n"

logger = logging.getLogger(__name__)


class StreamFormat(Protocol):
    """One API family's SSE payloads for one request."""

    def opening(self) -> list[dict[str, Any]]:
        """Payloads sent before the first service event."""
        ...

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        """The payloads of one service event (none for events the client did not ask for)."""
        ...

    def error(self, error: WorkersAIError) -> dict[str, Any]:
        """The in-band event of an error raised after the stream started."""
        ...


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE event: `data: <compact JSON>` and a blank line."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return b"data: " + text.encode() + b"\n\n"


async def sse_body(
    events: AsyncGenerator[StreamEvent, None], stream_format: StreamFormat
) -> AsyncGenerator[bytes, None]:
    """Encode service events as SSE, always ending with `[DONE]`."""
    for payload in stream_format.opening():
        yield encode(payload)
    try:
        async with aclosing(until_drained(events)) as guarded:
            async for event in guarded:
                for payload in stream_format.payloads(event):
                    yield encode(payload)
    except WorkersAIError as error:
        yield encode(stream_format.error(error))
    except Exception:
        # The status line is long gone: whatever failed, the client gets an error event and
        # `[DONE]`, never a stream cut short. (Cancellation is not an Exception: it propagates.)
        logger.exception("a stream failed after its first event")
        yield encode(stream_format.error(InternalError()))
    yield DONE


def sse_response(body: AsyncGenerator[bytes, None], headers: dict[str, str]) -> EventSourceResponse:
    # The body is framed already; sse-starlette only streams it (no pings, no re-framing).
    return EventSourceResponse(body, headers=headers, ping=0, sep="\n")
