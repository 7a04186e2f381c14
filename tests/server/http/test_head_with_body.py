"""uvicorn's protocol as `serve` runs it: a response's head leaves with its first body bytes."""

import asyncio
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from server.http.head_with_body import CONTINUE, HeadWithBodyProtocol

HEAD_END = b"\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """A connection that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8787), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/upload":
        await receive()  # a client that sent `Expect: 100-continue` gets its go-ahead now
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/fail":
        raise RuntimeError("after the head")
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})


def served(request: bytes, after_continue: bytes = b"") -> RecordingTransport:
    """The writes of one request's response, once the app is done with it; `after_continue`
    is the body a client sends once it has read `100 Continue`."""

    async def serve() -> RecordingTransport:
        config = uvicorn.Config(app, http=HeadWithBodyProtocol, log_config=None)
        protocol = HeadWithBodyProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(200):
            if after_continue and transport.writes == [CONTINUE]:
                protocol.data_received(after_continue)
            if protocol.cycle.response_complete or transport.closed:
                break
            await asyncio.sleep(0.005)
        return transport

    return asyncio.run(serve())


def test_a_stream_starts_with_one_write_of_its_head_and_first_event() -> None:
    transport = served(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")

    first, *rest = transport.writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    head, _, body = first.partition(HEAD_END)
    assert b"transfer-encoding: chunked" in head
    assert body == b"9\r\ndata: 1\n\n\r\n"
    assert rest == [b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"]


def test_continue_is_written_at_once_and_alone() -> None:
    transport = served(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        after_continue=b"{}",
    )

    assert transport.writes[0] == CONTINUE
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[1].endswith(b"9\r\ndata: 1\n\n\r\n")


def test_a_head_held_when_the_app_fails_is_written_before_the_connection_closes() -> None:
    transport = served(b"GET /fail HTTP/1.1\r\nHost: a\r\n\r\n")

    assert transport.closed
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(HEAD_END)


def test_the_answer_to_head_is_written_as_uvicorn_writes_it() -> None:
    transport = served(b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n")

    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(HEAD_END)
