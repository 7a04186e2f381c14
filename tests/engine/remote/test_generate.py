"""`RemoteEngine.generate` against a fake vLLM server: what it sends, what it yields."""

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineRequestError
from engine.remote.engine import RemoteEngine
from engine.types import Delta, GenerationParams, StructuredOutput
from tests.engine.remote.conftest import remote, run
from tests.support.fake_upstream import Endless, Failure, FakeUpstream, Raw, Tokens

PROMPT = [151644, 872, 198, 9707, 151645]
PLAIN = GenerationParams(max_tokens=64, temperature=0.6)
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


async def collect(
    engine: RemoteEngine,
    params: GenerationParams = PLAIN,
    prompt: list[int] | None = None,
    request_id: str = "req-1",
) -> list[Delta]:
    async with aclosing(engine.generate(prompt or PROMPT, params, request_id)) as deltas:
        return [delta async for delta in deltas]


def generate(
    upstream: FakeUpstream, cache_dir: Path, params: GenerationParams = PLAIN, **config: Any
) -> list[Delta]:
    async def scenario(engine: RemoteEngine) -> list[Delta]:
        return await collect(engine, params)

    return run(remote(upstream, **config), cache_dir, scenario)


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = upstream.calls("/v1/completions")[-1].body
    return body


def test_a_plain_request_streams_token_ids_with_every_control_field(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    generate(upstream, cache_dir)

    assert sent(upstream) == {
        "model": "qwq",
        "prompt": PROMPT,
        "max_tokens": 64,
        "temperature": 0.6,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "return_token_ids": True,
        "skip_special_tokens": True,
        "request_id": "req-1",
    }
    assert upstream.calls("/v1/completions")[-1].headers["x-request-id"] == "req-1"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(
            GenerationParams(max_tokens=5, temperature=3.5, top_p=0.0, top_k=7, seed=42),
            {"temperature": 2.0, "top_p": 1e-6, "top_k": 7, "seed": 42},
            id="clamped-like-in-process",
        ),
        pytest.param(
            GenerationParams(
                max_tokens=5,
                temperature=0.0,
                repetition_penalty=0.0,
                frequency_penalty=0.5,
                presence_penalty=-0.5,
            ),
            {
                "temperature": 0.0,
                "repetition_penalty": 0.01,
                "frequency_penalty": 0.5,
                "presence_penalty": -0.5,
            },
            id="penalties",
        ),
    ],
)
def test_sampling_fields_are_mapped_as_in_process_and_unset_ones_left_to_the_upstream(
    upstream: FakeUpstream, cache_dir: Path, params: GenerationParams, expected: dict[str, Any]
) -> None:
    generate(upstream, cache_dir, params)

    body = sent(upstream)
    sampling = {"temperature", "top_p", "top_k", "seed", "repetition_penalty"}
    sampling |= {"frequency_penalty", "presence_penalty", "min_p"}
    assert {name: body[name] for name in sampling if name in body} == expected
    assert body["max_tokens"] == 5


@pytest.mark.parametrize(
    ("structured", "expected"),
    [
        pytest.param(StructuredOutput(json_schema=SCHEMA), {"json": SCHEMA}, id="json-schema"),
        pytest.param(StructuredOutput(json_object=True), {"json_object": True}, id="json-object"),
        pytest.param(StructuredOutput(regex="[0-9]{3}"), {"regex": "[0-9]{3}"}, id="regex"),
    ],
)
def test_a_grammar_is_sent_as_structured_outputs_never_guided_fields(
    upstream: FakeUpstream,
    cache_dir: Path,
    structured: StructuredOutput,
    expected: dict[str, Any],
) -> None:
    generate(upstream, cache_dir, GenerationParams(8, 0.0, structured=structured))

    body = sent(upstream)
    assert body["structured_outputs"] == expected
    assert not [name for name in body if name.startswith("guided")]
    assert "stop_token_ids" not in body


