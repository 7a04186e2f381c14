"""JSON mode over the fake engine: which grammar reaches the engine, what the client gets."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.types import StructuredOutput
from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
MESSAGES = [{"role": "user", "content": "Give me a"}]


def post(client: TestClient, model: str, **body: Any) -> Any:
    return client.post(run_url(model), json={"messages": MESSAGES, **body}, headers=AUTH)


@pytest.mark.parametrize(
    ("model", "body", "expected"),
    [
        (QWQ, {"guided_json": SCHEMA}, StructuredOutput(json_schema=SCHEMA)),
        (R1, {"response_format": {"type": "json_object"}}, StructuredOutput(json_object=True)),
        (
            R1,
            {"response_format": {"type": "json_schema", "json_schema": SCHEMA}},
            StructuredOutput(json_schema=SCHEMA),
        ),
        (
            R1,
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True},
                }
            },
            StructuredOutput(json_schema=SCHEMA),
        ),
        (
            QWQ,
            {"guided_json": SCHEMA, "json_after_reasoning": True},
            StructuredOutput(json_schema=SCHEMA, after_reasoning=True),
        ),
    ],
    ids=[
        "qwq-guided-json",
        "r1-json-object",
        "r1-bare-schema",
        "r1-openai-wrapper",
        "reason-first",
    ],
)
def test_the_grammar_reaches_the_engine(
    client: TestClient,
    engines: dict[str, FakeEngine],
    model: str,
    body: dict[str, Any],
    expected: StructuredOutput,
) -> None:
    engines[model].script = ['{"a"', ": 1}"]

    post(client, model, **body)

    assert engines[model].calls[0].params.structured == expected


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_response_is_the_json_value(
    client: TestClient, engines: dict[str, FakeEngine], model: str
) -> None:
    engines[model].script = ['{"a"', ": 1, ", '"b": [true, null]}']
    body = {"guided_json": SCHEMA} if model == QWQ else {"response_format": {"type": "json_object"}}

    response = post(client, model, **body)

    assert response.status_code == 200
    assert response.json()["result"]["response"] == {"a": 1, "b": [True, None]}


@pytest.mark.parametrize(
    "text",
    [
        "[1e999, -1e999]",
        "[0.10000000000000000001, 12345678901234567890123456789]",
        '{"big": 1E+400, "tiny": 5e-400, "exact": 1.50}',
    ],
    ids=["beyond-float-range", "more-digits-than-a-float", "exponents"],
)
def test_json_numbers_are_sent_exactly_as_the_model_wrote_them(
    client: TestClient, engines: dict[str, FakeEngine], text: str
) -> None:
    engines[QWQ].script = [text]

    response = post(client, QWQ, guided_json={"type": ["array", "object"]})

    assert response.status_code == 200, response.text
    assert f'"response":{text},' in response.text


def test_no_json_mode_keeps_plain_text(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = ['{"a": 1}']

    assert post(client, QWQ).json()["result"]["response"] == '{"a": 1}'


def test_truncated_json_is_an_error(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = ['{"a"', ": 1", ', "b"', ": 2}"]

    response = post(client, QWQ, guided_json=SCHEMA, max_tokens=2)

    assert_error(response, 400, 5006, "JSON Mode couldn't be met", "max_tokens (2)")


def test_reasoning_first_returns_only_the_json(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ["Think", "ing.</th", "ink>\n\n", '{"a": 7}']

    response = post(client, QWQ, guided_json=SCHEMA, json_after_reasoning=True)

    assert response.json()["result"]["response"] == {"a": 7}
    assert "reasoning" not in response.json()["result"]


def test_reasoning_first_can_return_the_reasoning(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ["Think", "ing.</th", "ink>\n\n", '{"a": 7}']

    response = post(
        client, QWQ, guided_json=SCHEMA, json_after_reasoning=True, include_reasoning=True
    )

    assert response.json()["result"]["response"] == {"a": 7}
    assert response.json()["result"]["reasoning"] == "Thinking."


def test_reasoning_first_from_the_model_config(
    make_client: ClientFactory, engines: dict[str, FakeEngine]
) -> None:
    from engine.config import EngineConfig
    from server.settings import ModelSettings

    reasoning_first = ModelSettings(
        name=QWQ,
        engine=EngineConfig(builtin="tiny-qwq-32b", max_model_len=24000),
        json_after_reasoning=True,
    )
    client = make_client(models=[reasoning_first])
    engines[QWQ].script = ["Hmm.</think>", '{"a": 2}']

    response = post(client, QWQ, guided_json=SCHEMA)

    assert engines[QWQ].calls[0].params.structured == StructuredOutput(
        json_schema=SCHEMA, after_reasoning=True
    )
    assert response.json()["result"]["response"] == {"a": 2}


def test_stream_sends_the_json_text(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[QWQ].script = ['{"a"', ": 1}"]

    response = post(client, QWQ, guided_json=SCHEMA, stream=True)

    events, done = parse_events(response.text)
    assert done
    assert "".join(event["response"] for event in events) == '{"a": 1}'
    assert events[-1]["usage"]["completion_tokens"] == 2


def test_stream_of_truncated_json_ends_with_an_error(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].script = ['{"a"', ": 1", "}"]

    response = post(client, QWQ, guided_json=SCHEMA, stream=True, max_tokens=2)

    events, done = parse_events(response.text)
    assert done
    assert "JSON Mode couldn't be met" in events[-1]["errors"][0]["message"]
    assert "usage" not in events[-1]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"response_format": {"type": "xml"}}, "'/response_format/type'"),
        ({"response_format": {"type": "json_schema"}}, "must be a JSON Schema object"),
        ({"response_format": {"type": "json_schema", "json_schema": 3}}, "JSON Schema object"),
        ({"guided_json": "yes"}, "Type mismatch of '/guided_json'"),
    ],
    ids=["unknown-type", "schema-missing", "schema-not-object", "guided-json-string"],
)
def test_bad_json_mode_requests(client: TestClient, body: dict[str, Any], fragment: str) -> None:
    model = QWQ if "guided_json" in body else R1

    assert_error(post(client, model, **body), 400, 5006, fragment)
