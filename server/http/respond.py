"""One run flow for both API families: a prepared request, answered whole or as an SSE stream.

    respond(request, service, prepared, request_id, response_format) -> Response

Streamed: the first service event is awaited before the response starts, so that a failure
before any output is a plain HTTP error rather than an in-band one. Whole: the output is
collected, and a client that leaves meanwhile aborts the engine request.
"""

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Protocol

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response

from server.generation.output import StreamEvent
from server.generation.service import Collected, PreparedRequest, TextGeneration, collect
from server.http.cancellation import cancel_on_disconnect
from server.http.sse import StreamFormat, sse_body, sse_response

STAND_IN_HEADER = "X-Workers-AI-Local-Stand-In"


class ResponseFormat(StreamFormat, Protocol):
    """One API family's answer to one request: its SSE payloads, or its whole JSON body."""

    def body(self, output: Collected) -> dict[str, Any]: ...


async def respond(
    request: Request,
    service: TextGeneration,
    prepared: PreparedRequest,
    request_id: str,
    response_format: ResponseFormat,
) -> Response:
    headers = response_headers(prepared, request_id)
    events = service.events(prepared, request_id)
    if prepared.stream:
        stream = await start_stream(request, events)
        return sse_response(sse_body(stream, response_format), headers)
    output = await cancel_on_disconnect(request, collect(events))
    return JSONResponse(response_format.body(output), headers=headers)


def response_headers(prepared: PreparedRequest, request_id: str) -> dict[str, str]:
    headers = {"X-Request-Id": request_id}
    if prepared.model.stand_in:
        headers[STAND_IN_HEADER] = prepared.model.stand_in
    return headers


async def start_stream(
    request: Request, events: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    """Wait for the first event before answering; return the whole stream."""
    first = await cancel_on_disconnect(request, anext(events))
    return _prepend(first, events)


async def _prepend(
    first: StreamEvent, rest: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    yield first
    async with aclosing(rest):
        async for item in rest:
            yield item
