"""`GET .../ai/models/schema?model=`: JSON Schemas generated from the wire models, which accept
exactly the bodies the server accepts."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from server.errors import BadInput
from server.generation.specs import MODELS
from server.generation.validation import parse_input
from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url, served
from tests.support.envelopes import assert_error


def schema_url(model: str | None = None, account: str = "acct", prefix: str = "/client/v4") -> str:
    query = "" if model is None else f"?model={model}"
    return f"{prefix}/accounts/{account}/ai/models/schema{query}"


def fetch_schema(client: TestClient, model: str) -> dict[str, Any]:
    response = client.get(schema_url(model), headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def server_accepts(model: str, body: Any) -> bool:
    try:
        parse_input(MODELS[model], body)
    except BadInput:
        return False
    return True


TEXT_PARTS = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
USER = {"role": "user", "content": "Hi"}

# (model, body, valid): each model's own forms, ranges and message shapes.
BODIES = [
    pytest.param(QWQ, {"prompt": "Hi"}, True, id="qwq-prompt"),
    pytest.param(QWQ, {"messages": [USER]}, True, id="qwq-messages"),
    pytest.param(
        QWQ, {"messages": [{"role": "user", "content": TEXT_PARTS}]}, True, id="qwq-parts"
    ),
    pytest.param(
        QWQ, {"messages": [{"role": "user", "content": TEXT_PARTS[0]}]}, True, id="qwq-one-part"
    ),
    pytest.param(
        QWQ,
        {
            "prompt": "Hi",
            "temperature": 5,
            "top_p": 2,
            "top_k": 50,
            "seed": 9999999999,
            "repetition_penalty": 2,
            "frequency_penalty": 2,
            "presence_penalty": 2,
            "max_tokens": 1,
        },
        True,
        id="qwq-maxima",
    ),
    pytest.param(QWQ, {"prompt": "Hi", "top_p": 2.5}, False, id="qwq-top-p-over-2"),
    pytest.param(QWQ, {"prompt": "Hi", "frequency_penalty": -1}, False, id="qwq-negative-penalty"),
    pytest.param(QWQ, {"prompt": "Hi", "guided_json": {"type": "object"}}, True, id="qwq-guided"),
    pytest.param(
        QWQ,
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "abc"}]},
        False,
        id="qwq-short-tool-call-id",
    ),
    pytest.param(QWQ, {"prompt": "Hi", "unknown": 1}, True, id="qwq-unknown-field"),
    pytest.param(QWQ, {}, False, id="qwq-neither-form"),
    pytest.param(QWQ, {"prompt": "Hi", "messages": [USER]}, False, id="qwq-both-forms"),
    pytest.param(QWQ, {"prompt": ""}, False, id="qwq-empty-prompt"),
    pytest.param(QWQ, {"prompt": 5}, False, id="qwq-prompt-number"),
    pytest.param(QWQ, {"messages": [{"role": "robot", "content": "x"}]}, False, id="qwq-role"),
    pytest.param(QWQ, {"messages": [{"role": "user"}]}, False, id="qwq-no-content"),
    pytest.param(QWQ, {"prompt": "Hi", "temperature": 5.1}, False, id="qwq-temperature"),
    pytest.param(QWQ, {"prompt": "Hi", "top_k": 0}, False, id="qwq-top-k"),
    pytest.param(QWQ, {"prompt": "Hi", "seed": 0}, False, id="qwq-seed"),
    pytest.param(QWQ, {"prompt": "Hi", "max_tokens": 0}, False, id="qwq-max-tokens"),
    pytest.param(QWQ, {"prompt": "Hi", "max_tokens": "9"}, False, id="qwq-max-tokens-text"),
    pytest.param(QWQ, {"prompt": "Hi", "stream": "yes"}, False, id="qwq-stream-text"),
    pytest.param(
        QWQ, {"messages": [USER], "functions": [{"name": "f"}]}, False, id="qwq-function-no-code"
    ),
    pytest.param(QWQ, ["Hi"], False, id="qwq-not-an-object"),
    pytest.param(R1, {"prompt": "Hi"}, True, id="r1-prompt"),
    pytest.param(R1, {"messages": [USER]}, True, id="r1-messages"),
    pytest.param(
        R1,
        {"prompt": "Hi", "top_p": 1, "frequency_penalty": -2, "presence_penalty": -2},
        True,
        id="r1-ranges",
    ),
    pytest.param(R1, {"prompt": "Hi", "top_p": 1.5}, False, id="r1-top-p-over-1"),
    pytest.param(R1, {"prompt": "Hi", "top_p": 0}, False, id="r1-top-p-zero"),
    pytest.param(R1, {"prompt": "Hi", "presence_penalty": -2.5}, False, id="r1-penalty"),
    pytest.param(R1, {"prompt": "Hi", "lora": "my-adapter"}, True, id="r1-lora"),
    pytest.param(
        R1, {"prompt": "Hi", "response_format": {"type": "json_object"}}, True, id="r1-json"
    ),
    pytest.param(
        R1, {"prompt": "Hi", "response_format": {"type": "xml"}}, False, id="r1-format-type"
    ),
    pytest.param(R1, {"messages": [{"role": "user", "content": TEXT_PARTS}]}, False, id="r1-parts"),
    pytest.param(R1, {"prompt": "Hi", "messages": [USER]}, False, id="r1-both-forms"),
]


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_schema_envelope(client: TestClient, model: str) -> None:
    response = client.get(schema_url(model), headers=AUTH)

    assert response.status_code == 200
    payload = response.json()
    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["messages"] == []
    assert set(payload["result"]) == {"input", "output"}


@pytest.mark.parametrize("part", ["input", "output"])
@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_schemas_are_valid_json_schema(client: TestClient, model: str, part: str) -> None:
    Draft202012Validator.check_schema(fetch_schema(client, model)[part])


@pytest.mark.parametrize("part", ["input", "output"])
@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_every_reference_resolves(client: TestClient, model: str, part: str) -> None:
    schema = fetch_schema(client, model)[part]

    for reference in references(schema):
        assert reference.startswith("#/$defs/")
        assert reference.removeprefix("#/$defs/") in schema["$defs"]


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_input_is_one_of_prompt_and_messages(client: TestClient, model: str) -> None:
    branches = fetch_schema(client, model)["input"]["oneOf"]

    assert [branch["required"] for branch in branches] == [["prompt"], ["messages"]]


@pytest.mark.parametrize(("model", "body", "valid"), BODIES)
def test_input_schema_validates_bodies(
    client: TestClient, model: str, body: Any, valid: bool
) -> None:
    validator = Draft202012Validator(fetch_schema(client, model)["input"])

    assert validator.is_valid(body) is valid


@pytest.mark.parametrize(("model", "body", "valid"), BODIES)
def test_server_agrees_with_the_schema(model: str, body: Any, valid: bool) -> None:
    assert server_accepts(model, body) is valid


@pytest.mark.parametrize(
    "body",
    [{"prompt": "Hi"}, {"prompt": "Hi", "include_reasoning": True}],
    ids=["plain", "with-reasoning"],
)
@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_output_schema_validates_a_real_result(
    client: TestClient, model: str, body: dict[str, Any]
) -> None:
    validator = Draft202012Validator(fetch_schema(client, model)["output"])

    result = client.post(run_url(model), json=body, headers=AUTH).json()["result"]

    assert validator.is_valid(result)


def test_output_schema_rejects_a_result_without_response(client: TestClient) -> None:
    validator = Draft202012Validator(fetch_schema(client, QWQ)["output"])

    assert not validator.is_valid({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})


def test_route_without_client_v4_prefix(client: TestClient) -> None:
    response = client.get(schema_url(R1, prefix=""), headers=AUTH)

    assert response.status_code == 200


@pytest.mark.parametrize("query", [None, ""], ids=["absent", "empty"])
def test_missing_model_is_5006(client: TestClient, query: str | None) -> None:
    response = client.get(schema_url(query), headers=AUTH)

    assert_error(response, 400, 5006, "AiError: Bad input: Error:", "'model'")


def test_unknown_model_is_5007(client: TestClient) -> None:
    response = client.get(schema_url("@cf/meta/llama-3.1-8b-instruct"), headers=AUTH)

    assert_error(response, 400, 5007, "No such model @cf/meta/llama-3.1-8b-instruct or task")


def test_model_not_served_here_is_5007(make_client: ClientFactory) -> None:
    client = make_client(models=[served(QWQ)])

    response = client.get(schema_url(R1), headers=AUTH)

    assert_error(response, 400, 5007, f"No such model {R1} or task")


def test_schema_requires_a_token(client: TestClient) -> None:
    response = client.get(schema_url(QWQ))

    assert_error(response, 401, 10000, "Authentication error")


def test_unserved_account_is_7003(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["abc123"])

    response = client.get(schema_url(QWQ, account="other"), headers=AUTH)

    assert_error(response, 404, 7003, "Could not route to /client/v4/accounts/other/ai/models")
