"""Stop work for clients that have gone away.

    watch = DisconnectWatch(request.receive)    once per request, after its body was read
    async with watch.guard():                   ClientDisconnected if the client leaves meanwhile
        ...                                     (the work in the block is cancelled first)

One task per request listens for `http.disconnect`, from the first block to the response's end;
each block is an `asyncio.timeout(None)` that the listener fires, so the work is cancelled in
its own task, as a timeout, and nothing else is. The same watch guards waiting for a stream's
first event and writing the stream (`server.http.sse.SSEResponse`), or collecting a whole
answer. (Starlette's streaming response would listen again with a task group of its own: for
each request a second listener, an anyio cancel scope and a repr of the task.)
"""

import asyncio
from types import TracebackType

from starlette.types import Message, Receive

from server.errors import ClientDisconnected


class DisconnectWatch:
    """The client's disconnect, for one request whose body has been read: after the body, the
    next ASGI message is the disconnect (uvicorn sends it too once the response is complete)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._listener: asyncio.Task[None] | None = None
        self._blocks: set[asyncio.Timeout] = set()
        self.disconnected = False

    def guard(self) -> "_Guard":
        """A block that the client's leaving ends with ClientDisconnected."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        return _Guard(self)

    def close(self) -> None:
        """Stop listening (the response has been sent, or will never be)."""
        if self._listener is not None:
            self._listener.cancel()

    async def _listen(self) -> None:
        message: Message = await self._receive()
        while message["type"] != "http.disconnect":
            message = await self._receive()
        self.disconnected = True
        loop = asyncio.get_running_loop()
        for block in self._blocks:
            if not block.expired():
                block.reschedule(loop.time())


class _Guard:
    def __init__(self, watch: DisconnectWatch) -> None:
        self._watch = watch
        self._block = asyncio.timeout(None)

    async def __aenter__(self) -> None:
        if self._watch.disconnected:
            raise ClientDisconnected()
        await self._block.__aenter__()
        self._watch._blocks.add(self._block)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._watch._blocks.discard(self._block)
        try:
            await self._block.__aexit__(kind, error, traceback)
        except TimeoutError:
            if self._block.expired() and self._watch.disconnected:
                raise ClientDisconnected() from None
            raise
