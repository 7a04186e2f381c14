"""OpenAI-compatible routes under `.../ai/v1/`, and their AI Gateway form."""

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from server.cancellation import cancel_on_disconnect
from server.deps import Authenticated, ServedAccount, TextGenerationService
from server.errors import WorkersAIError
from server.openai_compat import (
    ChatChunks,
    CompletionChunks,
    chat_completion,
    chat_request,
    completion_request,
    include_usage,
    new_id,
    text_completion,
)
from server.output import StreamEvent
from server.routes import read_json, requested_timeout, response_headers, start_stream
from server.service import TextGeneration, collect
from server.streaming import DONE, encode

router = APIRouter(dependencies=[Authenticated, ServedAccount])


@router.post("/accounts/{account_id}/ai/v1/chat/completions")
async def chat_completions(request: Request, service: TextGenerationService) -> Response:
    return await chat(request, service)


@router.post("/accounts/{account_id}/ai/v1/completions")
async def completions(request: Request, service: TextGenerationService) -> Response:
    body = await read_json(request)
    model, native = completion_request(body, service.spec)
    prepared = service.prepare(model, native, timeout_s=requested_timeout(request))
    request_id, created = new_id("cmpl"), int(time.time())
    headers = response_headers(prepared, request_id)
    events = service.events(prepared, request_id)
    if prepared.stream:
        chunks = CompletionChunks(model, request_id, created, include_usage(body))
        stream = await start_stream(request, events)
        return _sse(_encoded(stream, chunks.payloads), headers)
    output = await cancel_on_disconnect(request, collect(events))
    return JSONResponse(text_completion(output, model, request_id, created), headers=headers)


@router.get("/accounts/{account_id}/ai/v1/models")
async def list_models(request: Request, service: TextGenerationService) -> JSONResponse:
    created = int(request.app.state.started_at)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": name.split("/")[1]}
        for name in service.model_names()
    ]
    return JSONResponse({"object": "list", "data": data})


async def chat(request: Request, service: TextGeneration) -> Response:
    """An OpenAI chat completion, streamed or not, through the Workers AI service."""
    body = await read_json(request)
    model, native = chat_request(body, service.spec)
    prepared = service.prepare(
        model, native, timeout_s=requested_timeout(request), separate_reasoning=True
    )
    request_id, created = new_id("chatcmpl"), int(time.time())
    headers = response_headers(prepared, request_id)
    events = service.events(prepared, request_id)
    if prepared.stream:
        chunks = ChatChunks(model, request_id, created, include_usage(body))
        stream = await start_stream(request, events)
        return _sse(_encoded(stream, chunks.payloads, first=chunks.first()), headers)
    output = await cancel_on_disconnect(request, collect(events))
    return JSONResponse(chat_completion(output, model, request_id, created), headers=headers)


def _sse(body: AsyncGenerator[bytes, None], headers: dict[str, str]) -> EventSourceResponse:
    return EventSourceResponse(body, headers=headers, ping=0, sep="\n")


async def _encoded(
    events: AsyncGenerator[StreamEvent, None],
    payloads: Any,
    first: dict[str, Any] | None = None,
) -> AsyncGenerator[bytes, None]:
    """OpenAI SSE: `data: <chunk>` events, then `data: [DONE]`; an error after the first byte
    becomes one in-band event carrying both OpenAI's and Cloudflare's error shapes."""
    if first is not None:
        yield encode(first)
    try:
        async with aclosing(events):
            async for event in events:
                for payload in payloads(event):
                    yield encode(payload)
    except WorkersAIError as error:
        # Both shapes: OpenAI SDKs raise on `error`, Workers AI clients read `errors`.
        detail = {"code": error.code, "message": error.message}
        yield encode({"error": detail, "errors": [detail]})
    yield DONE
