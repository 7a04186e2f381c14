"""The graceful drain (`server.http.drain`), over raw ASGI with scripted engines.

serving    every request admitted; /health 200
draining   /health 503 "draining"; new requests 503/3040 with Retry-After, then the connection
           closes; admitted requests run on, and the drain ends as soon as none is left
over       at the end of the grace period, or at once on `force` (a second signal): a stream
           gets the in-band error and [DONE], a request that has not answered yet the 503
           envelope; either way its engine request is aborted
"""

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine.types import Delta, GenerationParams
from server.app import create_app
from server.http.drain import Drain
from tests.server.http.asgi import Exchange, post
from tests.support.app import AUTH, QWQ, R1, make_settings, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events

SHUTTING_DOWN = "The server is shutting down, please try again."
CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"
# Long enough never to be reached: a drain that waited for it would hang the test.
FOREVER_S = 3600.0


@dataclass
class EndlessEngine(FakeEngine):
    """Yields `first` (nothing when empty), then nothing ever: its requests end only when
    they are cancelled."""

    first: str = "Hello"

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        self.running += 1
        try:
            if self.first:
                yield Delta(self.first, 1, None)
            await asyncio.get_running_loop().create_future()
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted += 1
            raise
        finally:
            self.running -= 1


async def get(app: FastAPI, path: str) -> Exchange:
    exchange = Exchange()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        exchange.messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [], "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return exchange


async def running(engine: FakeEngine, count: int) -> None:
    """Wait until `engine` runs `count` requests."""
    for _ in range(5000):
        if engine.running >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the engine runs {engine.running} requests, not {count}")


def scenario(
    engine: FakeEngine, steps: Callable[[FastAPI, Drain], Awaitable[None]], **settings: Any
) -> None:
    """Run `steps` against an app serving R1 with `engine`, under its lifespan."""
    app = create_app(make_settings(**settings), engines={QWQ: FakeEngine(), R1: engine})

    async def run() -> None:
        async with app.router.lifespan_context(app), asyncio.timeout(60):
            await steps(app, app.state.drain)

    asyncio.run(run())


def envelope(exchange: Exchange) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(exchange.body)
    return payload


# --- draining: refuse new work, report it ---------------------------------------------------


def test_health_is_200_until_the_drain_begins(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"


def test_health_turns_503_draining_when_the_drain_begins(draining: TestClient) -> None:
    response = draining.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "draining"
    assert response.json()["models"][QWQ]["healthy"] is True


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(run_url(QWQ), {"prompt": "Hi"}, id="workers-ai"),
        pytest.param(run_url(QWQ), {"prompt": "Hi", "stream": True}, id="workers-ai-stream"),
        pytest.param(CHAT, {"model": QWQ, "messages": [], "stream": True}, id="openai"),
        pytest.param("/client/v4/accounts/acct/ai/models/search", None, id="catalog"),
    ],
)
def test_new_requests_get_503_with_retry_after_and_a_closed_connection(
    draining: TestClient, path: str, body: Any
) -> None:
    response = draining.post(path, json=body, headers=AUTH)

    assert_error(response, 503, 3040, SHUTTING_DOWN)
    assert response.headers["retry-after"] == "5"
    assert response.headers["connection"] == "close"
    assert "x-request-id" in response.headers


def test_beginning_twice_is_one_drain(draining: TestClient) -> None:
    drain: Drain = draining.app.state.drain  # type: ignore[attr-defined]

    assert draining.portal is not None
    assert draining.portal.call(drain.begin) is False
    assert drain.state == "draining"


def test_a_drain_with_nothing_running_ends_at_once() -> None:
    async def steps(app: FastAPI, drain: Drain) -> None:
        await drain.finish(FOREVER_S)
        assert drain.state == "over"

    scenario(FakeEngine(), steps)


