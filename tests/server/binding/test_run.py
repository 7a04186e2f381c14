"""`env.AI.run` over the binding, on the fake engine: the bare result, SSE, the AiError shape."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.errors import EngineError
from tests.server.binding.calls import GATEWAY_URL, RUN_URL, TOKEN_PATH, run, run_headers
from tests.support.app import AUTH, QWQ, R1, run_url
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events

MESSAGES = [{"role": "user", "content": "Hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def assert_ai_error(response: Any, status: int, code: int, *fragments: str) -> None:
    """The error as the binding reads it: the Worker catches `AiError: <code>: <description>`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"internalCode", "name", "description"}
    assert body["internalCode"] == code
    assert body["name"] == "AiError"
    assert not body["description"].startswith("AiError:")  # the name is not said twice
    for fragment in fragments:
        assert fragment in body["description"]
    assert response.headers["cf-ai-req-id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
@pytest.mark.parametrize(
    "inputs", [{"prompt": "Hi"}, {"messages": MESSAGES}], ids=["prompt", "messages"]
)
def test_a_run_answers_the_bare_result_as_exactly_application_json(
    client: TestClient, model: str, inputs: dict[str, Any]
) -> None:
    response = run(client, inputs, model=model)

    assert response.status_code == 200, response.text
    # Any other content type (a charset, say) hands the Worker a stream instead of an object.
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "response": "Hello, world.",
        "tool_calls": [],
        "usage": response.json()["usage"],
    }
    assert response.json()["usage"]["completion_tokens"] == 4


def test_the_result_is_the_rest_envelopes_result(client: TestClient) -> None:
    inputs = {"prompt": "Hi", "raw": True, "seed": 3}

    binding = run(client, inputs)
    rest = client.post(run_url(QWQ), json=inputs, headers=AUTH)

    assert binding.json() == rest.json()["result"]


def test_the_request_id_becomes_last_request_id(client: TestClient) -> None:
    response = run(client, {"prompt": "Hi"}, headers={"X-Request-Id": "worker-call-1"})

    assert response.headers["cf-ai-req-id"] == "worker-call-1"


