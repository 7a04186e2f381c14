"""The Workers AI binding's routes: Miniflare's remote-proxy client calls them for `env.AI`.

    POST|GET /                       a binding call (header `MF-Binding`); with tokens configured,
                                     authenticated by `Authorization` (a proxy in front adds it)
    POST|GET /binding/{token}/       the same, authenticated by the token in the path: the
                                     connection string of a server with tokens
    WebSocket /, /binding/{token}/   the binding's JSRPC session (`?MF-Binding=`): held idle

Protocol, shapes and errors: `server.binding.protocol`. A run goes through the same service and
run flow as `/ai/run`; only its answer differs: the bare result, and errors as
`{"internalCode", "name", "description"}`. Errors are rendered here, not by the app's handlers,
for that shape, and because the app's handler of unexpected errors logs the path: a token. Not
in the OpenAPI document: the binding is no REST API.
"""

import asyncio
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from server.auth import authenticate
from server.binding.protocol import (
    BINDING_QUERY,
    REQUEST_ID_HEADER,
    URL_HEADER,
    BindingCall,
    ModelsCall,
    RunCall,
    error_body,
    parse_call,
    run_arguments,
    token_of,
)
from server.catalog.search import parse_search_query, with_swap_states
from server.errors import InternalError, WorkersAIError, success_envelope
from server.generation.service import Collected
from server.http.body import read_json
from server.http.request_log import shown_path
from server.http.respond import respond
from server.http.state import Served, Serving
from server.request_context import current_request_id, note_error
from server.settings import Settings
from server.workers_ai.events import WorkersAIFormat

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Why the server closes a binding WebSocket that spoke: this server does not serve JSRPC.
JSRPC_UNSERVED = "workers-ai-local serves env.AI.run() and env.AI.models() only"
# Miniflare opens one binding WebSocket per Worker request and keeps each until it is disposed
# (measured: 30 requests, 30 open sockets), so a long dev session would pile them up here. They
# are closed after this long; Miniflare logs nothing for it, even mid-request (measured).
IDLE_WEBSOCKET_S = 10.0


@router.api_route("/", methods=["GET", "POST"])
async def binding_call(request: Request, serving: Served) -> Response:
    return await answer(request, serving, request.headers.get("authorization"))


@router.api_route("/binding/{token:path}", methods=["GET", "POST"])
async def binding_call_with_token(token: str, request: Request, serving: Served) -> Response:
    return await answer(request, serving, f"Bearer {token_of(token)}")


@router.websocket("/")
async def binding_session(websocket: WebSocket) -> None:
    await hold_idle(websocket, websocket.headers.get("authorization"))


@router.websocket("/binding/{token:path}")
async def binding_session_with_token(token: str, websocket: WebSocket) -> None:
    await hold_idle(websocket, f"Bearer {token_of(token)}")


async def answer(request: Request, serving: Serving, authorization: str | None) -> Response:
    """Answer one binding call; a request without `MF-Binding` gets the app's 404."""
    call = parse_call(request.method, request.headers)
    try:
        authenticate(serving.settings, authorization)
        if isinstance(call, ModelsCall):
            return await search(serving, call)
        return await run(request, serving, call)
    except WorkersAIError as error:
        return failure(call, error)
    except Exception:
        logger.exception("unexpected error in a binding call")  # never the path: the token
        return failure(call, InternalError())


async def run(request: Request, serving: Serving, call: RunCall) -> Response:
    inputs, timeout_s = run_arguments(call, await read_json(request))
    service = serving.generation
    prepared = await service.prepare(
        call.model, inputs, timeout_s=timeout_s, session_id=call.session_id
    )
    response = await respond(request, service, prepared, uuid.uuid4().hex, BindingFormat(prepared))
    response.headers[REQUEST_ID_HEADER] = current_request_id()
    return response


async def search(serving: Serving, call: ModelsCall) -> Response:
    """The catalog page, in the envelope of `/ai/models/search`."""
    page = serving.catalog.search(parse_search_query(call.params))
    models = serving.generation.models
    states = {name: (await model.engine.status()).swap for name, model in models.items()}
    entries = with_swap_states(page.entries, states)
    return JSONResponse(
        {**success_envelope(entries), "result_info": page.result_info()},
        headers={REQUEST_ID_HEADER: current_request_id()},
    )


def failure(call: BindingCall, error: WorkersAIError) -> Response:
    note_error(error.code)  # for the access line, as the app's handlers do
    body = error.envelope() if isinstance(call, ModelsCall) else error_body(error)
    headers = {**error.headers(), REQUEST_ID_HEADER: current_request_id()}
    return JSONResponse(body, status_code=error.status, headers=headers)


class BindingFormat(WorkersAIFormat):
    """Workers AI's answer, whole as the bare `result` (streams as the REST routes')."""

    def body(self, output: Collected) -> dict[str, Any]:
        result: dict[str, Any] = super().body(output)["result"]
        return result


async def hold_idle(websocket: WebSocket, authorization: str | None) -> None:
    """Accept the binding's JSRPC WebSocket and hold it idle, for up to IDLE_WEBSOCKET_S.

    Refused (HTTP 403) without `MF-Binding` in the query, with a bad token, and for
    `run(..., {websocket: true})` (it carries `MF-URL`): streaming inference over a WebSocket is
    Cloudflare-only. A message means the Worker used JSRPC (`env.AI.gateway()` with `beta`,
    say): the socket is closed with a reason rather than left without an answer.
    """
    # uvicorn logs each WebSocket's path (`"WebSocket /binding/<token>/..." [accepted]`), read
    # from this very scope when it is accepted or refused: routing is done, hide the token.
    websocket.scope["path"] = shown_path(websocket.scope["path"])
    if BINDING_QUERY not in websocket.query_params or URL_HEADER in websocket.headers:
        await websocket.close()
        return
    try:
        authenticate(_settings(websocket), authorization)
    except WorkersAIError:
        await websocket.close()
        return
    await websocket.accept()
    try:
        async with asyncio.timeout(IDLE_WEBSOCKET_S):
            message = await websocket.receive()
    except TimeoutError:
        await websocket.close(code=1000, reason="idle")
        return
    if message["type"] == "websocket.receive":
        await websocket.close(code=1011, reason=JSRPC_UNSERVED)


def _settings(connection: HTTPConnection) -> Settings:
    # `server.http.state.get_settings` takes a Request, which a WebSocket route has not.
    settings: Settings = connection.app.state.settings
    return settings
