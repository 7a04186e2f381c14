"""The wire format's edges that the fake upstream does not exercise."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineRequestError
from engine.remote.wire import data_events, status_error


def events(*lines: str) -> list[str]:
    async def source() -> AsyncIterator[str]:
        for line in lines:
            yield line

    async def main() -> list[str]:
        return [payload async for payload in data_events(source())]

    return asyncio.run(main())


def test_keep_alive_comments_and_other_fields_are_skipped() -> None:
    assert events(": keep-alive", "", "event: x", "data: {}", "", "data: [DONE]", "") == ["{}"]


def test_an_event_may_span_several_data_lines() -> None:
    assert events("data: {", "data: }", "") == ["{\n}"]


def test_nothing_after_done_is_read() -> None:
    assert events("data: 1", "", "data: [DONE]", "", "data: 2", "") == ["1"]


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert events("data: 1") == ["1"]


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