def test_the_inputs_reach_the_engine_through_the_service(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    run(client, {"prompt": "<raw>", "raw": True, "max_tokens": 3, "temperature": 0.5})

    (call,) = engines[QWQ].calls
    assert call.prompt_token_ids == engines[QWQ].encode("<raw>")
    assert call.params.max_tokens == 3
    assert call.params.temperature == 0.5


def test_a_stream_is_workers_ais_sse(client: TestClient) -> None:
    response = run(client, {"prompt": "Hi", "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cf-ai-req-id"] == response.headers["x-request-id"]
    events, done = parse_events(response.text)
    assert done
    assert "".join(event["response"] for event in events) == "Hello, world."
    assert events[-1]["usage"]["completion_tokens"] == 4


def test_an_error_after_the_first_event_is_in_band(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure, engines[QWQ].fail_at = EngineError("boom"), 2

    response = run(client, {"prompt": "Hi", "stream": True})

    events, done = parse_events(response.text)
    assert done
    assert events[-1]["errors"] == [{"code": 3043, "message": "Internal server error"}]


@pytest.mark.parametrize(
    ("model", "inputs"),
    [
        (QWQ, {"messages": MESSAGES, "guided_json": SCHEMA}),
        (R1, {"messages": MESSAGES, "response_format": {"type": "json_object"}}),
    ],
    ids=["qwq-guided-json", "r1-response-format"],
)
def test_json_mode_answers_the_json_value(
    client: TestClient, engines: dict[str, FakeEngine], model: str, inputs: dict[str, Any]
) -> None:
    engines[model].script = ['{"a"', ": 1e999}"]

    response = run(client, inputs, model=model)

    assert response.status_code == 200, response.text
    assert response.text.startswith('{"response":{"a": 1e999},')  # as the model wrote it


def test_the_gateway_form_runs_the_same(client: TestClient) -> None:
    response = run(client, {"prompt": "Hi"}, {"gateway": {"id": "my-gw"}}, url=GATEWAY_URL)

    assert response.status_code == 200
    assert response.json()["response"] == "Hello, world."


def test_the_gateway_timeout_bounds_the_run(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].delay = 1.0
    gateway = {"id": "my-gw", "requestTimeoutMs": 50}

    response = run(client, {"prompt": "Hi"}, {"gateway": gateway}, url=GATEWAY_URL)

    assert_ai_error(response, 408, 3007, "Request timeout")


def test_extra_headers_carry_session_affinity(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    headers = {"MF-Header-x-session-affinity": "ses-1"}

    run(client, {"prompt": "Hi"}, headers=headers)

    assert engines[QWQ].calls[0].params.session_id == "ses-1"


@pytest.mark.parametrize(
    ("inputs", "options", "status", "code", "fragment"),
    [
        ({"prompt": ""}, None, 400, 5006, "Bad input: Error:"),
        ({"prompt": "Hi", "temperature": 9}, None, 400, 5006, "temperature"),
        (
            {"messages": MESSAGES, "functions": [{"name": "f", "code": "x"}]},
            None,
            400,
            5006,
            "functi",
        ),
        ({"prompt": "Hi"}, {"gateway": {"id": "g", "requestTimeoutMs": -1}}, 400, 5006, "Timeout"),
        ({"prompt": "Hi"}, ["not", "an", "object"], 400, 5006, "'/options' must be an object"),
        ({"prompt": "Hi", "lora": "pirate"}, None, 405, 5005, "does not support LoRa"),
    ],
    ids=["empty-prompt", "out-of-range", "not-yet-served", "bad-timeout", "bad-options", "lora"],
)
def test_bad_input_is_an_ai_error(
    client: TestClient,
    inputs: dict[str, Any],
    options: Any,
    status: int,
    code: int,
    fragment: str,
) -> None:
    response = run(client, inputs, options)

    assert_ai_error(response, status, code, fragment)


def test_an_unknown_model_is_5007(client: TestClient) -> None:
    assert_ai_error(run(client, {"prompt": "Hi"}, model="@cf/meta/llama"), 400, 5007, "llama")


def test_a_missing_model_is_5006(client: TestClient) -> None:
    assert_ai_error(run(client, {"prompt": "Hi"}, model=""), 400, 5006, "no model")


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        (b"", 3003, "body"),
        (b"{not json", 5006, "not valid JSON"),
        (b'{"options": {}}', 5006, "'inputs'"),
    ],
    ids=["empty", "not-json", "no-inputs"],
)
def test_a_malformed_body_is_an_ai_error(
    client: TestClient, content: bytes, code: int, fragment: str
) -> None:
    response = client.post(TOKEN_PATH, content=content, headers=run_headers())

    assert_ai_error(response, 400, code, fragment)


def test_a_readable_stream_input_is_refused(client: TestClient) -> None:
    url = RUN_URL + '&userInputs={"x":1}'

    response = run(client, {}, url=url)

    assert_ai_error(response, 400, 5006, "ReadableStream")


def test_a_full_engine_answers_429_with_retry_after(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].capacity, engines[QWQ].running = 1, 1

    response = run(client, {"prompt": "Hi"})

    assert_ai_error(response, 429, 3040, "Capacity")
    assert response.headers["retry-after"] == "1"


def test_an_engine_failure_never_shows_its_text(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure = EngineError("secret detail")

    response = run(client, {"prompt": "Hi"})

    assert_ai_error(response, 500, 3043, "Internal server error")
    assert "secret detail" not in response.text


def test_an_unexpected_error_is_an_ai_error_too(
    client: TestClient, engines: dict[str, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(text: str) -> list[int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(engines[QWQ], "encode", crash)

    response = run(client, {"prompt": "Hi"})

    assert_ai_error(response, 500, 3043, "Internal server error")
    assert "a bug" not in response.text
