"""`stream: true`: Workers AI's SSE framing, usage, padding, errors after the first byte."""

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineDeadError, EngineError
from server.http.sse import encode
from server.workers_ai.events import MAX_PADDING, PADDING, padding
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events


def stream(client: TestClient, model: str, **body: object) -> tuple[int, str, str]:
    response = client.post(run_url(model), json={"stream": True, **body}, headers=AUTH)
    return response.status_code, response.headers["content-type"], response.text


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_stream_framing(client: TestClient, model: str) -> None:
    status, content_type, body = stream(client, model, prompt="Hi", raw=True)

    assert status == 200
    assert content_type.startswith("text/event-stream")
    events, done = parse_events(body)
    assert done
    assert [event["response"] for event in events] == ["Hello", ",", " world", ".", ""]
    for event in events[:-1]:
        assert set(event) == {"response", "p"}
        assert PADDING.startswith(event["p"])
    assert events[-1] == {
        "response": "",
        "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6},
    }


def test_a_stream_is_neither_cached_nor_buffered_by_proxies(client: TestClient) -> None:
    response = client.post(run_url(QWQ), json={"stream": True, "prompt": "Hi"}, headers=AUTH)

    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"


def test_stream_messages_form(client: TestClient) -> None:
    _, _, body = stream(client, QWQ, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)

    events, done = parse_events(body)
    assert done
    assert [event["response"] for event in events] == ["Hello", ""]
    assert events[-1]["usage"]["completion_tokens"] == 1


def test_error_after_first_byte_is_in_band(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure = EngineError("boom at 0x1234")
    engines[QWQ].fail_at = 2

    status, _, body = stream(client, QWQ, prompt="Hi")

    assert status == 200
    events, done = parse_events(body)
    assert done
    assert [event["response"] for event in events] == ["Hello", ",", ""]
    assert events[-1]["errors"] == [{"code": 3043, "message": "Internal server error"}]
    assert "0x1234" not in body


def test_error_before_first_byte_is_a_plain_error(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure = EngineDeadError("gone")

    response = client.post(run_url(QWQ), json={"prompt": "Hi", "stream": True}, headers=AUTH)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["code"] == 3040


def test_an_engine_that_dies_mid_stream_ends_it_in_band(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure = EngineDeadError("gone")
    engines[QWQ].fail_at = 2

    response = client.post(run_url(QWQ), json={"prompt": "Hi", "stream": True}, headers=AUTH)

    events, done = parse_events(response.text)
    assert response.status_code == 200
    assert events[-1] == {
        "response": "",
        "errors": [
            {"code": 3040, "message": "The model is not available right now, please try again."}
        ],
    }
    assert done


def test_stream_timeout_after_first_byte_is_in_band(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ["a"] + ["b"] * 50
    engines[QWQ].delay = 0.02
    headers = {**AUTH, "cf-aig-request-timeout": "300"}

    response = client.post(run_url(QWQ), json={"prompt": "Hi", "stream": True}, headers=headers)

    events, done = parse_events(response.text)
    assert done
    assert events[-1]["errors"][0]["code"] == 3007
    assert engines[QWQ].running == 0
    assert engines[QWQ].aborted == 1


def test_padding_is_a_random_length_prefix() -> None:
    lengths = {len(padding()) for _ in range(20000)}

    assert min(lengths) >= 0
    assert max(lengths) <= MAX_PADDING
    assert len(lengths) == MAX_PADDING + 1  # every length comes up


def test_encode_is_compact_and_keeps_unicode() -> None:
    assert encode({"response": "é 你好 \n"}) == 'data: {"response":"é 你好 \\n"}\n\n'.encode()