# --- running requests finish within the grace period ------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_running_request_finishes_normally_and_the_drain_then_ends(stream: bool) -> None:
    engine = FakeEngine(delay=0.05)

    async def steps(app: FastAPI, drain: Drain) -> None:
        request = asyncio.create_task(post(app, run_url(R1), {"prompt": "Hi", "stream": stream}))
        await running(engine, 1)
        drain.begin()
        refused = await post(app, run_url(R1), {"prompt": "Hi"})
        await drain.finish(FOREVER_S)  # returns once the request has answered

        answered = request.result()
        assert answered.status == 200
        assert answered.complete
        assert refused.status == 503
        if stream:
            events, done = parse_events(answered.body.decode())
            assert done
            assert "errors" not in events[-1]
            assert events[-1]["usage"]["completion_tokens"] == 4
        else:
            assert envelope(answered)["result"]["response"] == "Hello, world."
        assert engine.aborted == 0

    scenario(engine, steps)


# --- what still runs at the end is ended ------------------------------------------------------


def end_now(drain: Drain, how: str) -> Awaitable[None]:
    """End the drain: by its grace period running out, or by `force` (a second signal)."""
    if how == "grace":
        return drain.finish(0.05)
    finishing = drain.finish(FOREVER_S)
    drain.force()
    return finishing


ENDINGS = pytest.mark.parametrize("how", ["grace", "force"])


@ENDINGS
def test_a_stream_running_at_the_end_gets_an_in_band_error_then_done(how: str) -> None:
    engine = EndlessEngine()

    async def steps(app: FastAPI, drain: Drain) -> None:
        stream = asyncio.create_task(post(app, run_url(R1), {"prompt": "Hi", "stream": True}))
        await running(engine, 1)
        drain.begin()
        await end_now(drain, how)

        answered = stream.result()
        assert answered.status == 200
        assert answered.complete
        events, done = parse_events(answered.body.decode())
        assert done
        assert events[0]["response"] == "Hello"
        assert events[-1] == {
            "response": "",
            "errors": [{"code": 3040, "message": SHUTTING_DOWN}],
        }
        assert engine.aborted == 1
        assert drain.running == 0

    scenario(engine, steps)


def test_an_openai_stream_gets_the_error_in_its_own_shape() -> None:
    engine = EndlessEngine()

    async def steps(app: FastAPI, drain: Drain) -> None:
        body = {"model": R1, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        stream = asyncio.create_task(post(app, CHAT, body))
        await running(engine, 1)
        await end_now(drain, "force")

        events, done = parse_events(stream.result().body.decode())
        assert done
        assert events[-1]["error"]["message"] == SHUTTING_DOWN
        assert engine.aborted == 1

    scenario(engine, steps)


@ENDINGS
@pytest.mark.parametrize(
    ("first", "stream"),
    [
        pytest.param("Hello", False, id="whole"),
        pytest.param("", True, id="stream-before-its-first-event"),
    ],
)
def test_a_request_not_answered_at_the_end_gets_the_503_envelope(
    how: str, first: str, stream: bool
) -> None:
    engine = EndlessEngine(first=first)

    async def steps(app: FastAPI, drain: Drain) -> None:
        request = asyncio.create_task(post(app, run_url(R1), {"prompt": "Hi", "stream": stream}))
        await running(engine, 1)
        drain.begin()
        await end_now(drain, how)

        answered = request.result()
        assert answered.status == 503
        assert answered.headers["retry-after"] == "5"
        assert envelope(answered)["errors"] == [{"code": 3040, "message": SHUTTING_DOWN}]
        assert engine.aborted == 1

    scenario(engine, steps)


def test_health_answers_throughout_the_drain() -> None:
    engine = EndlessEngine()

    async def steps(app: FastAPI, drain: Drain) -> None:
        stream = asyncio.create_task(post(app, run_url(R1), {"prompt": "Hi", "stream": True}))
        await running(engine, 1)
        before = await get(app, "/health")
        drain.begin()
        during = await get(app, "/health")
        await end_now(drain, "force")
        after = await get(app, "/health")

        assert [before.status, during.status, after.status] == [200, 503, 503]
        assert json.loads(during.body)["models"][R1]["running_requests"] == 1
        assert json.loads(after.body)["status"] == "draining"
        assert stream.result().complete

    scenario(engine, steps)
