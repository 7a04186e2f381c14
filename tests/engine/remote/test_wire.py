"""The wire format's edges that the fake upstream does not exercise."""

import asyncio
import json
import warnings
from collections.abc import AsyncIterator

import pytest

from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineRequestError
from engine.remote.wire import Chunk, data_events, read_chunk, status_error, without_prompt_ids


def events(*chunks: bytes) -> list[bytes]:
    """The payloads `data_events` finds in a body that arrives in these chunks."""

    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def main() -> list[bytes]:
        return [payload async for payload in data_events(source())]

    return asyncio.run(main())


def test_keep_alive_comments_and_other_fields_are_skipped() -> None:
    assert events(b": keep-alive\n\nevent: x\ndata: {}\n\ndata: [DONE]\n\n") == [b"{}"]


def test_an_event_may_span_several_data_lines() -> None:
    assert events(b"data: {\ndata: }\n\n") == [b"{\n}"]


def test_the_space_after_the_colon_is_optional() -> None:
    assert events(b"data:1\n\ndata:  2\n\n") == [b"1", b" 2"]


def test_nothing_after_done_is_read() -> None:
    assert events(b"data: 1\n\ndata: [DONE]\n\ndata: 2\n\n") == [b"1"]


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert events(b"data: 1") == [b"1"]
    assert events(b"data: 1\n") == [b"1"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_lines_may_end_as_the_sse_spec_allows(newline: bytes) -> None:
    body = newline.join([b": ping", b"", b"data: {", b"data: }", b"", b"data: 2", b"", b""])
    assert events(body) == [b"{\n}", b"2"]


BODY = (
    b": keep-alive\r\n\r\n"
    b'data: {"text": "caf\xc3\xa9"}\r\n\r\n'
    b"data: a\rdata: b\r\r"
    b"data: x\r\ndata: y\r\n\r\n"
    b"data: 3\n\n"
    b"data: [DONE]\n\n"
)


def test_a_body_may_arrive_split_anywhere() -> None:
    """Chunks end wherever TCP cut them: inside a line, a CRLF or a UTF-8 character."""
    whole = events(BODY)
    assert whole == [b'{"text": "caf\xc3\xa9"}', b"a\nb", b"x\ny", b"3"]
    for cut in range(1, len(BODY)):
        assert events(BODY[:cut], BODY[cut:]) == whole, cut
    assert events(*(BODY[i : i + 1] for i in range(len(BODY)))) == whole


@pytest.mark.parametrize(
    ("status", "adapter", "error"),
    [
        (503, None, EngineBusyError),
        (429, None, EngineBusyError),
        (400, "pirate", EngineRequestError),
        (404, "pirate", EngineRequestError),
        (404, None, EngineDeadError),
        (413, None, EngineRequestError),
        (504, None, EngineDeadError),
        (401, None, EngineError),
        (409, None, EngineError),
    ],
)
def test_each_status_has_its_engine_error(
    status: int, adapter: str | None, error: type[EngineError]
) -> None:
    assert type(status_error(status, "message", adapter)) is error


def test_credentials_problems_are_not_shown_to_clients() -> None:
    assert "secret" not in str(status_error(401, "secret token abc is invalid"))


def first_chunk(prompt_ids: list[int], text: str = "Hi", **extra: object) -> dict[str, object]:
    """vLLM 0.32's first chunk with `return_token_ids`: the prompt's ids echoed."""
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": None,
        "stop_reason": None,
        "prompt_token_ids": prompt_ids,
        "token_ids": [7],
        **extra,
    }
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "choices": [choice]}


def compact(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def test_the_echoed_prompt_ids_are_cut_out_before_parsing() -> None:
    chunk = first_chunk(list(range(5000)))
    payload = compact(chunk)

    cut = without_prompt_ids(payload)

    expected = first_chunk([])
    del expected["choices"][0]["prompt_token_ids"]  # type: ignore[index]
    assert json.loads(cut) == expected
    assert len(cut) < 200
    assert read_chunk(payload) == Chunk("Hi", [7], None, None, None)


def test_the_echo_as_the_last_field_leaves_valid_json() -> None:
    payload = compact({"a": 1, "prompt_token_ids": list(range(5000))})

    assert json.loads(without_prompt_ids(payload)) == {"a": 1}


def test_text_that_spells_the_field_is_left_alone() -> None:
    text = '"prompt_token_ids":[1]' * 400  # escaped in the JSON: never a key
    payload = compact(first_chunk([1, 2], text=text))

    (choice,) = json.loads(without_prompt_ids(payload))["choices"]
    assert choice["text"] == text
    assert "prompt_token_ids" not in choice
    chunk = read_chunk(payload)
    assert chunk is not None
    assert chunk.text == text


def test_short_chunks_are_parsed_as_they_are() -> None:
    payload = compact(first_chunk([1, 2, 3]))

    assert without_prompt_ids(payload) is payload
    assert read_chunk(payload) == Chunk("Hi", [7], None, None, None)


def test_vllms_own_first_chunk_is_cut_and_read_alike() -> None:
    """Built with vLLM 0.32's own classes, serialized as its serving code does."""
    from engine.vllm.engine import prepare_vllm_environment

    prepare_vllm_environment()
    with warnings.catch_warnings():
        # Importing them compiles torch's code, whose own deprecations are not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.entrypoints.openai.completion.protocol import (
            CompletionResponseStreamChoice,
            CompletionStreamResponse,
        )
        from vllm.entrypoints.serve.engine.protocol import UsageInfo

    response = CompletionStreamResponse(
        id="cmpl-1",
        object="text_completion",
        created=0,
        model="tiny",
        choices=[
            CompletionResponseStreamChoice(
                index=0,
                text="Hi",
                logprobs=None,
                finish_reason=None,
                stop_reason=None,
                prompt_token_ids=list(range(100, 3100)),
                token_ids=[7],
            )
        ],
    )
    response.usage = UsageInfo(prompt_tokens=3000, completion_tokens=1, total_tokens=3001)
    payload = response.model_dump_json(exclude_unset=True).encode()

    cut = without_prompt_ids(payload)

    assert len(cut) < len(payload) // 10
    expected = json.loads(payload)
    del expected["choices"][0]["prompt_token_ids"]
    assert json.loads(cut) == expected
    assert read_chunk(payload) == Chunk("Hi", [7], 1, None, None)
