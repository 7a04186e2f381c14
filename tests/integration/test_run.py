"""The real server on real vLLM engines (tiny random-weight models), driven over HTTP."""

from typing import Any

import httpx
import pytest

from chat_templates import ChatTemplate
from server.generation.specs import MODELS
from tests.support.live import BOTH, MESSAGES, QWQ, R1, result, run
from tests.support.sse import parse_events


def count_prompt_tokens(tokenizers: dict[str, Any], model: str, messages: list[Any]) -> int:
    prompt = ChatTemplate.builtin(MODELS[model].template).render(messages)
    return len(tokenizers[model].encode(prompt, add_special_tokens=False))


@BOTH
def test_messages_form(api: httpx.Client, tokenizers: dict[str, Any], model: str) -> None:
    answer = result(api, model, messages=MESSAGES, max_tokens=12, temperature=0)

    assert isinstance(answer["response"], str)
    assert answer["response"]
    assert answer["tool_calls"] == []
    usage = answer["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(tokenizers, model, MESSAGES)
    assert 1 <= usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@BOTH
def test_prompt_form_is_a_user_turn(
    api: httpx.Client, tokenizers: dict[str, Any], model: str
) -> None:
    answer = result(api, model, prompt="Tell me about PEP-8", max_tokens=4, temperature=0)

    expected = count_prompt_tokens(
        tokenizers, model, [{"role": "user", "content": "Tell me about PEP-8"}]
    )
    assert answer["usage"]["prompt_tokens"] == expected


@BOTH
def test_raw_prompt_is_untemplated(
    api: httpx.Client, tokenizers: dict[str, Any], model: str
) -> None:
    answer = result(api, model, prompt="plain text", raw=True, max_tokens=4, temperature=0)

    assert answer["usage"]["prompt_tokens"] == len(tokenizers[model].encode("plain text"))


@BOTH
def test_stream_matches_the_non_streamed_answer(api: httpx.Client, model: str) -> None:
    body = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0}
    whole = result(api, model, **body)

    response = run(api, model, stream=True, **body)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events, done = parse_events(response.text)
    assert done
    assert all("response" in event for event in events)
    assert "".join(event["response"] for event in events) == whole["response"]
    assert events[-1] == {"response": "", "usage": whole["usage"]}
    assert all(set(event) == {"response", "p"} for event in events[:-1])


@BOTH
def test_max_tokens_is_respected(api: httpx.Client, model: str) -> None:
    answer = result(api, model, prompt="Count to ten", max_tokens=5, temperature=1.0, seed=7)

    assert answer["usage"]["completion_tokens"] == 5


def test_default_max_tokens_is_256(api: httpx.Client) -> None:
    answer = result(api, R1, prompt="Write a long story", seed=3, temperature=1.0)

    assert answer["usage"]["completion_tokens"] == 256


@BOTH
def test_same_seed_same_answer(api: httpx.Client, model: str) -> None:
    body = {"prompt": "Surprise me", "max_tokens": 24, "temperature": 1.0}
    first = result(api, model, seed=1234, **body)["response"]
    again = result(api, model, seed=1234, **body)["response"]
    other = result(api, model, seed=4321, **body)["response"]

    assert first == again
    assert first != other


PENALTIES = [
    pytest.param(QWQ, {"repetition_penalty": 2.0}, id="qwq-repetition"),
    pytest.param(QWQ, {"frequency_penalty": 2.0}, id="qwq-frequency"),
    pytest.param(QWQ, {"presence_penalty": 2.0}, id="qwq-presence"),
    pytest.param(R1, {"repetition_penalty": 2.0}, id="r1-repetition"),
    pytest.param(R1, {"frequency_penalty": -2.0}, id="r1-negative-frequency"),
    pytest.param(R1, {"presence_penalty": 2.0}, id="r1-presence"),
]


@pytest.mark.parametrize(("model", "penalty"), PENALTIES)
def test_penalties_reach_the_engine(
    api: httpx.Client, model: str, penalty: dict[str, float]
) -> None:
    body = {"prompt": "Repeat after me: la la la", "max_tokens": 48, "temperature": 0}
    plain = result(api, model, **body)["response"]

    penalised = result(api, model, **body, **penalty)["response"]

    assert penalised != plain


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (QWQ, {"temperature": 5, "top_p": 2, "repetition_penalty": 0}),
        (QWQ, {"temperature": 3.3, "top_p": 0, "top_k": 50}),
        (R1, {"temperature": 5, "top_p": 0.001, "seed": 9999999999}),
    ],
    ids=["qwq-upper-bounds", "qwq-top-p-zero", "r1-bounds"],
)
def test_workers_ai_ranges_beyond_vllm_are_served(
    api: httpx.Client, model: str, values: dict[str, float]
) -> None:
    answer = result(api, model, prompt="Hi", max_tokens=3, **values)

    assert answer["usage"]["completion_tokens"] == 3


def test_two_models_in_parallel(api: httpx.Client) -> None:
    import concurrent.futures

    def ask(model: str) -> dict[str, Any]:
        return result(api, model, prompt="Hi", max_tokens=16, temperature=0)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, [QWQ, R1, QWQ, R1]))

    assert answers[0]["response"] == answers[2]["response"]
    assert answers[1]["response"] == answers[3]["response"]


def test_long_prompt_beyond_common_defaults(api: httpx.Client, tokenizers: dict[str, Any]) -> None:
    # ~30k tokens: more than QwQ's window, well inside R1-distill's 80000.
    prompt = "word " * 30000
    tokens = len(tokenizers[R1].encode(prompt, add_special_tokens=False))
    assert 24000 < tokens < 79000

    answer = result(api, R1, prompt=prompt, raw=True, max_tokens=2, temperature=0)

    assert answer["usage"]["prompt_tokens"] == tokens


def test_seeded_long_prompt_leaves_the_engine_healthy(api: httpx.Client) -> None:
    # Longer than vLLM's default prefill chunk (4096 tokens), with a per-request seed.
    prompt = "seed " * 6000

    answer = result(api, QWQ, prompt=prompt, raw=True, max_tokens=3, seed=5, temperature=1.0)

    assert answer["usage"]["completion_tokens"] == 3
    assert api.get("/health").status_code == 200


@BOTH
def test_one_token_prompt_leaves_the_engine_healthy(
    api: httpx.Client, tokenizers: dict[str, Any], model: str
) -> None:
    # On a CPU with AMX, a one-token forward pass that came before any longer prompt killed the
    # worker (SIGILL, see engine.vllm.amx); test_swap.py's probes are such first requests.
    assert len(tokenizers[model].encode("a", add_special_tokens=False)) == 1

    answer = result(api, model, prompt="a", raw=True, max_tokens=3, temperature=0)

    assert answer["usage"]["prompt_tokens"] == 1
    assert answer["usage"]["completion_tokens"] == 3
    assert api.get("/health").status_code == 200
