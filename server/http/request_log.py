"""Request ids and the access log, in one pure ASGI middleware around the whole app.

Every response carries `X-Request-Id`: the client's own (its `X-Request-Id`, else Cloudflare's
`cf-ray`) when that is a short token of [A-Za-z0-9._:-], else a new uuid4 hex. While the request
is served its record is the current request (`server.request_context`), so every log line names
its id; once the response has been sent in full (a stream: at its end, the client leaving
included), one line goes to the `workers_ai_local.access` logger:

    POST /client/v4/accounts/acct/ai/run/@cf/qwen/qwq-32b 200 model=@cf/qwen/qwq-32b
        prompt_tokens=12 completion_tokens=31 latency_ms=840.2            (one line)

with the same fields, structured, in `extra={"access": {...}}` for the JSON format. At the same
point the app's metrics (`server.http.metrics`), when it has them, observe the request.

Pure ASGI rather than BaseHTTPMiddleware, which runs the app in another task and so breaks
streaming and cancellation on disconnect. `RequestLoggedApp` installs it outside Starlette's
ServerErrorMiddleware, so that an unexpected exception's 500 carries the id and gets its line.
"""

import json
import logging
import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.metrics import ServerMetrics
from server.request_context import RequestRecord, request_scope

REQUEST_ID_HEADER = "X-Request-Id"
# Ids a client may bring, in order of preference; `cf-ray` is Cloudflare's, on what it proxies.
CLIENT_ID_HEADERS = ("x-request-id", "cf-ray")
# A client's id is echoed into headers and log lines: a bounded token that cannot break either.
CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Access-line values shown bare; anything else (spaces, quotes, control characters) is quoted.
BARE = re.compile(r"[!#-~]+")
# The Workers AI binding's connection URL holds an API token (`server.binding.protocol`): what
# follows `/binding/` never reaches a log line.
SECRET_PATH = re.compile(r"^/binding/.*", re.DOTALL)
SHOWN_SECRET_PATH = "/binding/***/"

access_logger = logging.getLogger("workers_ai_local.access")


def request_id_of(headers: Headers) -> str:
    """The client's id when it sent an acceptable one, else a new one."""
    for name in CLIENT_ID_HEADERS:
        value = headers.get(name)
        if value is not None and CLIENT_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


class RequestLog:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(Headers(scope=scope))
        status = 500  # what the server answers for an app that fails before it responds

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with request_scope(request_id) as record:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                # Still inside the request: the line carries its id too.
                elapsed_s = time.perf_counter() - record.arrived
                fields = access_fields(scope, status, record, elapsed_s)
                access_logger.info(access_text(fields), extra={"access": fields})
                if self.metrics is not None:
                    self.metrics.observe(scope["path"], status, record, elapsed_s)


def access_fields(
    scope: Scope, status: int, record: RequestRecord, elapsed_s: float
) -> dict[str, Any]:
    """Every field, None when unknown: the JSON lines keep one shape."""
    return {
        "method": scope["method"],
        "path": shown_path(scope["path"]),
        "status": status,
        "model": record.model,
        "error_code": record.error_code,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "latency_ms": round(elapsed_s * 1000, 1),
    }


def shown_path(path: str) -> str:
    """The path as logs show it: a binding path without its token."""
    return SHOWN_SECRET_PATH if SECRET_PATH.match(path) else path


def access_text(fields: dict[str, Any]) -> str:
    """`METHOD path status`, then `name=value` for each other field that is known."""
    head = [fields["method"], _shown(fields["path"]), str(fields["status"])]
    tail = [
        f"{name}={_shown(value)}"
        for name, value in fields.items()
        if name not in ("method", "path", "status") and value is not None
    ]
    return " ".join(head + tail)


def _shown(value: object) -> str:
    # Paths and model names come from the client: one line per request, whatever they hold.
    text = str(value)
    return text if BARE.fullmatch(text) else json.dumps(text)


class RequestLoggedApp(FastAPI):
    """FastAPI with `RequestLog` outermost. `add_middleware` would put it inside Starlette's
    ServerErrorMiddleware, which answers an unexpected exception: without its id, or its line.
    It observes the requests in `app.state.metrics` when the app has set one."""

    def build_middleware_stack(self) -> ASGIApp:
        metrics: ServerMetrics | None = getattr(self.state, "metrics", None)
        return RequestLog(super().build_middleware_stack(), metrics)
