"""Workers AI routes. Each route parses, calls the service, returns."""

import json
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from server.cancellation import cancel_on_disconnect
from server.deps import Authenticated, ServedAccount, TextGenerationService
from server.errors import BadInput, MissingBody, success_envelope
from server.output import StreamEvent
from server.service import PreparedRequest, TextGeneration
from server.streaming import sse_stream

STAND_IN_HEADER = "X-Workers-AI-Local-Stand-In"
# AI Gateway's per-request timeout header, in milliseconds; it can only shorten the server's.
TIMEOUT_HEADER = "cf-aig-request-timeout"

accounts = APIRouter(dependencies=[Authenticated, ServedAccount])


@accounts.post("/accounts/{account_id}/ai/run/{model:path}")
async def run_model(model: str, request: Request, service: TextGenerationService) -> Response:
    return await run(request, service, model, await read_json(request))


@accounts.post("/accounts/{account_id}/ai/run")
async def run_universal(request: Request, service: TextGenerationService) -> Response:
    """The universal form: `{"model": "@cf/...", "input": {...}}`."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadInput("required properties at '/' are 'model'")
    return await run(request, service, body["model"], body.get("input"))


async def run(request: Request, service: TextGeneration, model: str, body: Any) -> Response:
    """Run a native Workers AI request: a JSON envelope, or Workers AI's SSE stream."""
    prepared = service.prepare(model, body, timeout_s=requested_timeout(request))
    request_id = uuid.uuid4().hex
    headers = response_headers(prepared, request_id)
    if prepared.stream:
        events = await start_stream(request, service.events(prepared, request_id))
        return EventSourceResponse(
            sse_stream(events, include_reasoning=prepared.include_reasoning),
            headers=headers,
            ping=0,
            sep="\n",
        )
    result = await cancel_on_disconnect(request, service.complete(prepared, request_id))
    unset = {"reasoning"} if result.reasoning is None else None
    return JSONResponse(success_envelope(result.model_dump(exclude=unset)), headers=headers)


async def start_stream(
    request: Request, events: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    """Wait for the first event before answering, so that a failure before any output is a
    plain HTTP error rather than an in-band one; return the whole stream."""
    first = await cancel_on_disconnect(request, anext(events))
    return _prepend(first, events)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise MissingBody()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInput(f"the request body is not valid JSON ({error})") from None


def requested_timeout(request: Request) -> float | None:
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        raise BadInput(f"header '{TIMEOUT_HEADER}' must be a number of milliseconds") from None
    if milliseconds <= 0:
        raise BadInput(f"header '{TIMEOUT_HEADER}' must be positive")
    return milliseconds / 1000


def response_headers(prepared: PreparedRequest, request_id: str) -> dict[str, str]:
    headers = {"X-Request-Id": request_id}
    if prepared.model.stand_in:
        headers[STAND_IN_HEADER] = prepared.model.stand_in
    return headers


async def _prepend(
    first: StreamEvent, rest: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    yield first
    async with aclosing(rest):
        async for item in rest:
            yield item
