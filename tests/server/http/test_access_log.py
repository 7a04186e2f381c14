"""The access log: one line per request on `workers_ai_local.access`, once the response is sent.

    POST /client/v4/.../ai/run/@cf/qwen/qwq-32b 200 model=@cf/qwen/qwq-32b prompt_tokens=2
        completion_tokens=4 latency_ms=3.1                                        (one line)

Its fields, structured in the record's `access`: method, path, status, model (when the request
named one), error_code (an HTTP error, an in-band stream error, or 3008 for a client that left),
prompt_tokens and completion_tokens (when the generation finished), latency_ms.
"""

import logging
import re
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineError
from server.http.request_log import access_text
from tests.server.http.asgi import Exchange, exchange, post, serve
from tests.server.http.calls import CALLS, CHAT, RUN, Call
from tests.support.app import AUTH, QWQ
from tests.support.fake_engine import FakeEngine

ACCESS = "workers_ai_local.access"


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=ACCESS)
    return caplog


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == ACCESS]


def the_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The fields of the one access line logged."""
    lines = access_lines(caplog)
    assert len(lines) == 1, [line.getMessage() for line in lines]
    fields: dict[str, Any] = lines[0].access  # type: ignore[attr-defined]
    assert fields["latency_ms"] >= 0
    return {name: value for name, value in fields.items() if name != "latency_ms"}


@pytest.mark.parametrize(("call", "status", "code", "model"), CALLS)
def test_one_line_per_request(
    client: TestClient,
    engines: dict[str, FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    access_log: pytest.LogCaptureFixture,
    call: Call,
    status: int,
    code: int | None,
    model: str | None,
) -> None:
    call.send(client, engines, monkeypatch)

    finished = status == 200  # the fake engine: 2 prompt tokens ("Hi", raw), 4 pieces
    assert the_line(access_log) == {
        "method": call.method,
        "path": call.path,
        "status": status,
        "model": model,
        "error_code": code,
        "prompt_tokens": 2 if finished else None,
        "completion_tokens": 4 if finished else None,
    }


def test_the_line_reads_as_text(client: TestClient, access_log: pytest.LogCaptureFixture) -> None:
    client.post(RUN, json={"prompt": "Hi", "raw": True}, headers=AUTH)

    (line,) = access_lines(access_log)
    assert re.fullmatch(
        rf"POST {re.escape(RUN)} 200 model={re.escape(QWQ)} prompt_tokens=2 "
        r"completion_tokens=4 latency_ms=\d+\.\d",
        line.getMessage(),
    )


def test_openai_requests_name_their_model_in_the_body(
    client: TestClient, access_log: pytest.LogCaptureFixture
) -> None:
    body = {"model": QWQ, "messages": [{"role": "user", "content": "Hi"}], "stream": True}

    client.post(CHAT, json=body, headers=AUTH)

    line = the_line(access_log)
    assert (line["path"], line["status"], line["model"]) == (CHAT, 200, QWQ)
    assert line["completion_tokens"] == 4


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        pytest.param(EngineError("boom"), 3043, id="engine-failure"),
        pytest.param(None, 3007, id="timeout"),
    ],
)
def test_an_in_band_stream_error_is_the_lines_error_code(
    client: TestClient,
    engines: dict[str, FakeEngine],
    access_log: pytest.LogCaptureFixture,
    failure: EngineError | None,
    code: int,
) -> None:
    engines[QWQ].script = ["a"] + ["b"] * 50
    engines[QWQ].failure = failure
    engines[QWQ].fail_at = 2
    engines[QWQ].delay = 0.02
    headers = {**AUTH, "cf-aig-request-timeout": "300"}

    response = client.post(RUN, json={"prompt": "Hi", "stream": True}, headers=headers)

    assert response.status_code == 200
    assert '"errors"' in response.text
    assert the_line(access_log) == {
        "method": "POST",
        "path": RUN,
        "status": 200,
        "model": QWQ,
        "error_code": code,
        "prompt_tokens": None,
        "completion_tokens": None,
    }


def test_a_stream_is_logged_once_it_has_been_sent_in_full(
    engines: dict[str, FakeEngine], access_log: pytest.LogCaptureFixture
) -> None:
    app = serve(engines)
    sent = Exchange()
    seen_when_logged: list[bool] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_when_logged.append(sent.complete)

    watch = Watch()
    logging.getLogger(ACCESS).addHandler(watch)
    try:
        exchange(app, partial(post, app, RUN, {"prompt": "Hi", "stream": True}, exchange=sent))
    finally:
        logging.getLogger(ACCESS).removeHandler(watch)

    assert seen_when_logged == [True]
    assert the_line(access_log)["completion_tokens"] == 4


def test_a_client_leaving_a_stream_is_logged_at_its_end(
    engines: dict[str, FakeEngine], access_log: pytest.LogCaptureFixture
) -> None:
    engines[QWQ].script = ["a"] * 200
    engines[QWQ].delay = 0.01
    app = serve(engines)

    (answer,) = exchange(
        app, partial(post, app, RUN, {"prompt": "Hi", "stream": True}, leave_after_chunks=3)
    )

    assert answer.status == 200
    assert not answer.complete
    assert engines[QWQ].aborted == 1
    assert the_line(access_log) == {
        "method": "POST",
        "path": RUN,
        "status": 200,
        "model": QWQ,
        "error_code": 3008,
        "prompt_tokens": None,
        "completion_tokens": None,
    }


def test_requests_outside_the_api_get_their_line_too(
    client: TestClient, access_log: pytest.LogCaptureFixture
) -> None:
    client.get("/health")

    assert the_line(access_log) == {
        "method": "GET",
        "path": "/health",
        "status": 200,
        "model": None,
        "error_code": None,
        "prompt_tokens": None,
        "completion_tokens": None,
    }


def line_fields(**known: Any) -> dict[str, Any]:
    """An access line's fields in their order, unknown but for `known`."""
    line: dict[str, Any] = dict.fromkeys(
        ("model", "error_code", "prompt_tokens", "completion_tokens"), None
    )
    line = {"method": "POST", "path": "/p", "status": 200, **line, "latency_ms": 1.5}
    line.update(known)
    return line


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        pytest.param(line_fields(), "POST /p 200 latency_ms=1.5", id="unknowns-left-out"),
        pytest.param(
            line_fields(status=400, model="@cf/x", error_code=5006),
            "POST /p 400 model=@cf/x error_code=5006 latency_ms=1.5",
            id="error",
        ),
        pytest.param(
            line_fields(prompt_tokens=3, completion_tokens=0),
            "POST /p 200 prompt_tokens=3 completion_tokens=0 latency_ms=1.5",
            id="zero-is-known",
        ),
        pytest.param(
            line_fields(path="/a b\nPOST /forged 200"),
            'POST "/a b\\nPOST /forged 200" 200 latency_ms=1.5',
            id="path-quoted",
        ),
        pytest.param(
            line_fields(model='x" status=500'),
            'POST /p 200 model="x\\" status=500" latency_ms=1.5',
            id="model-quoted",
        ),
    ],
)
def test_access_text_keeps_one_request_on_one_line(fields: dict[str, Any], text: str) -> None:
    assert access_text(fields) == text
