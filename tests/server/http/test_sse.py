"""`sse_body`: one SSE writer for both API families, driven here by a tiny `StreamFormat`.

data: <compact JSON>\\n\\n      per payload: the format's opening ones, then each event's
data: [DONE]\\n\\n              always last; an error after the start is one in-band event

Each chunk is one write to the client: one event's payloads, the last event's with `[DONE]`.
"""

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.errors import BadInput, InternalError, RequestTimeout, WorkersAIError
from server.generation.output import (
    Finished,
    ReasoningChunk,
    StreamEvent,
    TextChunk,
    ToolCallChunk,
)
from server.generation.schemas import ToolCall, Usage
from server.http.sse import DONE, encode, sse_body
from tests.support.sse import parse_events

USAGE = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
CALL = ToolCall(name="get_weather", arguments={"city": "Paris"})


class TinyFormat:
    """Text as `{"text"}`, calls as `{"call"}`, usage as `{"usage"}`; reasoning is not sent."""

    def __init__(self, opening: list[dict[str, Any]] | None = None) -> None:
        self._opening = opening or []

    def opening(self) -> list[dict[str, Any]]:
        return list(self._opening)

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk):
            return [{"text": event.text}]
        if isinstance(event, ToolCallChunk):
            return [{"call": event.call.name}, {"arguments": event.call.arguments}]
        if isinstance(event, Finished):
            return [{"usage": event.usage.total_tokens}]
        return []

    def error(self, error: WorkersAIError) -> dict[str, Any]:
        return {"error": {"code": error.code, "message": error.message}}


@dataclass
class Events:
    """A service event stream: `events`, then `failure` if any; records how it ended."""

    events: list[StreamEvent]
    failure: Exception | None = None
    sent: int = 0
    closed: bool = False
    exits: list[str] = field(default_factory=list)

    async def stream(self) -> AsyncGenerator[StreamEvent, None]:
        try:
            for event in self.events:
                yield event
                self.sent += 1
            if self.failure is not None:
                raise self.failure
        except GeneratorExit:
            self.exits.append("closed early")
            raise
        finally:
            self.closed = True


def chunks(events: Events, stream_format: TinyFormat | None = None) -> list[bytes]:
    """The SSE body's chunks, read to its end."""

    async def read() -> list[bytes]:
        body = sse_body(events.stream(), stream_format or TinyFormat())
        return [chunk async for chunk in body]

    return asyncio.run(read())


def body(events: Events, stream_format: TinyFormat | None = None) -> bytes:
    """The whole SSE body, read to its end."""
    return b"".join(chunks(events, stream_format))


def payloads(raw: bytes) -> list[dict[str, Any]]:
    events, done = parse_events(raw.decode())
    assert done
    return events


def test_each_payload_is_compact_json_after_data_and_before_a_blank_line() -> None:
    events = Events([TextChunk('é "quoted" 你好\n'), Finished(USAGE)])

    assert (
        body(events)
        == (
            'data: {"text":"é \\"quoted\\" 你好\\n"}\n\ndata: {"usage":5}\n\ndata: [DONE]\n\n'
        ).encode()
    )


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([TextChunk("Hi")], [{"text": "Hi"}], id="one-payload"),
        pytest.param(
            [ToolCallChunk(CALL)],
            [{"call": "get_weather"}, {"arguments": {"city": "Paris"}}],
            id="two-payloads-in-order",
        ),
        pytest.param(
            [ReasoningChunk("hidden"), TextChunk("shown")], [{"text": "shown"}], id="none"
        ),
        pytest.param([], [], id="no-events"),
    ],
)
def test_an_event_is_sent_as_the_payloads_the_format_gives(
    events: list[StreamEvent], expected: list[dict[str, Any]]
) -> None:
    assert payloads(body(Events(events))) == expected


@pytest.mark.parametrize(
    "events",
    [pytest.param([TextChunk("Hi")], id="with-events"), pytest.param([], id="without-events")],
)
def test_opening_payloads_come_first(events: list[StreamEvent]) -> None:
    opening = [{"role": "assistant"}, {"text": ""}]

    sent = payloads(body(Events(events), TinyFormat(opening)))

    assert sent[:2] == opening
    assert sent[2:] == [{"text": event.text} for event in events if isinstance(event, TextChunk)]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(InternalError(), id="internal"),
        pytest.param(RequestTimeout(), id="timeout"),
        pytest.param(BadInput("no"), id="bad-input"),
    ],
)
def test_an_error_after_the_first_event_is_one_in_band_event_then_done(
    error: WorkersAIError,
) -> None:
    events = Events([TextChunk("Hel"), TextChunk("lo")], failure=error)

    raw = body(events)

    assert payloads(raw) == [
        {"text": "Hel"},
        {"text": "lo"},
        {"error": {"code": error.code, "message": error.message}},
    ]


