"""`DrainingServer`: uvicorn's server, with shutdown signals handed to the drain.

not started yet     a signal stops the server once it has started (nothing to drain)
first signal        the drain begins; uvicorn keeps serving (`should_exit` stays False)
second signal       the drain ends at once
drain over          `should_exit`: uvicorn's shutdown, then the lifespan's; no signal re-raised
"""

import asyncio
import signal

import uvicorn

from server.http.drain import Drain
from server.http.draining_server import DrainingServer


async def no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


def make_server(drain: Drain, started: bool = True) -> DrainingServer:
    server = DrainingServer(uvicorn.Config(no_app), drain, grace_s=3600)
    server.started = started
    return server


def exiting(server: DrainingServer) -> bool:
    """Whether uvicorn's shutdown has been asked for (read afresh, each time)."""
    return server.should_exit


async def settle() -> None:
    """Let the loop run the handed-over signal and what it started."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_signal_while_starting_stops_the_server_once_started() -> None:
    async def scenario() -> None:
        drain = Drain()
        server = make_server(drain, started=False)
        server.on_signal("SIGTERM")

        assert exiting(server)
        assert drain.state == "serving"

    asyncio.run(scenario())


def test_the_first_signal_drains_and_the_second_ends_the_drain() -> None:
    async def scenario() -> None:
        drain = Drain()
        server = make_server(drain)
        server._loop = asyncio.get_running_loop()
        with drain.admitted():  # one request runs, and would run for the whole grace period
            server.handle_exit(signal.SIGTERM, None)
            await settle()
            assert drain.draining
            assert not exiting(server)

            server.handle_exit(signal.SIGINT, None)
            await settle()
            assert drain.state == "over"
        await settle()

        assert exiting(server)
        assert server._captured_signals == []  # uvicorn would re-raise them after shutdown

    asyncio.run(scenario())


def test_the_server_exits_as_soon_as_nothing_runs() -> None:
    async def scenario() -> None:
        drain = Drain()
        server = make_server(drain)
        server.on_signal("SIGTERM")
        await settle()

        assert drain.state == "over"
        assert exiting(server)

    asyncio.run(scenario())
