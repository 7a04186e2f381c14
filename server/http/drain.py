"""Graceful drain: stop taking work, let running requests finish, end what is left, then stop.

    serving --begin()--> draining --no request left, grace over, or force()--> over

`begin` (the CLI calls it on SIGTERM or SIGINT) turns `/health` to 503 `draining` and every new
request to 503/3040 `ShuttingDown`, at once; the listening socket keeps answering. `finish`
waits for the admitted requests for up to the grace period (`drain_timeout_s`); `force` (a
second signal) cuts it short. When the drain is over, what still runs is ended:

- a request that has not started answering is cancelled and gets the 503 envelope (`DrainGate`);
- a stream gets the in-band error and `[DONE]`: `ended_by_drain` hands the drain the stream's
  `Interruptible`, whose step under way (a wait for the engine) raises ShuttingDown, which
  aborts its engine request.

Ending is a timeout fired early (`asyncio.timeout(None)`, rescheduled to now) or a step ended,
never a bare task cancellation: what is ended knows it was the drain, and nothing else is
cancelled.
"""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import ShuttingDown
from server.generation.interruptible import Interruptible
from server.request_context import note_error

logger = logging.getLogger(__name__)

DrainState = Literal["serving", "draining", "over"]
# Answered while draining, as before it: they report on the server, the drain included.
UNGATED_PATHS = frozenset({"/health", "/metrics"})
# After the drain ends what is left, the seconds those requests get to send their last bytes
# (an error event and `[DONE]`, or the 503 envelope: milliseconds, unless a client stalls).
ENDING_S = 2.0

_admitted_under: ContextVar["Drain | None"] = ContextVar("workers_ai_local_drain", default=None)


class Drain:
    """The drain of one app: its state, its admitted requests, and what ends them."""

    def __init__(self) -> None:
        self._state: DrainState = "serving"
        self._running = 0
        self._idle = asyncio.Event()
        self._forced = asyncio.Event()
        self._endable: set[asyncio.Timeout] = set()
        self._streams: set[Interruptible] = set()

    @property
    def state(self) -> DrainState:
        return self._state

    @property
    def draining(self) -> bool:
        """True from `begin` on: new requests are refused."""
        return self._state != "serving"

    @property
    def running(self) -> int:
        """Admitted requests that have not finished answering."""
        return self._running

    def begin(self) -> bool:
        """Refuse new requests from now on; False when the drain had begun already."""
        if self.draining:
            return False
        self._state = "draining"
        if self._running == 0:
            self._idle.set()
        return True

    def force(self) -> None:
        """End the drain now: `finish` stops waiting for the grace period."""
        self._forced.set()

    async def finish(self, grace_s: float) -> None:
        """Wait up to `grace_s` for the admitted requests, then end the rest and wait for them
        to send their errors (up to `ENDING_S`)."""
        self.begin()
        idle = asyncio.ensure_future(self._idle.wait())
        forced = asyncio.ensure_future(self._forced.wait())
        try:
            await asyncio.wait({idle, forced}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            forced.cancel()
        self._state = "over"
        if self._running:
            logger.warning("drain over: ending %d request(s) still running", self._running)
            for block in list(self._endable):
                _fire(block)
            for steps in list(self._streams):
                steps.end(ShuttingDown())
            try:
                async with asyncio.timeout(ENDING_S):
                    await self._idle.wait()
            except TimeoutError:
                logger.error("%d request(s) did not end after the drain", self._running)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """One request let in: counted until it has answered, and under this drain."""
        self._running += 1
        token = _admitted_under.set(self)
        try:
            yield
        finally:
            _admitted_under.reset(token)
            self._running -= 1
            if self._running == 0 and self.draining:
                self._idle.set()

    def endable(self, block: asyncio.Timeout) -> "_Endable":
        """Register an entered `asyncio.timeout(None)` block for the end of the drain."""
        return _Endable(self, block)


class _Endable:
    def __init__(self, drain: Drain, block: asyncio.Timeout) -> None:
        self._drain = drain
        self._block = block

    def __enter__(self) -> None:
        self._drain._endable.add(self._block)

    def __exit__(self, *exc_info: object) -> None:
        self._drain._endable.discard(self._block)

    def release(self) -> None:
        """Take the block out of the drain's reach (its request has started answering)."""
        self._drain._endable.discard(self._block)
        if not self._block.expired():
            self._block.reschedule(None)


def _fire(block: asyncio.Timeout) -> None:
    if not block.expired():
        block.reschedule(asyncio.get_running_loop().time())


@contextmanager
def ended_by_drain(steps: Interruptible) -> Iterator[None]:
    """Within the block, the end of the drain the request was admitted under ends `steps` (a
    stream's waits for its engine) with ShuttingDown."""
    drain = _admitted_under.get()
    if drain is None:
        yield
        return
    if drain.state == "over":
        steps.end(ShuttingDown())
    drain._streams.add(steps)
    try:
        yield
    finally:
        drain._streams.discard(steps)


class DrainGate:
    """Pure ASGI middleware: refuses requests while draining, counts the admitted ones, and
    answers 503 for those the drain's end cancels before they started answering."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNGATED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            await _answer(ShuttingDown(), scope, receive, send)
            return
        with self.drain.admitted():
            await self._admitted(scope, receive, send)

    async def _admitted(self, scope: Scope, receive: Receive, send: Send) -> None:
        block = asyncio.timeout(None)
        started = False
        endable = self.drain.endable(block)

        async def send_until_ended(message: Message) -> None:
            nonlocal started
            if block.expired() and not started:
                return  # ended before it answered: the 503 below answers instead
            if message["type"] == "http.response.start":
                started = True
                endable.release()  # a stream ends in-band (`ended_by_drain`), nothing else
            await send(message)

        try:
            async with block:
                with endable:
                    await self.app(scope, receive, send_until_ended)
        except TimeoutError:
            if not block.expired():
                raise
            if not started:
                await _answer(ShuttingDown(), scope, receive, send)


async def _answer(error: ShuttingDown, scope: Scope, receive: Receive, send: Send) -> None:
    note_error(error.code)
    # The connection is closed after the answer, so that the client's next request opens a
    # new one (elsewhere, behind a load balancer) instead of reusing this one.
    headers = {**error.headers(), "Connection": "close"}
    response = JSONResponse(error.envelope(), status_code=error.status, headers=headers)
    await response(scope, receive, send)


async def get_drain(request: Request) -> Drain:
    drain: Drain = request.app.state.drain
    return drain


AppDrain = Annotated[Drain, Depends(get_drain)]
