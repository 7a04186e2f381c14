"""A client that leaves: its engine request is aborted, whether it waited for the first event of a
stream, for a whole answer, or read a stream; a complete stream's disconnect is not a leaving.

Driven over raw ASGI (`tests.server.http.asgi`), whose `receive` reports the disconnect as
uvicorn does: when the client leaves, and once the response is complete.
"""

import asyncio
from collections.abc import AsyncGenerator
from functools import partial

import pytest
from starlette.types import Message

from server.errors import ClientDisconnected
from server.http.cancellation import DisconnectWatch
from server.http.sse import DONE, SSEResponse
from tests.server.http.asgi import exchange, post, serve
from tests.server.http.calls import CHAT, RUN
from tests.support.app import QWQ
from tests.support.fake_engine import FakeEngine


def slow(engines: dict[str, FakeEngine], delay: float = 0.5) -> FakeEngine:
    engine = engines[QWQ]
    engine.script = ["a"] * 4
    engine.delay = delay
    return engine


@pytest.mark.parametrize("path", [RUN, CHAT])
def test_leaving_before_the_first_event_of_a_stream_aborts_the_engine_request(
    engines: dict[str, FakeEngine], path: str
) -> None:
    engine = slow(engines)
    app = serve(engines)
    body = {"model": QWQ, "messages": [{"role": "user", "content": "Hi"}], "stream": True}

    (answer,) = exchange(app, partial(post, app, path, body, leave_after_s=0.1))

    assert engine.aborted == 1
    assert engine.running == 0
    assert answer.status == 499  # sent to nobody; what the access line and metrics record
    assert b"3008" in answer.body


def test_leaving_while_a_whole_answer_is_generated_aborts_the_engine_request(
    engines: dict[str, FakeEngine],
) -> None:
    engine = slow(engines, delay=0.1)
    app = serve(engines)

    (answer,) = exchange(app, partial(post, app, RUN, {"prompt": "Hi"}, leave_after_s=0.25))

    assert engine.aborted == 1
    assert engine.running == 0
    assert answer.status == 499


def test_leaving_a_stream_midway_aborts_the_engine_request(
    engines: dict[str, FakeEngine],
) -> None:
    engine = slow(engines, delay=0.1)
    app = serve(engines)

    (answer,) = exchange(
        app, partial(post, app, RUN, {"prompt": "Hi", "stream": True}, leave_after_s=0.25)
    )

    assert answer.status == 200
    assert not answer.complete
    assert engine.aborted == 1


def test_a_complete_stream_ends_with_the_chunk_of_done(engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = ["a", "b"]
    app = serve(engines)

    (answer,) = exchange(app, partial(post, app, RUN, {"prompt": "Hi", "stream": True}))

    bodies = [m for m in answer.messages if m["type"] == "http.response.body"]
    assert answer.complete
    assert bodies[-1]["body"].endswith(DONE)  # no empty message after it: one write less
    assert all(message["body"] for message in bodies)
    assert engines[QWQ].aborted == 0


def test_the_body_runs_to_its_end_after_done_though_the_response_is_complete() -> None:
    """uvicorn reports a disconnect once the response is complete; what the body does after
    `[DONE]` (a remote engine reading its upstream's end) must not be cancelled by it."""
    reached_the_end = asyncio.Event()
    sent: list[Message] = []

    async def body() -> AsyncGenerator[bytes, None]:
        yield b'data: {"a":1}\n\n'
        yield b'data: {"a":2}\n\n' + DONE
        await asyncio.sleep(0.05)  # the client has everything by now, and uvicorn said so
        reached_the_end.set()

    async def run() -> None:
        complete = asyncio.Event()

        async def receive() -> Message:
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message["more_body"]:
                complete.set()

        response = SSEResponse(body(), {}, DisconnectWatch(receive))
        await response({"type": "http", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(run())

    assert reached_the_end.is_set()
    assert [m.get("more_body") for m in sent] == [None, True, False]


def test_a_client_that_leaves_ends_the_guarded_block_with_client_disconnected() -> None:
    async def run() -> bool:
        async def receive() -> Message:
            return {"type": "http.disconnect"}

        watch = DisconnectWatch(receive)
        async with watch.guard():
            await asyncio.sleep(1)  # ended by the disconnect, which comes at once
        return True

    with pytest.raises(ClientDisconnected):
        asyncio.run(run())
