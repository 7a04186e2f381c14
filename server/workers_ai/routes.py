"""Workers AI's run routes, and their AI Gateway forms. Each route parses, calls, returns.

    POST /client/v4/accounts/{account_id}/ai/run/{model}           (also without /client/v4)
    POST /client/v4/accounts/{account_id}/ai/run                   {"model", "input"}
    POST /v1/{account_id}/{gateway_id}/workers-ai/run/{model}      AI Gateway
    POST /v1/{account_id}/{gateway_id}/workers-ai/{model}          AI Gateway, bare form

Gateway headers (`cf-aig-*`) are accepted and ignored, except `cf-aig-request-timeout`, which
shortens the request's deadline. The bare gateway form is registered after every other gateway
route (registered last here, and the app includes `gateway` last): it would otherwise swallow
them.
"""

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from server.errors import BadInput
from server.http.account_route import AccountRoute
from server.http.body import read_json, requested_timeout, session_affinity
from server.http.respond import respond
from server.http.state import text_generation_of
from server.workers_ai.events import WorkersAIFormat

router = APIRouter(route_class=AccountRoute)
gateway = APIRouter(route_class=AccountRoute)

GATEWAY = "/v1/{account_id}/{gateway_id}/workers-ai"


@router.post("/accounts/{account_id}/ai/run/{model:path}")
@gateway.post(GATEWAY + "/run/{model:path}")
async def run_model(request: Request) -> Response:
    return await run(request, path_model(request), await read_json(request))


@router.post("/accounts/{account_id}/ai/run")
async def run_universal(request: Request) -> Response:
    """The universal form: `{"model": "@cf/...", "input": {...}}`."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadInput("required properties at '/' are 'model'")
    return await run(request, body["model"], body.get("input"))


@gateway.post(GATEWAY + "/{model:path}")
async def run_model_bare(request: Request) -> Response:
    return await run(request, path_model(request), await read_json(request))


def path_model(request: Request) -> str:
    """The `{model}` of the path, read by hand: as a declared parameter FastAPI would validate
    it on every request (the OpenAPI document lists it, from the path)."""
    model: str = request.path_params["model"]
    return model


async def run(request: Request, model: str, body: Any) -> Response:
    """Run a native Workers AI request: a JSON envelope, or Workers AI's SSE stream."""
    service = text_generation_of(request)
    prepared = await service.prepare(
        model,
        body,
        timeout_s=requested_timeout(request),
        session_id=session_affinity(request),
    )
    return await respond(request, service, prepared, uuid.uuid4().hex, WorkersAIFormat(prepared))
