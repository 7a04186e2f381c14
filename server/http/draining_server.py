"""uvicorn's server, with SIGTERM and SIGINT starting a graceful drain (`server.http.drain`).

uvicorn's own handling stops accepting connections at the first signal. Here the first signal
only begins the drain: the socket keeps answering (503 for new requests, `/health` 503
`draining`) while running requests finish; uvicorn's shutdown (`should_exit`) starts once the
drain is over, then the lifespan shuts the engines down. A second signal ends the drain at once;
one more once the server is stopping (an engine that does not stop, say) exits the process at
once, with status 1, as a third Ctrl-C should. No signal is re-raised afterwards (uvicorn
would): the process exits with its own status.

    signal ... drain (up to drain_timeout_s) ... ENDING_S ... connections ... engines' shutdown
    |<------------------------ drain_timeout_s + SHUTDOWN_MARGIN_S ------------------------->|
"""

import asyncio
import contextvars
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from server.http.drain import ENDING_S, Drain

logger = logging.getLogger("workers_ai_local")

# After the drain, uvicorn's wait for open connections (every request has answered by then).
CONNECTIONS_CLOSE_S = 3
# Then the engines' shutdown, one after another: each EngineCore takes about 5 s to stop
# (vLLM kills one only after engine.vllm.engine.ENGINE_SHUTDOWN_TIMEOUT_S).
ENGINE_SHUTDOWN_S = 10
# Beyond `drain_timeout_s`, what a supervisor must wait before it kills the process (compose's
# `stop_grace_period`, Kubernetes' `terminationGracePeriodSeconds`).
SHUTDOWN_MARGIN_S = int(ENDING_S) + CONNECTIONS_CLOSE_S + ENGINE_SHUTDOWN_S
# On a signal while stopping: how long the engine processes get to stop before they are killed.
EXIT_NOW_WAIT_S = 2


def exit_now() -> None:
    """Exit without the cleanup that is stuck, but with the engines: an EngineCore process
    outlives its parent (its worker does not outlive it), so each is stopped first."""
    engines = multiprocessing.active_children()
    for engine in engines:
        engine.terminate()
    deadline = time.monotonic() + EXIT_NOW_WAIT_S
    for engine in engines:
        engine.join(max(0.0, deadline - time.monotonic()))
        if engine.is_alive():
            engine.kill()
    logging.shutdown()
    os._exit(1)


class DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        grace_s: float,
        exit_now: Callable[[], None] = exit_now,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.drain = drain
        self.grace_s = grace_s
        self.exit_now = exit_now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the loop's thread: hand over to the
        # loop, outside whatever request's context the signal interrupted.
        if self._loop is not None and not self._loop.is_closed():
            name = signal.Signals(sig).name
            self._loop.call_soon_threadsafe(self.on_signal, name, context=contextvars.Context())

    def on_signal(self, name: str) -> None:
        if not self.started:
            # Still starting (engines loading): nothing to drain; stop once started.
            logger.warning("%s while starting: stopping once the engines are up", name)
            self.should_exit = True
        elif self._draining is None:
            logger.warning(
                "%s: draining for up to %.0f s; new requests get 503, /health 503 "
                "(again to stop at once)",
                name,
                self.grace_s,
            )
            self.drain.begin()
            self._draining = asyncio.get_running_loop().create_task(self._drain_then_exit())
        elif not self._draining.done():
            logger.warning("%s again: ending the drain now", name)
            self.drain.force()
        else:
            logger.warning("%s while stopping: exiting now, status 1", name)
            self.exit_now()

    async def _drain_then_exit(self) -> None:
        await self.drain.finish(self.grace_s)
        logger.info("drain over: stopping")
        self.should_exit = True
