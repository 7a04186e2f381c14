"""JSON mode on the real engines: output always validates against the schema."""

from typing import Any

import httpx
import jsonschema
import pytest

from tests.support.envelopes import assert_error
from tests.support.live import QWQ, R1, result, run
from tests.support.sse import parse_events

SCHEMAS = {
    "nested": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                },
                "required": ["name", "age"],
                "additionalProperties": False,
            }
        },
        "required": ["user"],
        "additionalProperties": False,
    },
    "array": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 8},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    "enum": {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}, "ok": {"type": "boolean"}},
        "required": ["color", "ok"],
        "additionalProperties": False,
    },
    "bounded-numbers": {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "count": {"type": "integer", "minimum": -5, "maximum": 5},
        },
        "required": ["score", "count"],
        "additionalProperties": False,
    },
}


def json_mode(model: str, schema: dict[str, Any]) -> dict[str, Any]:
    if model == QWQ:
        return {"guided_json": schema}
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("schema_name", list(SCHEMAS))
@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_output_validates(api: httpx.Client, model: str, schema_name: str, seed: int) -> None:
    schema = SCHEMAS[schema_name]
    body = {"prompt": "Give me JSON", "max_tokens": 256, "temperature": 1.0, "seed": seed}

    answer = result(api, model, **body, **json_mode(model, schema))

    jsonschema.validate(answer["response"], schema)


def test_openai_wrapped_schema_is_unwrapped(api: httpx.Client) -> None:
    schema = SCHEMAS["enum"]
    wrapped = {
        "type": "json_schema",
        "json_schema": {"name": "c", "schema": schema, "strict": True},
    }

    answer = result(api, R1, prompt="Pick", max_tokens=64, response_format=wrapped)

    jsonschema.validate(answer["response"], schema)


def test_streamed_json_text_validates(api: httpx.Client) -> None:
    schema = SCHEMAS["nested"]
    body = {"prompt": "JSON please", "max_tokens": 256, "stream": True, "seed": 4}

    response = run(api, QWQ, **body, **json_mode(QWQ, schema))

    events, done = parse_events(response.text)
    assert done
    import json

    jsonschema.validate(json.loads("".join(event["response"] for event in events)), schema)
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_budget_too_small_is_an_error_not_a_truncated_string(api: httpx.Client) -> None:
    response = run(api, QWQ, prompt="JSON", max_tokens=3, guided_json=SCHEMAS["nested"])

    assert_error(response, 400, 5006, "JSON Mode couldn't be met")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "["}}},
        {"type": "nonsense"},
    ],
    ids=["bad-pattern", "bad-type"],
)
def test_uncompilable_schema_is_a_400_and_the_engine_lives(
    api: httpx.Client, schema: dict[str, Any]
) -> None:
    response = run(api, QWQ, prompt="x", max_tokens=8, guided_json=schema)

    assert_error(response, 400, 5006, "Grammar error")
    assert api.get("/health").status_code == 200
    assert result(api, QWQ, prompt="still fine?", max_tokens=2)["usage"]["completion_tokens"] == 2


def test_reasoning_first_leaves_the_start_unconstrained(api: httpx.Client) -> None:
    # The random model never closes its reasoning, so with the grammar deferred to after
    # </think> no JSON ever comes: proof that the engine did not constrain the first tokens.
    body = {"prompt": "JSON", "max_tokens": 24, "temperature": 0, **json_mode(QWQ, SCHEMAS["enum"])}

    assert run(api, QWQ, **body).status_code == 200
    deferred = run(api, QWQ, **body, json_after_reasoning=True)

    assert_error(deferred, 400, 5006, "JSON Mode couldn't be met")


def test_reasoning_already_closed_in_a_raw_prompt(api: httpx.Client) -> None:
    prompt = (
        "<|im_start|>user\nPick a colour<|im_end|>\n<|im_start|>assistant\n<think>\n"
        "Blue is calm.\n</think>\n\n"
    )

    answer = result(
        api, QWQ, prompt=prompt, raw=True, max_tokens=64, json_after_reasoning=True,
        **json_mode(QWQ, SCHEMAS["enum"]),
    )  # fmt: skip

    jsonschema.validate(answer["response"], SCHEMAS["enum"])
