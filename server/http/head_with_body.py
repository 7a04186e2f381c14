"""uvicorn's HTTP/1.1 protocol (httptools), writing each response's head with its first body bytes.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, and
the body with each `http.response.body`: two writes for every response. A stream starts only
once its first event is there (its status depends on it), so its head and first event leave
back to back, and on one machine the first write wakes the client, which the kernel may run at
once on the server's own core: the first event then waits while the client reads the head, some
0.5 ms of every stream's time to first token, measured against a stand-in upstream. Here the
head waits for the response's next write, the first body bytes, and both leave in one.

    uvicorn.Config(app, http=HeadWithBodyProtocol)

Nothing else changes: a `100 Continue` interim response is written at once, as uvicorn does; a
head still held when the connection closes (an app that fails after starting its response) is
written first, so that the client sees what it saw before; and the answer to a HEAD request,
which has no body to wait for, is written as uvicorn writes it.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# What uvicorn writes, alone, when a client waits for it before sending a body.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HeadWithBodyProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # None or the one before: an upgrade (WebSocket), which writes no HTTP response here.
        if cycle is not before and cycle.scope["method"] != "HEAD":
            cycle.transport = HeadWithBody(cycle.transport)


class HeadWithBody(asyncio.Transport):
    """The transport one response is written to: its first write (the head) is held and
    prepended to the second. What uvicorn's response cycle calls is all it has."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._head: bytes | None = None
        self._written = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._written and data != CONTINUE:
            self._written = True
            self._head = bytes(data)
            return
        if self._head is not None:
            data = self._head + bytes(data)
            self._head = None
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)
