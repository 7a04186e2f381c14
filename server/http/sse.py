"""Server-sent events, written once for both API families.

    data: <compact JSON>\\n\\n        one event per payload the family's format gives
    data: [DONE]\\n\\n                always last, whatever happened before

A `StreamFormat` turns service events into JSON payloads (Workers AI's in
`server.workers_ai.events`, OpenAI's in `server.openai_api.responses`); `sse_body` frames them,
one write for each service event's payloads, and the last event's with `[DONE]`.
An error after the first byte cannot change the HTTP status any more: it becomes one in-band
event, in the family's error shape, before `[DONE]`; so does the end of a graceful drain
(`server.http.drain.ended_by_drain`).
"""

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing, nullcontext
from typing import Any, Protocol

import orjson
from fastapi.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from server.errors import ClientDisconnected, InternalError, WorkersAIError
from server.generation.interruptible import Interruptible
from server.generation.output import Finished, StreamEvent
from server.http.cancellation import DisconnectWatch
from server.http.drain import ended_by_drain

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


# For what orjson refuses: an integer beyond 64 bits (a tool call's arguments may hold one).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(payload: dict[str, Any]) -> bytes:
    """One SSE event: `data: <compact JSON>` and a blank line. orjson writes the compact UTF-8
    JSON the standard library writes, in a fifth of its time per token; only floats differ (it
    writes 1e-05 as 0.00001, as JavaScript does, and NaN as null, where `json` writes invalid
    JSON)."""
    try:
        data = orjson.dumps(payload)
    except TypeError:
        data = _COMPACT_JSON.encode(payload).encode()
    return b"data: " + data + b"\n\n"


def _encoded(payloads: list[dict[str, Any]]) -> bytes:
    return b"".join(encode(payload) for payload in payloads)


async def sse_body(
    events: AsyncGenerator[StreamEvent, None],
    stream_format: StreamFormat,
    steps: Interruptible | None = None,
) -> AsyncGenerator[bytes, None]:
    """Encode service events as SSE, always ending with `[DONE]`.

    Each chunk is one write to the client: the payloads of one service event (the opening ones
    with the first), and the last event's with `[DONE]`. The last event is sent as soon as it
    comes; the events may still end afterwards (a remote engine reads its upstream's body to
    the end), and nothing that happens then reaches the client any more. `steps`, the waits
    under `events`, are handed to the drain, which ends them when it is over.
    """
    pending = _encoded(stream_format.opening())
    done = False
    try:
        with nullcontext() if steps is None else ended_by_drain(steps):
            async with aclosing(events):
                async for event in events:
                    if done:
                        continue
                    pending += _encoded(stream_format.payloads(event))
                    if isinstance(event, Finished):
                        done = True
                        yield pending + DONE
                    elif pending:
                        yield pending
                    pending = b""
    except WorkersAIError as error:
        if done:
            logger.warning("after a stream's last event: %s", error.message)
            return
        pending += encode(stream_format.error(error))
    except Exception:
        if done:
            logger.exception("after a stream's last event")
            return
        # The status line is long gone: whatever failed, the client gets an error event and
        # `[DONE]`, never a stream cut short. (Cancellation is not an Exception: it propagates.)
        logger.exception("a stream failed after its first event")
        pending += encode(stream_format.error(InternalError()))
    if not done:
        yield pending + DONE


# No cache may keep a stream, and a proxy such as nginx must not buffer one.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class SSEResponse(EventSourceResponse):
    """FastAPI's `text/event-stream` response (Starlette's streaming one) for a framed body.

    Each chunk goes straight to the connection, with no timer, lock or task of its own: a
    relayed token costs one write. A client that leaves ends the writing (the request's
    `DisconnectWatch`, which listened while the first event was awaited); the body is closed
    either way before the response ends, so the engine's request is aborted at once rather than
    when the generator is collected.
    """

    def __init__(
        self, body: AsyncGenerator[bytes, None], headers: dict[str, str], watch: DisconnectWatch
    ) -> None:
        super().__init__(body, headers={**STREAM_HEADERS, **headers})
        self._body = body
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with self._watch.guard():
                await self.stream_response(send)
        except ClientDisconnected:
            pass  # nobody reads the rest; the access line notes the client left
        finally:
            self._watch.close()

    async def stream_response(self, send: Send) -> None:
        """Starlette's, except that the chunk with `[DONE]` ends the response itself (one write
        less per request); the body is then read to its end, unsent."""
        async with aclosing(self._body):
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            ended = False
            async for chunk in self._body:
                if ended:
                    continue
                ended = chunk.endswith(DONE)  # always the last chunk (`sse_body`)
                if ended:
                    # The disconnect uvicorn reports once a response is complete is not the
                    # client leaving: stop listening before completing it.
                    self._watch.close()
                await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
            if not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def sse_response(
    body: AsyncGenerator[bytes, None], headers: dict[str, str], watch: DisconnectWatch
) -> SSEResponse:
    return SSEResponse(body, headers, watch)
