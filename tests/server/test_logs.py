"""Log lines in either format name their request: `[id]` in text, `request_id` in JSON.

text  <time> INFO <logger> [<request id>]: <message>
json  {"time", "level", "logger", "message", "request_id", <access fields>, "exception"?}
"""

import json
import logging
import sys
from datetime import datetime
from typing import Any

import pytest

from server.logs import JsonFormatter, RequestIdFilter
from server.request_context import request_scope

ACCESS = {
    "method": "POST",
    "path": "/client/v4/accounts/acct/ai/run/@cf/qwen/qwq-32b",
    "status": 200,
    "model": "@cf/qwen/qwq-32b",
    "error_code": None,
    "prompt_tokens": 12,
    "completion_tokens": 31,
    "latency_ms": 840.2,
}


def record(message: str, *, exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    """A record as a logger makes it, stamped by the filter as the handler stamps it."""
    made = logging.getLogger("tests.logs").makeRecord(
        "tests.logs", logging.INFO, __file__, 1, message, (), exc_info, extra=extra
    )
    RequestIdFilter().filter(made)
    return made


def as_json(made: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_json_line_is_one_object_with_the_request_id() -> None:
    with request_scope("req-1"):
        made = record("hello")

    line = as_json(made)

    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert {key: value for key, value in line.items() if key != "time"} == {
        "level": "INFO",
        "logger": "tests.logs",
        "message": "hello",
        "request_id": "req-1",
    }


def test_the_json_time_is_iso_8601_in_utc() -> None:
    made = record("hi")

    line = as_json(made)

    assert line["time"].endswith("+00:00")
    assert datetime.fromisoformat(line["time"]).timestamp() == pytest.approx(made.created, abs=1e-3)


def test_an_access_line_has_its_fields_at_the_top_level() -> None:
    with request_scope("req-2"):
        made = record("POST ... 200", access=ACCESS)

    line = as_json(made)

    assert {key: line[key] for key in ACCESS} == ACCESS
    assert line["request_id"] == "req-2"
    assert line["logger"] == "tests.logs"


def test_outside_a_request_the_id_is_a_dash() -> None:
    assert as_json(record("starting"))["request_id"] == "-"


def test_an_exception_stays_inside_its_json_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        made = record("failed", exc_info=sys.exc_info())

    line = as_json(made)

    assert "Traceback" in line["exception"]
    assert "ValueError: bad\nthing" in line["exception"]
