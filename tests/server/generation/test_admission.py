"""Admission: a full engine answers 429/3040 with Retry-After on every route family, and
`options.rejectIfBusy` asks the engine to refuse rather than wait. Over the fake engine; the
real queue limits are proven in tests/integration/test_engine_limits.py."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineBusyError
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

CAPACITY = "Capacity temporarily exceeded, please try again."
MESSAGES = [{"role": "user", "content": "Hi"}]
GATEWAY = "/v1/acct/my-gateway/workers-ai"

ROUTES = [
    pytest.param(run_url(QWQ), {"messages": MESSAGES}, id="run"),
    pytest.param(
        "/accounts/acct/ai/run", {"model": QWQ, "input": {"prompt": "Hi"}}, id="universal"
    ),
    pytest.param(f"{GATEWAY}/run/{QWQ}", {"prompt": "Hi"}, id="gateway-run"),
    pytest.param(f"{GATEWAY}/{QWQ}", {"prompt": "Hi"}, id="gateway-bare"),
    pytest.param(
        "/client/v4/accounts/acct/ai/v1/chat/completions",
        {"model": QWQ, "messages": MESSAGES},
        id="openai-chat",
    ),
    pytest.param(
        f"{GATEWAY}/v1/chat/completions", {"model": QWQ, "messages": MESSAGES}, id="gateway-chat"
    ),
    pytest.param(
        "/client/v4/accounts/acct/ai/v1/completions",
        {"model": QWQ, "prompt": "Hi"},
        id="openai-completions",
    ),
]


@pytest.mark.parametrize(("url", "body"), ROUTES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_full_engine_answers_429_with_retry_after(
    client: TestClient,
    engines: dict[str, FakeEngine],
    url: str,
    body: dict[str, Any],
    stream: bool,
) -> None:
    engines[QWQ].failure = EngineBusyError("queue full: 6 of 6")
    if stream:
        body = (
            {**body, "input": {**body["input"], "stream": True}}
            if "input" in body
            else {**body, "stream": True}
        )

    response = client.post(url, json=body, headers=AUTH)

    # Refused before the first byte: a plain HTTP answer, never an in-band stream error.
    assert_error(response, 429, 3040, CAPACITY)
    assert response.headers["retry-after"] == "1"
    assert "queue full" not in response.text


@pytest.mark.parametrize(
    ("url", "body", "expected"),
    [
        pytest.param(run_url(QWQ), {"prompt": "Hi"}, False, id="native-default"),
        pytest.param(
            run_url(R1), {"prompt": "Hi", "options": {"rejectIfBusy": True}}, True, id="native"
        ),
        pytest.param(
            "/client/v4/accounts/acct/ai/run",
            {"model": R1, "input": {"prompt": "Hi", "options": {"rejectIfBusy": True}}},
            True,
            id="universal",
        ),
        pytest.param(
            "/client/v4/accounts/acct/ai/v1/chat/completions",
            {"model": R1, "messages": MESSAGES, "options": {"rejectIfBusy": True}},
            True,
            id="openai-chat",
        ),
        pytest.param(
            run_url(R1), {"prompt": "Hi", "options": {"rejectIfBusy": False}}, False, id="false"
        ),
    ],
)
def test_reject_if_busy_reaches_the_engine(
    client: TestClient,
    engines: dict[str, FakeEngine],
    url: str,
    body: dict[str, Any],
    expected: bool,
) -> None:
    response = client.post(url, json=body, headers=AUTH)

    assert response.status_code == 200, response.text
    model = body.get("model", QWQ if url == run_url(QWQ) else R1)
    assert engines[model].calls[0].params.reject_if_busy is expected


@pytest.mark.parametrize(
    "options",
    [{"rejectIfBusy": "yes"}, "busy", {"rejectIfBusy": 1}],
    ids=["string-flag", "not-an-object", "number-flag"],
)
def test_malformed_options_are_5006(client: TestClient, options: Any) -> None:
    response = client.post(run_url(QWQ), json={"prompt": "Hi", "options": options}, headers=AUTH)

    assert_error(response, 400, 5006, "'/options")


@pytest.mark.parametrize(
    ("running", "waiting", "capacity", "admitted"),
    [
        pytest.param(0, 0, None, True, id="no-limit"),
        pytest.param(3, 0, 4, True, id="room-for-one"),
        pytest.param(3, 1, 4, False, id="full-with-waiting"),
        pytest.param(4, 0, 4, False, id="full-running"),
    ],
)
def test_a_full_engine_is_refused_before_the_request_is_prepared(
    client: TestClient,
    engines: dict[str, FakeEngine],
    monkeypatch: pytest.MonkeyPatch,
    running: int,
    waiting: int,
    capacity: int | None,
    admitted: bool,
) -> None:
    engine = engines[QWQ]
    engine.running, engine.waiting, engine.capacity = running, waiting, capacity
    encoded: list[str] = []
    encode = engine.encode

    def recording_encode(text: str) -> list[int]:
        encoded.append(text)
        return encode(text)

    monkeypatch.setattr(engine, "encode", recording_encode)

    response = client.post(run_url(QWQ), json={"prompt": "Hi"}, headers=AUTH)

    if admitted:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 429, 3040, CAPACITY)
        assert response.headers["retry-after"] == "1"
        assert encoded == []  # refused before templating and tokenizing
        assert engine.calls == []


def test_a_request_reads_the_engines_load_and_never_its_status(
    client: TestClient, engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote engine's status may ask its upstream for its health (and wait for the answer
    when it is old): no request's admission waits for it or starts it."""
    engine = engines[QWQ]
    engine.capacity = 4

    async def status() -> None:
        raise AssertionError("a request asked for the engine's status")

    monkeypatch.setattr(engine, "status", status)

    for stream in (False, True):
        response = client.post(run_url(QWQ), json={"prompt": "Hi", "stream": stream}, headers=AUTH)
        assert response.status_code == 200, response.text
    assert len(engine.calls) == 2
