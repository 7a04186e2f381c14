"""The bare relay passes the upstream's stream through unchanged, and `bench.gateway_cpu` sets
what this server adds beside what the relay adds, round by round."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn

from bench.bare_relay import BareRelay
from bench.compare import Target
from bench.gateway_cpu import answer, summary

STREAM = {"model": "steady", "prompt": [1, 2, 3], "max_tokens": 3, "stream": True}


@asynccontextmanager
async def relay_in_front_of(upstream: str) -> AsyncIterator[str]:
    """A bare relay on a free port in this event loop; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(BareRelay(upstream), log_level="critical"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            assert not task.done(), "the relay did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@asynccontextmanager
async def steady_upstream() -> AsyncIterator[str]:
    """`bench.gateway_cpu`'s stand-in, streaming without pauses; yields its URL."""
    server = await asyncio.start_server(
        lambda reader, writer: answer(reader, writer, 0.0), "127.0.0.1", 0
    )
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def streamed(client: httpx.AsyncClient, url: str) -> tuple[int, str, bytes]:
    async with client.stream("POST", url + "/v1/completions", json=STREAM) as response:
        body = await response.aread()
        return response.status_code, response.headers["content-type"], body


def test_the_stream_comes_through_unchanged() -> None:
    async def scenario() -> None:
        async with (
            steady_upstream() as upstream,
            relay_in_front_of(upstream) as relay,
            httpx.AsyncClient(timeout=10) as client,
        ):
            straight = await streamed(client, upstream)
            relayed = await asyncio.gather(*(streamed(client, relay) for _ in range(3)))
            health = await client.get(relay + "/health")
            # The stand-in answers `{}` to any path but /v1/models and /v1/completions.
            chat = await client.post(relay + "/v1/chat/completions", json={})
            elsewhere = await client.post(relay + "/v1/embeddings", json={})

        assert straight[0] == 200
        assert straight[2].count(b"data: {") == 3
        assert straight[2].endswith(b"data: [DONE]\n\n")
        assert relayed == [(200, "text/event-stream", straight[2])] * 3
        assert health.status_code == 200
        assert (chat.status_code, chat.content) == (200, b"{}")
        assert elsewhere.status_code == 404

    asyncio.run(scenario())


def test_an_upstream_that_cannot_be_reached_is_a_502() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    upstream = f"http://127.0.0.1:{closed.getsockname()[1]}"

    async def scenario() -> httpx.Response:
        async with relay_in_front_of(upstream) as relay, httpx.AsyncClient(timeout=10) as client:
            return await client.post(relay + "/v1/completions", json=STREAM)

    try:
        assert asyncio.run(scenario()).status_code == 502
    finally:
        closed.close()


def test_the_time_added_is_taken_round_by_round() -> None:
    ours, relay, straight = Target("ours", ""), Target("relay", ""), Target("straight", "")
    # (tokens/s, p50 TTFT ms, CPU ms per token, longest gap ms) of each path, in two rounds;
    # the machine slows down in the second, for every path alike.
    first = {ours: (900.0, 20.0, 0.30, 40.0), relay: (950.0, 16.0, 0.12, 0.0)}
    second = {ours: (800.0, 30.0, 0.34, 60.0), relay: (850.0, 27.0, 0.14, 0.0)}
    first[straight] = (0.0, 15.0, 0.0, 0.0)
    second[straight] = (0.0, 24.0, 0.0, 0.0)
    rounds = [first, second]

    fields = [field.strip() for field in summary(8, rounds, ours, relay, straight).split("|")]

    # conc., tokens/s, p50 TTFT, upstream alone, added, bare relay adds, CPU, relay CPU, gap
    assert fields == ["8", "850", "25.0", "19.5", "+5.5", "+2.0", "0.320", "0.130", "60.0"]
