"""The early context-window check: a prompt whose token floor (`Engine.fewest_tokens`) alone
exceeds the window is refused (413/5021) without being tokenized; any other prompt is tokenized,
so a refusal near the limit states the exact estimate. Over a fake engine whose floor is a
quarter of its true count; the floor itself is proven on real tokenizers in
tests/engine/test_token_bytes.py."""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url, served
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

WINDOW = 1000
MAX_TOKENS = 10


@dataclass
class CountingEngine(FakeEngine):
    """One token per character, as FakeEngine; counts its `encode` calls, and its floor is a
    quarter of the true count (sound, and low enough to let the exact check speak too)."""

    encoded: int = 0
    floored: int = 0

    def encode(self, text: str) -> list[int]:
        self.encoded += 1
        return super().encode(text)

    def fewest_tokens(self, text: str) -> int:
        self.floored += 1
        return len(text) // 4


@pytest.fixture
def engines() -> dict[str, FakeEngine]:
    return {QWQ: CountingEngine(), R1: CountingEngine()}


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client(models=[served(QWQ, max_model_len=WINDOW), served(R1)])


@pytest.fixture
def engine(engines: dict[str, FakeEngine]) -> CountingEngine:
    counting = engines[QWQ]
    assert isinstance(counting, CountingEngine)
    return counting


def post(client: TestClient, prompt_tokens: int, max_tokens: int = MAX_TOKENS) -> Any:
    """A raw prompt (no chat template) that the fake engine encodes into `prompt_tokens` tokens."""
    body = {"prompt": "x" * prompt_tokens, "raw": True, "max_tokens": max_tokens}
    return client.post(run_url(QWQ), json=body, headers=AUTH)


def estimate_error(estimated: int) -> str:
    return (
        f"The estimated number of input and maximum output tokens ({estimated}) "
        f"exceeded this model context window limit ({WINDOW})."
    )


def test_a_prompt_whose_floor_exceeds_the_window_is_refused_without_tokenizing(
    client: TestClient, engine: CountingEngine
) -> None:
    response = post(client, 4 * (WINDOW + 1))

    # The estimate is the floor (4004 // 4 tokens) and max_tokens: under the true 4014.
    assert_error(response, 413, 5021, estimate_error(WINDOW + 1 + MAX_TOKENS))
    assert engine.encoded == 0
    assert engine.calls == []


def test_a_prompt_whose_floor_fills_the_window_is_counted(
    client: TestClient, engine: CountingEngine
) -> None:
    response = post(client, 4 * WINDOW)

    assert_error(response, 413, 5021, estimate_error(4 * WINDOW + MAX_TOKENS))
    assert engine.encoded == 1
    assert engine.calls == []


def test_a_short_prompt_refused_for_its_max_tokens_states_the_exact_estimate(
    client: TestClient, engine: CountingEngine
) -> None:
    response = post(client, 4, max_tokens=WINDOW)

    # The floor (1) and max_tokens exceed the window too, but the prompt alone may fit.
    assert_error(response, 413, 5021, estimate_error(4 + WINDOW))
    assert engine.encoded == 1


def test_a_prompt_that_fills_the_window_exactly_is_served(
    client: TestClient, engine: CountingEngine
) -> None:
    response = post(client, WINDOW - MAX_TOKENS)

    assert response.status_code == 200, response.text
    assert engine.encoded == 1
    assert len(engine.calls[0].prompt_token_ids) == WINDOW - MAX_TOKENS


def test_one_token_more_is_refused_by_the_exact_count(
    client: TestClient, engine: CountingEngine
) -> None:
    response = post(client, WINDOW - MAX_TOKENS + 1)

    assert_error(response, 413, 5021, estimate_error(WINDOW + 1))
    assert engine.encoded == 1


def test_a_prompt_too_short_to_pass_the_window_needs_no_floor(
    client: TestClient, engine: CountingEngine
) -> None:
    """The floor never passes the prompt's UTF-8 bytes, 4 a character at most."""
    assert post(client, WINDOW // 4).status_code == 200
    assert engine.floored == 0

    assert post(client, WINDOW // 4 + 1).status_code == 200
    assert engine.floored == 1
