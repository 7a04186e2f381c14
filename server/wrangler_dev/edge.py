"""Cloudflare, as `wrangler dev` sees it: its API and its preview edge, one ASGI app on
https://127.0.0.1:443 (a plain ASGI callable: no web framework outside the HTTP layer).

    /client/v4/...                          the API calls (cloudflare_api.py)
    header MF-Binding, an AI binding        forwarded to the server (forward.py)
    header MF-Binding, another binding      an AiError: that binding needs Cloudflare
    WebSocket ?MF-Binding=...               accepted and held idle, here: Miniflare's remote-proxy
                                            client opens it for every binding and never uses
                                            it for the AI binding (answering 400 works too,
                                            but workerd then logs "Broken pipe" errors)
    anything else                           200: wrangler's Access probe, `GET /.workers.dev`

Binding calls must carry this run's preview token and every peer must be on the loopback
address, so no other program can spend the server token through the edge. Error bodies take
the shape the binding parses first, `{"internalCode", "name": "AiError", "description"}`, and
never contain "error code: 1031" or "Invalid Workers Preview configuration", which make
wrangler upload its proxy Worker again.
"""

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from server.wrangler_dev.cloudflare_api import API_PREFIX, PreviewSession, answer_api
from server.wrangler_dev.forward import Forwarder, Headers, ServerUnreachable, returned_headers

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("workers_ai_local.wrangler_dev")
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class _ClientLeft(Exception):
    """The Worker's request went away while its body was being forwarded."""


class Edge:
    def __init__(self, session: PreviewSession, forwarder: Forwarder) -> None:
        self.session = session
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif not _from_loopback(scope):
            if scope["type"] == "http":
                await _answer(send, 403, b"loopback clients only\n", b"text/plain")
            else:
                await send({"type": "websocket.close", "code": 1008})
        elif scope["type"] == "websocket":
            await _websocket(scope, receive, send)
        elif scope["path"].startswith(API_PREFIX):
            await self._api(scope, receive, send)
        elif _header(scope["headers"], b"mf-binding") is not None:
            await self._binding_call(scope, receive, send)
        else:
            await _drain(receive)
            await _answer(send, 200, b"workers-ai-local wrangler-dev\n", b"text/plain")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.forwarder.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b"".join([chunk async for chunk in _request_body(receive)])
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        answer = answer_api(self.session, scope["method"], scope["path"], headers, body)
        logger.debug("API %s %s -> %d", scope["method"], scope["path"], answer.status)
        await _answer(send, answer.status, json.dumps(answer.body).encode(), b"application/json")

    async def _binding_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: Headers = scope["headers"]
        name = (_header(headers, b"mf-binding") or b"").decode("latin-1")
        token = _header(headers, b"cf-workers-preview-token") or b""
        if not hmac.compare_digest(token, self.session.preview_token.encode()):
            await _drain(receive)
            await _ai_error(send, 401, 10000, "not a binding call of this wrangler-dev run")
            return
        kind = self.session.binding_type(name)
        if kind not in (None, "ai"):
            await _drain(receive)
            # As the server answers the AI binding's Cloudflare-only methods (NoRoute).
            await _ai_error(
                send,
                404,
                7000,
                f"binding {name} ({kind}) needs Cloudflare: workers-ai-local serves the AI "
                "binding only",
            )
            return
        query = scope["query_string"].decode("latin-1")
        has_body = any(key.lower() in _BODY_HEADERS for key, _ in headers)
        if not has_body:
            await _drain(receive)
        try:
            response = await self.forwarder.open(
                scope["method"],
                scope["path"],
                query,
                headers,
                _request_body(receive) if has_body else None,
            )
        except ServerUnreachable as error:
            logger.warning("env.%s: %s", name, error)
            await _ai_error(send, 502, 3043, str(error))
            return
        except _ClientLeft:
            return
        logger.debug(
            "env.%s %s %s -> %d",
            name,
            (_header(headers, b"mf-url") or b"").decode("latin-1"),
            (_header(headers, b"mf-header-cf-consn-model-id") or b"").decode("latin-1"),
            response.status_code,
        )
        relay = asyncio.ensure_future(_relay(response.status_code, response, send))
        left = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            # The Worker's request may leave mid-stream: closing the answer then makes the
            # server abort the generation, as it does for any client that leaves.
            await asyncio.wait({relay, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, left):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await left
            try:
                await relay
            except asyncio.CancelledError:
                pass
            finally:
                await response.aclose()


async def _relay(status: int, response: httpx.Response, send: Send) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": returned_headers(response.headers.raw),
    }
    await send(start)
    async for chunk in Forwarder.body(response):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept the binding's WebSocket and keep it open, unused, until either side closes.

    Refused, as the server refuses it, without `MF-Binding` in the query, and for
    `run(..., {websocket: true})` (it carries `MF-URL`): inference over a WebSocket is
    Cloudflare-only.
    """
    query = scope["query_string"].decode("latin-1")
    wanted = "MF-Binding=" in query and _header(scope["headers"], b"mf-url") is None
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"} if wanted else {"type": "websocket.close"})
            if not wanted:
                return
        elif message["type"] == "websocket.disconnect":
            return


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientLeft
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _drain(receive: Receive) -> None:
    with contextlib.suppress(_ClientLeft):
        async for _ in _request_body(receive):
            pass


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _ai_error(send: Send, status: int, code: int, description: str) -> None:
    """An error as the binding's `_parseError` reads it: the Worker sees `AiError: code: ...`."""
    body = {"internalCode": code, "name": "AiError", "description": description}
    await _answer(send, status, json.dumps(body).encode(), b"application/json")


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False
