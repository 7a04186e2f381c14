"""A fake vLLM OpenAI-compatible server for the remote engine's unit tests: real HTTP (uvicorn
on a free loopback port, in a thread), answering as vLLM 0.32 does, scripted per test.

    with FakeUpstream() as upstream:
        upstream.replies.append(Tokens([("Hel", [1]), ("lo", [2])], finish_reason="stop"))
        ... RemoteEngine.start(RemoteConfig(url=upstream.url, ...), ...)
        upstream.received[-1].body        # what the engine sent

`GET /v1/models` lists `models`; `GET /health` answers `health_status`; each
`POST /v1/completions` takes the next reply from `replies` (`Tokens(...)` by default).
A plain ASGI app rather than a framework's: `Endless` must see the client leave
(`http.disconnect`) however the server reports it.
"""

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn

MODEL = "qwq"

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    peer: tuple[str, int] | None = None  # the client's address: one per connection


@dataclass(frozen=True)
class Tokens:
    """A streamed completion, one chunk per piece (text, token ids), as vLLM writes it; the
    last piece carries `finish_reason`. The chunks carry what the request asked for, as vLLM's
    do: the ids (and, in the first chunk, the prompt's) with `return_token_ids`, the running
    usage with `continuous_usage_stats`. `token_ids=False` leaves the ids out even when asked
    for (the usage counts stay)."""

    pieces: list[tuple[str, list[int]]] = field(
        default_factory=lambda: [("Hello", [9906]), (",", [11]), (" world", [1879])]
    )
    finish_reason: str = "length"
    stop_reason: int | str | None = None
    token_ids: bool = True
    error_after: "Failure | None" = None  # an in-band error instead of the finish


@dataclass(frozen=True)
class Failure:
    """An error answer as vLLM writes one: `{"error": {"message", "type", "param", "code"}}`."""

    status: int
    message: str


@dataclass(frozen=True)
class Endless:
    """Streams a token every `interval_s` until the client leaves."""

    interval_s: float = 0.01


@dataclass(frozen=True)
class Raw:
    """These SSE lines, as given; `cut` then drops the connection mid-answer, `linger_s`
    waits that long before ending the body."""

    lines: list[str]
    cut: bool = False
    linger_s: float = 0.0


Reply = Tokens | Failure | Endless | Raw


class _Cut(Exception):
    """Ends a response without finishing it: uvicorn drops the connection."""


class FakeUpstream:
    def __init__(self, *, api_key: str | None = None) -> None:
        self.models: list[dict[str, Any]] = [
            {"id": MODEL, "object": "model", "root": "/models/qwq", "max_model_len": 4096}
        ]
        self.models_status = 200
        self.unlisted_answers = 0  # the first n /v1/models answers list no model
        self.health_status = 200
        self.health_delays: deque[float] = deque()  # seconds before each next /health answer
        self.api_key = api_key
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.disconnected = threading.Event()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            self, log_level="critical", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> "FakeUpstream":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def calls(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        headers = {name.decode().lower(): value.decode() for name, value in scope["headers"]}
        client = scope.get("client")
        request = Received(
            scope["method"],
            scope["path"],
            headers,
            json.loads(raw) if raw else None,
            None if client is None else (client[0], client[1]),
        )
        self.received.append(request)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await _json(send, 401, _error_body(401, "Unauthorized"))
        elif request.path in ("/health", "/readiness"):  # vllm serve's, vllm-router's
            if self.health_delays:
                await asyncio.sleep(self.health_delays.popleft())
            await _json(send, self.health_status, {})
        elif request.path == "/v1/models":
            await self._models(send)
        elif request.path == "/v1/completions":
            reply = self.replies.popleft() if self.replies else Tokens()
            await self._complete(reply, request.body, receive, send)
        else:
            await _json(send, 404, _error_body(404, "Not Found"))

    async def _models(self, send: Any) -> None:
        if self.models_status != 200:
            await _json(send, self.models_status, _error_body(self.models_status, "starting"))
            return
        listed = [] if self.unlisted_answers > 0 else self.models
        self.unlisted_answers -= 1
        await _json(send, 200, {"object": "list", "data": listed})

    async def _complete(self, reply: Reply, body: Any, receive: Any, send: Any) -> None:
        if isinstance(reply, Failure):
            await _json(send, reply.status, _error_body(reply.status, reply.message))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        if isinstance(reply, Endless):
            await self._endless(reply, body, receive, send)
            return
        if isinstance(reply, Raw):
            await _lines(send, reply.lines)
            if reply.cut:
                raise _Cut()
            await asyncio.sleep(reply.linger_s)
        else:
            await _lines(send, _vllm_stream(reply, body))
        await send({"type": "http.response.body", "body": b""})

    async def _endless(self, reply: Endless, body: Any, receive: Any, send: Any) -> None:
        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        left = asyncio.create_task(client_left())
        try:
            while not left.done() and not self._server.should_exit:
                chunk = _chunk(body, "x", [42], None, None, True, 0, first=False)
                await _lines(send, [f"data: {json.dumps(chunk)}", ""])
                await asyncio.sleep(reply.interval_s)
        finally:
            if left.done():
                self.disconnected.set()
            left.cancel()


def _vllm_stream(reply: Tokens, body: Any) -> list[str]:
    """The SSE lines vLLM 0.32 writes for a streamed completion with token ids and usage."""
    lines: list[str] = []
    produced = 0
    for index, (text, ids) in enumerate(reply.pieces):
        produced += len(ids)
        last = index == len(reply.pieces) - 1 and reply.error_after is None
        finish = reply.finish_reason if last else None
        stop = reply.stop_reason if last else None
        chunk = _chunk(body, text, ids, finish, stop, reply.token_ids, produced, index == 0)
        lines += [f"data: {json.dumps(chunk)}", ""]
    if reply.error_after is not None:
        error = _error_body(reply.error_after.status, reply.error_after.message)
        lines += [f"data: {json.dumps(error)}", ""]
    else:
        prompt = len(body.get("prompt", []))
        usage = {"prompt_tokens": prompt, "completion_tokens": produced}
        final = {"id": "cmpl-1", "object": "text_completion", "choices": [], "usage": usage}
        lines += [f"data: {json.dumps(final)}", ""]
    return [*lines, "data: [DONE]", ""]


def _chunk(
    body: Any,
    text: str,
    ids: list[int],
    finish: str | None,
    stop: int | str | None,
    with_ids: bool,
    produced: int,
    first: bool,
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish,
        "stop_reason": stop,
    }
    if with_ids and body.get("return_token_ids"):
        if first:
            choice["prompt_token_ids"] = body.get("prompt", [])
        choice["token_ids"] = ids
    prompt = len(body.get("prompt", []))
    chunk: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model"),
        "choices": [choice],
    }
    if (body.get("stream_options") or {}).get("continuous_usage_stats"):
        chunk["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": produced,
            "total_tokens": prompt + produced,
        }
    return chunk


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "Error", "param": None, "code": status}}


async def _json(send: Any, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _lines(send: Any, lines: list[str]) -> None:
    for line in lines:
        await send(
            {"type": "http.response.body", "body": (line + "\n").encode(), "more_body": True}
        )
