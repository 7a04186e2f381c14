"""Stop work for clients that have gone away."""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from server.errors import ClientDisconnected

T = TypeVar("T")


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`, cancelling it the moment the client disconnects.

    The request body must have been read already: after it, the next ASGI message is the
    disconnect. Cancelling the work cancels its engine request (vLLM aborts on cancel).
    """
    work_task = asyncio.ensure_future(work)
    disconnect_task = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work_task, disconnect_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work_task.done():
            work_task.cancel()
        disconnect_task.cancel()
    if not work_task.done() or work_task.cancelled():
        # Wait for the cancelled work to unwind, so its engine request is aborted first.
        await asyncio.gather(work_task, return_exceptions=True)
        raise ClientDisconnected()
    return work_task.result()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
