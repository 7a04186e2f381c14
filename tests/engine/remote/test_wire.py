"""The wire format's edges that the fake upstream does not exercise."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineRequestError
from engine.remote.wire import data_events, status_error


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
