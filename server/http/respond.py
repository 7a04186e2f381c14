"""One run flow for both API families: a prepared request, answered whole or as an SSE stream.

    respond(request, service, prepared, response_id, response_format) -> Response

Streamed: the first service event is awaited before the response starts, so that a failure
before any output is a plain HTTP error rather than an in-band one. Whole: the output is
collected, and a client that leaves meanwhile aborts the engine request.

The request's access line (`server.http.request_log`) learns the usage from here, and the errors
it could not see otherwise: one sent in-band, or the client leaving a stream early.
"""

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from server.errors import ClientDisconnected, InternalError, WorkersAIError
from server.generation.interruptible import Interruptible
from server.generation.output import Finished, StreamEvent
from server.generation.service import Collected, PreparedRequest, TextGeneration, collect
from server.http.cancellation import DisconnectWatch
from server.http.exact_json import ExactJSONResponse
from server.http.sse import StreamFormat, sse_body, sse_response
from server.request_context import current_request, note_error, note_first_event, note_usage

STAND_IN_HEADER = "X-Workers-AI-Local-Stand-In"


class ResponseFormat(StreamFormat, Protocol):
    """One API family's answer to one request: its SSE payloads, or its whole JSON body."""

    def body(self, output: Collected) -> dict[str, Any]: ...


async def respond(
    request: Request,
    service: TextGeneration,
    prepared: PreparedRequest,
    response_id: str,
    response_format: ResponseFormat,
) -> Response:
    """`response_id` is unique to this response (the OpenAI `id`, or a fresh uuid)."""
    headers = response_headers(prepared)
    steps = Interruptible()  # its deadline ends them, and the drain a stream's
    events = _recorded(service.events(prepared, engine_request_id(response_id), steps))
    watch = DisconnectWatch(request.receive)
    if prepared.stream:
        try:
            stream = await start_stream(watch, events)
        except BaseException:
            watch.close()
            raise
        # The response goes on listening, and stops when it has been sent.
        return sse_response(sse_body(stream, response_format, steps), headers, watch)
    try:
        async with watch.guard():
            output = await collect(events)
    finally:
        watch.close()
    return ExactJSONResponse(response_format.body(output), headers=headers)


def response_headers(prepared: PreparedRequest) -> dict[str, str]:
    # X-Request-Id is set on every response, errors included, by server.http.request_log.
    if prepared.model.stand_in:
        return {STAND_IN_HEADER: prepared.model.stand_in}
    return {}


def engine_request_id(response_id: str) -> str:
    """The engine's id for this generation: `<request id>-<response id>`.

    It starts with the request's id, so vLLM's lines about it can be found from the access log;
    the response id keeps it unique, since a client-chosen request id can be sent twice.
    """
    request = current_request()
    return response_id if request is None else f"{request.request_id}-{response_id}"


async def start_stream(
    watch: DisconnectWatch, events: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    """Wait for the first event before answering; return the whole stream."""
    try:
        async with watch.guard():
            first = await anext(events)
    except BaseException:
        await events.aclose()  # the engine request is aborted before the error is answered
        raise
    return _prepend(first, events)


async def _prepend(
    first: StreamEvent, rest: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    yield first
    async with aclosing(rest):
        async for item in rest:
            yield item


async def _recorded(
    events: AsyncGenerator[StreamEvent, None],
) -> AsyncGenerator[StreamEvent, None]:
    """`events`, noting for the access line and the metrics the first event's time, the usage,
    an error, or the client leaving early."""
    finished = False
    first = True
    handed_to_engine = time.perf_counter()  # the request is templated and tokenized by now
    try:
        async with aclosing(events):
            async for event in events:
                if first:
                    first = False
                    note_first_event(handed_to_engine)
                if isinstance(event, Finished):
                    finished = True
                    note_usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                yield event
    except Exception as error:
        # Either way the client is answered with this code, in-band or as the HTTP error.
        note_error(error.code if isinstance(error, WorkersAIError) else InternalError.code)
        raise
    except (GeneratorExit, asyncio.CancelledError):
        # Closed or cancelled before the end: the client left (or the server is stopping).
        if not finished:
            note_error(ClientDisconnected.code)
        raise
