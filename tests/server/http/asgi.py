"""Driving the app over raw ASGI, for what a TestClient cannot do: concurrent requests on one event
loop, and a client that leaves in the middle of a stream."""

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.types import Message

from server.app import create_app
from tests.support.app import TOKEN, make_settings
from tests.support.fake_engine import FakeEngine


@dataclass
class Exchange:
    """What the app sent for one request."""

    messages: list[Message] = field(default_factory=list)

    @property
    def status(self) -> int:
        status: int = self.messages[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        return {key.decode(): value.decode() for key, value in self.messages[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def complete(self) -> bool:
        last = self.messages[-1]
        return last["type"] == "http.response.body" and not last.get("more_body", False)


async def post(
    app: FastAPI,
    path: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    leave_after_chunks: int | None = None,
    exchange: Exchange | None = None,
    leave_after_s: float | None = None,
) -> Exchange:
    """POST `body` as JSON; with `leave_after_chunks`, disconnect once that many body chunks
    have been sent, with `leave_after_s` after that long (the client leaves; the app sees
    `http.disconnect`). As uvicorn does, `receive` also reports a disconnect once the response
    is complete. The app's messages go to `exchange` (a new one by default) as they are sent."""
    exchange = Exchange() if exchange is None else exchange
    left = asyncio.Event()
    requested = False
    if leave_after_s is not None:
        asyncio.get_running_loop().call_later(leave_after_s, left.set)

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        exchange.messages.append(message)
        chunks = sum(1 for m in exchange.messages if m["type"] == "http.response.body")
        if leave_after_chunks is not None and chunks >= leave_after_chunks:
            left.set()
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            left.set()

    raw_headers = [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return exchange


def serve(engines: dict[str, FakeEngine]) -> FastAPI:
    return create_app(make_settings(), engines=engines)


def exchange(app: FastAPI, *requests: Callable[[], Awaitable[Exchange]]) -> list[Exchange]:
    """Start the app, send `requests` (calls of `post`) concurrently, stop the app."""

    async def run() -> list[Exchange]:
        async with app.router.lifespan_context(app):
            return list(await asyncio.gather(*(request() for request in requests)))

    return asyncio.run(run())