def test_deltas_carry_the_text_the_token_count_and_the_finish_reason(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.replies.append(Tokens([("Hel", [1, 2]), ("", [3]), ("lo", [4])], "stop"))

    assert generate(upstream, cache_dir) == [
        Delta("Hel", 2),
        Delta("", 1),
        Delta("lo", 1, "stop"),
    ]


def test_without_token_ids_the_counts_come_from_the_running_usage(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.replies.append(Tokens([("a", [1, 2]), ("b", [3])], "length", token_ids=False))

    deltas = generate(upstream, cache_dir)

    assert [delta.token_count for delta in deltas] == [2, 1]
    assert deltas[-1].finish_reason == "length"


def test_a_session_id_is_forwarded_as_both_affinity_headers(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    class WithSession:
        """GenerationParams once it carries `session_id` (read with getattr until then)."""

        def __init__(self) -> None:
            self.session_id = "chat-7"

        def __getattr__(self, name: str) -> Any:
            return getattr(PLAIN, name)

    generate(upstream, cache_dir, WithSession())  # type: ignore[arg-type]

    headers = upstream.calls("/v1/completions")[-1].headers
    assert headers["x-session-affinity"] == "chat-7"
    assert headers["x-session-id"] == "chat-7"


def test_without_a_session_no_affinity_header_is_sent(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    generate(upstream, cache_dir)

    headers = upstream.calls("/v1/completions")[-1].headers
    assert "x-session-affinity" not in headers
    assert "x-session-id" not in headers


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        pytest.param(
            Failure(503, "The engine is currently busy"), EngineBusyError, "busy", id="503-busy"
        ),
        pytest.param(Failure(429, "slow down"), EngineBusyError, "slow down", id="429-busy"),
        pytest.param(
            Failure(400, "This model's maximum context length is 4096 tokens"),
            EngineRequestError,
            "maximum context length",
            id="400-request",
        ),
        pytest.param(Failure(422, "bad field"), EngineRequestError, "bad field", id="422"),
        pytest.param(Failure(404, "no such route"), EngineDeadError, "404", id="404-base"),
        pytest.param(Failure(500, "EngineDeadError"), EngineDeadError, "500", id="500-dead"),
        pytest.param(Failure(502, "bad gateway"), EngineDeadError, "502", id="502"),
        pytest.param(
            Tokens([("a", [1])], error_after=Failure(503, "queue full")),
            EngineBusyError,
            "queue full",
            id="in-band-503",
        ),
        pytest.param(
            Tokens([("a", [1])], error_after=Failure(500, "Internal server error")),
            EngineDeadError,
            "Internal server error",
            id="in-band-500",
        ),
        pytest.param(Raw(["data: {not json", ""]), EngineError, "malformed", id="malformed"),
        pytest.param(Raw(["data: [DONE]", ""]), EngineDeadError, "before", id="no-finish"),
        pytest.param(
            Raw([f"data: {json.dumps({'choices': [{'text': 'a'}]})}", ""], cut=True),
            EngineDeadError,
            "connection",
            id="cut-mid-stream",
        ),
    ],
)
def test_upstream_failures_become_engine_errors(
    upstream: FakeUpstream,
    cache_dir: Path,
    reply: Tokens | Failure | Raw,
    error: type[EngineError],
    message: str,
) -> None:
    upstream.replies.append(reply)

    with pytest.raises(error, match=message) as raised:
        generate(upstream, cache_dir)

    assert type(raised.value) is error


def test_an_unreachable_upstream_is_unavailable_not_an_internal_error(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    async def scenario(engine: RemoteEngine) -> None:
        upstream.__exit__(None, None, None)  # the upstream goes away after the start
        await asyncio.sleep(0.2)  # and the client sees its kept connection close
        await collect(engine)

    with pytest.raises(EngineDeadError, match="cannot reach the upstream"):
        run(remote(upstream), cache_dir, scenario)


def test_finished_streams_leave_their_connection_open_for_the_next_request(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    """A stream read to its end keeps its connection: no new TCP connection per request, even
    when the body's end comes a while after `[DONE]`."""
    finished = {"choices": [{"text": "a", "token_ids": [1], "finish_reason": "length"}]}
    late_end = Raw([f"data: {json.dumps(finished)}", "", "data: [DONE]", ""], linger_s=0.3)
    upstream.replies.extend([late_end, Tokens(), late_end])

    async def scenario(engine: RemoteEngine) -> None:
        for _ in range(3):
            await collect(engine)

    run(remote(upstream), cache_dir, scenario)

    peers = {call.peer for call in upstream.calls("/v1/completions")}
    assert len(upstream.calls("/v1/completions")) == 3
    assert None not in peers
    assert len(peers) == 1


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_leaving_the_stream_closes_the_upstream_request(
    upstream: FakeUpstream, cache_dir: Path, how: str
) -> None:
    upstream.replies.append(Endless())

    async def scenario(engine: RemoteEngine) -> int:
        deltas = engine.generate(PROMPT, PLAIN, "req-1")
        if how == "aclose":
            await anext(deltas)
            await anext(deltas)
            await deltas.aclose()
        else:

            async def consume() -> None:
                async for _ in deltas:
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await asyncio.to_thread(upstream.disconnected.wait, 10)
        return (await engine.status()).running_requests

    assert run(remote(upstream), cache_dir, scenario) == 0
    assert upstream.disconnected.is_set()


def test_past_max_concurrent_requests_a_request_is_refused_as_busy(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.replies.append(Endless())

    async def scenario(engine: RemoteEngine) -> list[tuple[int, int | None]]:
        async with aclosing(engine.generate(PROMPT, PLAIN, "first")) as first:
            await anext(first)
            with pytest.raises(EngineBusyError):
                await collect(engine, GenerationParams(8, 0.0, reject_if_busy=True))
            status, load = await engine.status(), engine.load()
        after = engine.load()
        return [
            (status.running_requests, status.capacity),
            (load.running_requests, load.capacity),
            (after.running_requests, after.capacity),
        ]

    held = run(remote(upstream, max_concurrent_requests=1), cache_dir, scenario)

    assert held == [(1, 1), (1, 1), (0, 1)]
    assert len(upstream.calls("/v1/completions")) == 1
