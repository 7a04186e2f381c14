"""JSON after reasoning over `/v1/completions`: reason freely up to `</think>`, then continue
with the grammar (see the module docstring of `engine.remote.engine`)."""

from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError
from engine.remote.checkpoint import Checkpoint
from engine.remote.engine import RemoteEngine
from engine.types import Delta, GenerationParams, StructuredOutput
from tests.engine.remote.conftest import remote, run
from tests.engine.remote.test_generate import SCHEMA, collect, generate
from tests.support.fake_upstream import FakeUpstream, Tokens

AFTER = StructuredOutput(json_schema=SCHEMA, after_reasoning=True)


@pytest.fixture
def think(checkpoint: Checkpoint) -> tuple[int, int]:
    assert checkpoint.think_open is not None
    assert checkpoint.think_close is not None
    return checkpoint.think_open, checkpoint.think_close


def bodies(upstream: FakeUpstream) -> list[dict[str, Any]]:
    return [call.body for call in upstream.calls("/v1/completions")]


def test_reasoning_stops_at_think_close_then_the_grammar_continues_from_there(
    upstream: FakeUpstream, cache_dir: Path, think: tuple[int, int]
) -> None:
    _, close = think
    upstream.replies.append(
        Tokens([("Let me", [10, 11]), ("</think>", [close])], "stop", stop_reason=close)
    )
    upstream.replies.append(Tokens([('{"a": 1}', [5, 6, 7])], "stop"))

    deltas = generate(upstream, cache_dir, GenerationParams(64, 0.6, structured=AFTER))

    assert deltas == [Delta("Let me", 2), Delta("</think>", 1), Delta('{"a": 1}', 3, "stop")]
    reasoning, answer = bodies(upstream)
    assert "structured_outputs" not in reasoning
    assert reasoning["stop_token_ids"] == [close]
    assert reasoning["include_stop_str_in_output"] is True
    assert answer["prompt"] == reasoning["prompt"] + [10, 11, close]
    assert answer["max_tokens"] == 64 - 3
    assert answer["structured_outputs"] == {"json": SCHEMA}
    assert "stop_token_ids" not in answer


@pytest.mark.parametrize(
    ("reply", "finish"),
    [
        pytest.param(Tokens([("hmm", [10, 11])], "length"), "length", id="out-of-tokens"),
        pytest.param(Tokens([("hmm", [10, 11])], "stop"), "stop", id="eos-while-reasoning"),
    ],
)
def test_reasoning_that_never_closes_ends_the_generation(
    upstream: FakeUpstream, cache_dir: Path, reply: Tokens, finish: str
) -> None:
    upstream.replies.append(reply)

    deltas = generate(upstream, cache_dir, GenerationParams(64, 0.6, structured=AFTER))

    assert len(bodies(upstream)) == 1
    assert deltas[-1].finish_reason == finish
    assert sum(delta.token_count for delta in deltas) == 2


def test_think_close_as_the_last_allowed_token_finishes_by_length_as_in_process(
    upstream: FakeUpstream, cache_dir: Path, think: tuple[int, int]
) -> None:
    _, close = think
    upstream.replies.append(Tokens([("a", [10, 11]), ("</think>", [close])], "stop", close))

    deltas = generate(upstream, cache_dir, GenerationParams(3, 0.6, structured=AFTER))

    assert len(bodies(upstream)) == 1
    assert deltas[-1] == Delta("", 0, "length")


def test_a_prompt_that_already_closed_its_reasoning_gets_the_grammar_at_once(
    upstream: FakeUpstream, cache_dir: Path, checkpoint: Checkpoint, think: tuple[int, int]
) -> None:
    prompt = checkpoint.tokenizer.encode("<think>\nok</think>\n\n", add_special_tokens=False)
    upstream.replies.append(Tokens([("{}", [5])], "stop"))

    async def scenario(engine: RemoteEngine) -> None:
        await collect(engine, GenerationParams(64, 0.6, structured=AFTER), prompt)

    run(remote(upstream), cache_dir, scenario)

    (only,) = bodies(upstream)
    assert only["structured_outputs"] == {"json": SCHEMA}
    assert "stop_token_ids" not in only


def test_reasoning_first_needs_the_token_ids_of_the_reasoning(
    upstream: FakeUpstream, cache_dir: Path
) -> None:
    upstream.replies.append(Tokens([("a", [10])], "stop", token_ids=False))

    with pytest.raises(EngineError, match="token_ids"):
        generate(upstream, cache_dir, GenerationParams(64, 0.6, structured=AFTER))
