"""The request being served, as logs see it: its id, and what its access-log line reports.

No HTTP here, so that the generation core may fill it in too. The HTTP layer opens one
`RequestRecord` per request (`server.http.request_log`); the service notes the model, the run flow
the usage and any in-band error, the error handlers the error answered; every log line reads the
id (`server.logs`). Outside a request there is no record: noting is a no-op and the id is `-`.

The context variable holds one mutable record, shared by reference: tasks started during the
request (the SSE writer, the disconnect watcher) run in copies of the context, and what they note
must still reach the access line written by the middleware.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

NO_REQUEST = "-"


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    model: str | None = None
    error_code: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Seconds on `time.perf_counter`: when the request arrived, and (for a generation) when its
    # first event came and how long the engine took to give it.
    arrived: float = field(default_factory=time.perf_counter)
    first_event_after_s: float | None = None
    queue_wait_s: float | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("workers_ai_local_request", default=None)


@contextmanager
def request_scope(request_id: str) -> Iterator[RequestRecord]:
    """Serve one request under `request_id`: it is the current request until the block ends."""
    record = RequestRecord(request_id)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def current_request() -> RequestRecord | None:
    return _current.get()


def current_request_id() -> str:
    record = _current.get()
    return NO_REQUEST if record is None else record.request_id


def note_model(name: str) -> None:
    """The model the request named (served or not)."""
    if (record := _current.get()) is not None:
        record.model = name


def note_usage(prompt_tokens: int, completion_tokens: int) -> None:
    if (record := _current.get()) is not None:
        record.prompt_tokens = prompt_tokens
        record.completion_tokens = completion_tokens


def note_error(code: int) -> None:
    """The Cloudflare error code the request ended with; the last one noted wins."""
    if (record := _current.get()) is not None:
        record.error_code = code


def note_first_event(handed_to_engine: float) -> None:
    """The generation's first event is here; it was handed to the engine at `handed_to_engine`
    (`time.perf_counter`)."""
    if (record := _current.get()) is not None:
        now = time.perf_counter()
        record.first_event_after_s = now - record.arrived
        record.queue_wait_s = now - handed_to_engine