def test_an_unexpected_failure_is_an_internal_error_event_then_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events([TextChunk("Hel")], failure=RuntimeError("secret detail at 0xdeadbeef"))

    raw = body(events)

    error = InternalError()
    assert payloads(raw) == [
        {"text": "Hel"},
        {"error": {"code": error.code, "message": error.message}},
    ]
    assert raw.endswith(DONE)
    assert b"deadbeef" not in raw
    assert "a stream failed after its first event" in caplog.text


@pytest.mark.parametrize(
    ("events", "opening"),
    [
        pytest.param(Events([TextChunk("a"), Finished(USAGE)]), [], id="finished"),
        pytest.param(Events([]), [], id="empty"),
        pytest.param(Events([], failure=InternalError()), [], id="error-first"),
        pytest.param(Events([TextChunk("a")], failure=RequestTimeout()), [], id="error-later"),
        pytest.param(Events([]), [{"role": "assistant"}], id="opening-only"),
    ],
)
def test_done_is_sent_once_and_last(events: Events, opening: list[dict[str, Any]]) -> None:
    raw = body(events, TinyFormat(opening))

    assert raw.endswith(DONE)
    assert raw.count(DONE) == 1


def test_the_events_are_closed_when_the_consumer_stops() -> None:
    events = Events([TextChunk("a"), TextChunk("b"), TextChunk("c")])

    async def read_one_then_leave() -> tuple[bytes, bool]:
        chunks = sse_body(events.stream(), TinyFormat())
        first = await anext(chunks)
        await chunks.aclose()
        return first, events.closed  # before the event loop's own clean-up could close it

    first, closed_on_leaving = asyncio.run(read_one_then_leave())

    assert first == b'data: {"text":"a"}\n\n'
    assert closed_on_leaving
    assert events.sent == 0
    assert events.exits == ["closed early"]


@pytest.mark.parametrize(
    "failure",
    [pytest.param(None, id="finished"), pytest.param(InternalError(), id="failed")],
)
def test_the_events_are_closed_when_the_stream_ends(failure: WorkersAIError | None) -> None:
    events = Events([TextChunk("a")], failure=failure)

    body(events)

    assert events.closed
    assert events.exits == []


def test_each_event_is_one_chunk_and_the_last_comes_with_done() -> None:
    events = Events(
        [TextChunk("a"), ReasoningChunk("hidden"), ToolCallChunk(CALL), Finished(USAGE)]
    )

    sent = chunks(events, TinyFormat([{"role": "assistant"}]))

    assert sent == [
        b'data: {"role":"assistant"}\n\ndata: {"text":"a"}\n\n',
        b'data: {"call":"get_weather"}\n\ndata: {"arguments":{"city":"Paris"}}\n\n',
        b'data: {"usage":5}\n\n' + DONE,
    ]


def test_an_error_ends_the_stream_in_the_chunk_of_done() -> None:
    sent = chunks(Events([TextChunk("a")], failure=RequestTimeout()))

    assert sent[-1].endswith(DONE)
    assert payloads(sent[-1]) == [{"error": {"code": 3007, "message": RequestTimeout().message}}]


def test_after_the_last_event_the_events_run_to_their_end_unseen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last event goes out with `[DONE]` at once; what the events do after it (a remote
    engine reads the rest of its upstream's body) neither delays nor changes the stream."""
    events = Events([Finished(USAGE), TextChunk("late")], failure=InternalError())

    sent = chunks(events)

    assert sent == [b'data: {"usage":5}\n\n' + DONE]
    assert events.sent == 2  # read to the end, not closed early
    assert events.exits == []
    assert "after a stream's last event" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        {"response": 'h\u00e9llo \u2028\n"\\ \x01', "p": "abc"},
        {"response": "", "usage": {"prompt_tokens": 24, "completion_tokens": 17}},
        # An integer beyond 64 bits, which orjson refuses: the standard library writes it.
        {"response": "", "tool_calls": [{"name": "f", "arguments": {"n": 2**70, "x": [1, None]}}]},
    ],
    ids=["text", "usage", "big-integer"],
)
def test_an_event_is_compact_utf8_json(payload: dict[str, Any]) -> None:
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    assert encode(payload) == b"data: " + compact.encode() + b"\n\n"
