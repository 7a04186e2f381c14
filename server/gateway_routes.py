"""AI Gateway URL forms (`https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai/...`).

Gateway headers (`cf-aig-*`) are accepted and ignored, except `cf-aig-request-timeout`, which
shortens the request's deadline. The bare `{model}` form is registered last: it would otherwise
swallow the other two.
"""

from fastapi import APIRouter, Request, Response

from server.deps import Authenticated, ServedAccount, TextGenerationService
from server.openai_routes import chat
from server.routes import read_json, run

router = APIRouter(dependencies=[Authenticated, ServedAccount])

PREFIX = "/v1/{account_id}/{gateway_id}/workers-ai"


@router.post(PREFIX + "/v1/chat/completions")
async def chat_completions(request: Request, service: TextGenerationService) -> Response:
    return await chat(request, service)


@router.post(PREFIX + "/run/{model:path}")
async def run_model(model: str, request: Request, service: TextGenerationService) -> Response:
    return await run(request, service, model, await read_json(request))


@router.post(PREFIX + "/{model:path}")
async def run_model_bare(model: str, request: Request, service: TextGenerationService) -> Response:
    return await run(request, service, model, await read_json(request))
