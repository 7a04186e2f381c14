"""The least a Python gateway adds: a bare relay in front of an OpenAI-compatible server.

    python -m bench.bare_relay --port 8797 --upstream http://127.0.0.1:8795

uvicorn (httptools, uvloop) and aiohttp, as this server runs them, and nothing else: `POST
/v1/completions` and `/v1/chat/completions` go upstream as they came, and the answer's bytes
come back as they arrive; `GET /health` answers 200. No authentication, validation, templating,
tokenizing, re-framing, metrics or logs, and no error handling beyond a 502. `bench.gateway_cpu`
puts it beside this server in front of the same stand-in, so that what this server adds beyond
it is what its own work costs, and what both add is the price of one more Python HTTP hop on the
machine.
"""

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvicorn

Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
EVENT_STREAM = [(b"content-type", b"text/event-stream")]
RELAYED = ("/v1/completions", "/v1/chat/completions")


class BareRelay:
    """An ASGI app relaying `RELAYED` paths to `upstream`, on one aiohttp session."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] in RELAYED and scope["method"] == "POST":
            await self._relay(scope["path"], await _body(receive), send)
        elif scope["path"] == "/health":
            await _answer(send, 200, b'{"status":"ok"}')
        else:
            await _answer(send, 404, b'{"error":"not found"}')

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _relay(self, path: str, body: bytes, send: Send) -> None:
        assert self.session is not None, "the lifespan opens the session"
        url = self.upstream + path
        try:
            async with self.session.post(url, json=json.loads(body)) as answer:
                headers = EVENT_STREAM if answer.status == 200 else JSON
                start = {"type": "http.response.start", "status": answer.status, "headers": headers}
                await send(start)
                async for data in answer.content.iter_any():
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except aiohttp.ClientError:
            await _answer(send, 502, b'{"error":"upstream"}')
            return
        await send({"type": "http.response.body", "body": b""})


async def _body(receive: Receive) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        piece: bytes = message.get("body", b"")
        body += piece
        if not message.get("more_body"):
            return body


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8797)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8795")
    args = parser.parse_args()
    relay = BareRelay(args.upstream.rstrip("/"))
    uvicorn.run(relay, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
