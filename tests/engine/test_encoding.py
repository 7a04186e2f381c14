"""`prompt_encoder`: a prompt's ids straight from the Rust backend, the same as transformers'
`encode(text, add_special_tokens=False)`, and transformers itself where they would differ."""

import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from engine.encoding import prompt_encoder
from tests.engine.test_token_bytes import SAMPLES, TINY, _tiny_tokenizer

CHAT = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n4</think>\n\n<｜User｜>Hi<｜Assistant｜><think>\n"
)


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {name: _tiny_tokenizer(name, tmp_path_factory.mktemp(name)) for name in TINY}


@pytest.mark.parametrize("name", TINY)
def test_the_backend_gives_the_ids_transformers_gives(
    tokenizers: dict[str, Any], name: str
) -> None:
    tokenizer = tokenizers[name]
    encode = prompt_encoder(tokenizer)

    assert encode.__name__ == "through_backend"
    for text in [CHAT, "", " ", *SAMPLES.values()]:
        assert encode(text) == tokenizer.encode(text, add_special_tokens=False)


def test_special_tokens_in_the_text_are_single_ids(tokenizers: dict[str, Any]) -> None:
    tokenizer = tokenizers["tiny-qwq-32b"]

    ids = prompt_encoder(tokenizer)("<think>")

    assert ids == [tokenizer.convert_tokens_to_ids("<think>")]


def test_a_backend_set_to_truncate_goes_through_transformers(
    tokenizers: dict[str, Any],
) -> None:
    tokenizer = copy.deepcopy(tokenizers["tiny-qwq-32b"])
    tokenizer.backend_tokenizer.enable_truncation(max_length=3)

    encode = prompt_encoder(tokenizer)

    assert encode.__name__ == "through_transformers"
    assert len(encode(SAMPLES["prose"])) > 3  # transformers lifts the truncation


def test_split_special_tokens_goes_through_transformers(tokenizers: dict[str, Any]) -> None:
    tokenizer = copy.deepcopy(tokenizers["tiny-qwq-32b"])
    tokenizer.split_special_tokens = True

    encode = prompt_encoder(tokenizer)

    assert encode.__name__ == "through_transformers"
    assert encode(CHAT) == tokenizer.encode(CHAT, add_special_tokens=False)


def test_a_tokenizer_without_a_backend_goes_through_its_encode() -> None:
    class Slow:
        def encode(self, text: str, add_special_tokens: bool) -> list[int]:
            assert add_special_tokens is False
            return [ord(character) for character in text]

    assert prompt_encoder(Slow())("ab") == [97, 98]


@pytest.mark.parametrize("has_fast", [True, False], ids=["tokenizers-0.21", "older"])
def test_the_call_without_offsets_is_made_where_the_backend_has_it(
    tokenizers: dict[str, Any], has_fast: bool
) -> None:
    """`encode_batch_fast` (tokenizers 0.21 and later), never `encode_batch`, which computes the
    offsets nobody reads; `encode_batch` on a backend without it. The ids are the same."""
    real = tokenizers["tiny-qwq-32b"].backend_tokenizer
    calls: list[str] = []

    def recorded(name: str) -> Callable[..., Any]:
        def call(texts: list[str], add_special_tokens: bool) -> Any:
            calls.append(name)
            return getattr(real, name)(texts, add_special_tokens=add_special_tokens)

        return call

    backend = SimpleNamespace(truncation=None, padding=None, encode_batch=recorded("encode_batch"))
    if has_fast:
        backend.encode_batch_fast = recorded("encode_batch_fast")
    encode = prompt_encoder(SimpleNamespace(backend_tokenizer=backend))

    assert encode.__name__ == "through_backend"
    assert encode(CHAT) == real.encode(CHAT, add_special_tokens=False).ids
    assert calls == ["encode_batch_fast" if has_fast else "encode_batch"]
