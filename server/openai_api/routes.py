"""OpenAI-compatible routes under `.../ai/v1/`, and the AI Gateway form of chat completions.

POST .../accounts/{account_id}/ai/v1/chat/completions
POST .../accounts/{account_id}/ai/v1/completions
GET  .../accounts/{account_id}/ai/v1/models
POST /v1/{account_id}/{gateway_id}/workers-ai/v1/chat/completions      (`gateway`)
"""

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from server.http.account_route import AccountRoute
from server.http.body import read_json, requested_timeout, session_affinity
from server.http.respond import respond
from server.http.state import serving_of, text_generation_of
from server.openai_api.requests import chat_request, completion_request
from server.openai_api.responses import ChatCompletion, TextCompletion, include_usage, new_id

router = APIRouter(route_class=AccountRoute)
gateway = APIRouter(route_class=AccountRoute)


@router.post("/accounts/{account_id}/ai/v1/chat/completions")
@gateway.post("/v1/{account_id}/{gateway_id}/workers-ai/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    """An OpenAI chat completion, streamed or not, through the Workers AI service."""
    service = text_generation_of(request)
    body = await read_json(request)
    model, native = chat_request(body, service.spec)
    prepared = await service.prepare(
        model,
        native,
        timeout_s=requested_timeout(request),
        session_id=session_affinity(request),
        separate_reasoning=True,
    )
    request_id = new_id("chatcmpl")
    answer = ChatCompletion(model, request_id, int(time.time()), include_usage(body))
    return await respond(request, service, prepared, request_id, answer)


@router.post("/accounts/{account_id}/ai/v1/completions")
async def completions(request: Request) -> Response:
    service = text_generation_of(request)
    body = await read_json(request)
    model, native = completion_request(body, service.spec)
    prepared = await service.prepare(
        model,
        native,
        timeout_s=requested_timeout(request),
        session_id=session_affinity(request),
    )
    request_id = new_id("cmpl")
    answer = TextCompletion(model, request_id, int(time.time()), include_usage(body))
    return await respond(request, service, prepared, request_id, answer)


@router.get("/accounts/{account_id}/ai/v1/models")
async def list_models(request: Request) -> JSONResponse:
    serving = serving_of(request)
    created = int(serving.started_at)
    data = [
        {"id": spec.name, "object": "model", "created": created, "owned_by": spec.author}
        for spec in map(serving.generation.spec, serving.generation.model_names())
    ]
    return JSONResponse({"object": "list", "data": data})
