"""A prompt's token ids, as both engines count them.

    encode = prompt_encoder(tokenizer)    once per tokenizer
    encode(prompt) -> list[int]           `tokenizer.encode(prompt, add_special_tokens=False)`

A fast (Rust) tokenizer is called directly: transformers' `encode` checks its arguments, sets
the backend's truncation and padding, and builds a `BatchEncoding` on every call, which took as
long as the encoding itself for a chat prompt (some 40 us of the gateway's CPU per request).
The call is `encode_batch_fast` where the backend has it (tokenizers 0.21 and later): transformers'
`encode_batch` without the character offsets, which nobody here reads (a long prompt in half to
three quarters of the time). Both release the GIL, so a long prompt tokenized on a
preparing thread leaves the event loop running. A backend set to truncate, pad or split special
tokens would answer otherwise: such a tokenizer goes through transformers.
"""

from collections.abc import Callable
from typing import Any

Encode = Callable[[str], list[int]]


def prompt_encoder(tokenizer: Any) -> Encode:
    """`tokenizer.encode(text, add_special_tokens=False)`, through its backend where the ids
    are the same."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (
        backend is None
        or backend.truncation is not None
        or backend.padding is not None
        or getattr(backend, "encode_special_tokens", False)
        or getattr(tokenizer, "split_special_tokens", False)
    ):

        def through_transformers(text: str) -> list[int]:
            ids: list[int] = tokenizer.encode(text, add_special_tokens=False)
            return ids

        return through_transformers

    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def through_backend(text: str) -> list[int]:
        ids: list[int] = encode_batch([text], add_special_tokens=False)[0].ids
        return ids

    return through_backend
