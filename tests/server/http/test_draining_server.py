"""`DrainingServer`: uvicorn's server, with shutdown signals handed to the drain.

not started yet     a signal stops the server once it has started (nothing to drain)
first signal        the drain begins; uvicorn keeps serving (`should_exit` stays False)
second signal       the drain ends at once
drain over          `should_exit`: uvicorn's shutdown, then the lifespan's; no signal re-raised
stopping            one more signal exits the process at once
started             `on_started` runs once the server listens (the CLI freezes the heap there)
"""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import uvicorn
from starlette.types import Receive, Send

from server.http.drain import Drain
from server.http.draining_server import DrainingServer

REPO = Path(__file__).resolve().parents[3]


async def no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


class Exits:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make_server(drain: Drain, started: bool = True, exits: Exits | None = None) -> DrainingServer:
    server = DrainingServer(uvicorn.Config(no_app), drain, grace_s=3600, exit_now=exits or Exits())
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


def test_a_signal_once_the_server_is_stopping_exits_at_once() -> None:
    async def scenario() -> None:
        drain = Drain()
        exits = Exits()
        server = make_server(drain, exits=exits)
        with drain.admitted():
            server.on_signal("SIGTERM")
            await settle()
            server.on_signal("SIGINT")
            await settle()
            assert exits.count == 0  # the second signal only ends the drain
        await settle()
        assert exiting(server)

        server.on_signal("SIGINT")

        assert exits.count == 1

    asyncio.run(scenario())


async def lifespan_only(scope: dict[str, object], receive: Receive, send: Send) -> None:
    assert scope["type"] == "lifespan"
    while True:
        message = await receive()
        kind = str(message["type"]).removeprefix("lifespan.")
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


def test_on_started_runs_once_the_server_listens() -> None:
    seen: list[bool] = []

    def on_started() -> None:
        seen.append(server.started)
        server.should_exit = True

    config = uvicorn.Config(lifespan_only, host="127.0.0.1", port=0, log_config=None)
    server = DrainingServer(config, Drain(), grace_s=1, on_started=on_started)

    asyncio.run(server.serve())

    assert seen == [True]


EXIT_NOW_SCRIPT = """
import multiprocessing, sys, time
from server.http.draining_server import exit_now

def hold():
    time.sleep(600)

if __name__ == "__main__":
    engine = multiprocessing.get_context("spawn").Process(target=hold)
    engine.start()
    print(engine.pid, flush=True)
    exit_now()
"""


def test_exit_now_stops_the_engine_processes_and_exits_with_1(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(EXIT_NOW_SCRIPT)

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=120
    )

    assert done.returncode == 1, done.stderr
    engine = int(done.stdout.split()[0])
    assert not alive(engine)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
