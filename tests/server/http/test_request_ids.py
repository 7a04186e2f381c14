"""Request ids: on every response, echoed when the client chose a sane one, in every log line.

X-Request-Id    the client's X-Request-Id, else its cf-ray, when 1-128 chars of
                [A-Za-z0-9._:-]; else a new uuid4 hex. On every response, errors included.
engine id       <request id>-<response id>: unique even when clients send the same id
log lines       stamped with the current request's id by RequestIdFilter; `-` elsewhere
"""

import logging
import re
from collections.abc import AsyncGenerator
from functools import partial

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from engine.types import Delta, GenerationParams
from server.http.request_log import request_id_of
from server.logs import RequestIdFilter
from tests.server.http.asgi import exchange, post, serve
from tests.server.http.calls import CALLS, CHAT, RUN, Call
from tests.support.app import AUTH, QWQ
from tests.support.fake_engine import FakeEngine

NEW_ID = re.compile(r"[0-9a-f]{32}")  # uuid4 hex


@pytest.mark.parametrize(("call", "status", "code", "model"), CALLS)
def test_every_response_carries_a_new_request_id(
    client: TestClient,
    engines: dict[str, FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    call: Call,
    status: int,
    code: int | None,
    model: str | None,
) -> None:
    response = call.send(client, engines, monkeypatch)

    assert response.status_code == status
    assert NEW_ID.fullmatch(response.headers["X-Request-Id"])
    assert response.headers.get_list("X-Request-Id") == [response.headers["X-Request-Id"]]


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.post(RUN, json={"prompt": "Hi"}, headers=AUTH).headers["X-Request-Id"]}
    ids.add(client.post(RUN, json={"prompt": "Hi"}, headers=AUTH).headers["X-Request-Id"])

    assert len(ids) == 2


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        pytest.param({"X-Request-Id": "req-42"}, "req-42", id="x-request-id"),
        pytest.param({"cf-ray": "8c1d3e4f5a6b7c8d-SJC"}, "8c1d3e4f5a6b7c8d-SJC", id="cf-ray"),
        pytest.param(
            {"X-Request-Id": "mine", "cf-ray": "8c1d3e4f5a6b7c8d-SJC"}, "mine", id="x-first"
        ),
        pytest.param(
            {"X-Request-Id": "not mine", "cf-ray": "8c1d-SJC"}, "8c1d-SJC", id="ray-if-x-unsafe"
        ),
        pytest.param({"X-Request-Id": "a.b_c:d-E9"}, "a.b_c:d-E9", id="every-allowed-kind"),
        pytest.param({"X-Request-Id": "x" * 128}, "x" * 128, id="128-chars"),
        pytest.param({"X-Request-Id": "x" * 129}, None, id="too-long"),
        pytest.param({"X-Request-Id": ""}, None, id="empty"),
        pytest.param({"X-Request-Id": "two words"}, None, id="space"),
        pytest.param({"X-Request-Id": 'say "hi"'}, None, id="quotes"),
        pytest.param({"X-Request-Id": "a;b=c"}, None, id="separators"),
        pytest.param({"X-Request-Id": "../etc"}, None, id="slash"),
        pytest.param({"X-Request-Id": "caf\xe9"}, None, id="not-ascii"),
    ],
)
def test_a_sane_client_id_is_echoed_else_a_new_one_is_made(
    client: TestClient, sent: dict[str, str], echoed: str | None
) -> None:
    # As bytes: a header value that is not ASCII must reach the server as sent.
    headers = {name.encode(): value.encode("latin-1") for name, value in {**AUTH, **sent}.items()}

    response = client.post(RUN, json={"prompt": "Hi"}, headers=headers)

    assert response.status_code == 200
    if echoed is None:
        assert NEW_ID.fullmatch(response.headers["X-Request-Id"])
    else:
        assert response.headers["X-Request-Id"] == echoed


def test_a_client_id_is_echoed_on_errors_too(client: TestClient) -> None:
    response = client.post("/nowhere", headers={"X-Request-Id": "lost-1"})

    assert response.status_code == 404
    assert response.headers["X-Request-Id"] == "lost-1"


def test_request_id_of_reads_raw_headers() -> None:
    headers = Headers(raw=[(b"cf-ray", b"ray-1"), (b"x-request-id", b"bad id")])

    assert request_id_of(headers) == "ray-1"


def test_concurrent_requests_with_one_client_id_get_distinct_engine_ids(
    engines: dict[str, FakeEngine],
) -> None:
    engines[QWQ].delay = 0.01
    app = serve(engines)
    same = {"X-Request-Id": "same-id"}

    answers = exchange(
        app,
        partial(post, app, RUN, {"prompt": "Hi"}, same),
        partial(post, app, RUN, {"prompt": "Hi", "stream": True}, same),
    )

    assert [answer.headers["x-request-id"] for answer in answers] == ["same-id", "same-id"]
    engine_ids = [call.request_id for call in engines[QWQ].calls]
    assert len(set(engine_ids)) == 2
    assert all(engine_id.startswith("same-id-") for engine_id in engine_ids)


def test_the_engine_id_is_the_request_id_then_the_response_id(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    headers = {**AUTH, "X-Request-Id": "req-7"}

    response = client.post(
        CHAT, json={"model": QWQ, "messages": [{"role": "user", "content": "Hi"}]}, headers=headers
    )

    assert response.status_code == 200
    assert response.json()["id"].startswith("chatcmpl-")
    assert engines[QWQ].calls[-1].request_id == f"req-7-{response.json()['id']}"


@pytest.fixture
def stamped(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, its records stamped as the server's log handler stamps them."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_lines_logged_while_serving_carry_the_request_id(
    client: TestClient,
    engines: dict[str, FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    stamped: pytest.LogCaptureFixture,
    stream: bool,
) -> None:
    # Logged from the engine, for every token: inside the stream's own tasks too.
    probe = logging.getLogger("tests.probe")
    generate = engines[QWQ].generate

    async def logging_generate(
        prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        async for delta in generate(prompt_token_ids, params, request_id):
            probe.info("token")
            yield delta

    monkeypatch.setattr(engines[QWQ], "generate", logging_generate)
    headers = {**AUTH, "X-Request-Id": "traced"}

    client.post(RUN, json={"prompt": "Hi", "stream": stream}, headers=headers)
    probe.info("between requests")

    stamps = [
        (record.name, getattr(record, "request_id", None))
        for record in stamped.records
        if record.name in ("tests.probe", "workers_ai_local.access")  # not httpx's own lines
    ]
    assert stamps == [
        *[("tests.probe", "traced")] * 4,
        ("workers_ai_local.access", "traced"),
        ("tests.probe", "-"),
    ]
