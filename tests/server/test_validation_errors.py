"""`bad_input`: pydantic's validation errors as Workers AI's 5006 messages, the one place.

    body:     "Type mismatch of '/temperature', 'string' not in 'number'"
    query:    "query parameter 'page' must be >= 1"
    FastAPI:  the first location part says where (`query`, `path`, `header`, `body`)

One phrase per distinct field, at most five, joined by ", ".
"""

from typing import Annotated, Any, Literal

import pytest
from fastapi import Header, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.app import create_app
from server.errors import BadInput
from server.generation.schemas import QwqMessages, QwqPrompt, R1Prompt
from server.validation_errors import MAX_PHRASES, bad_input
from tests.support.app import make_settings

PREFIX = "AiError: Bad input: Error: "


class Limits(BaseModel):
    """Constraints the native schemas do not use: exclusive bounds, a maximum length."""

    model_config = ConfigDict(strict=True)

    ratio: float = Field(default=0.5, gt=0, lt=1)
    label: str = Field(default="ab", max_length=3)


class Page(BaseModel):
    """Query parameters, validated from strings (lax), as the catalog and finetunes read them."""

    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=20, ge=1, le=50)
    order: Literal["asc", "desc"] = "asc"


def message(schema: type[BaseModel], value: Any) -> str:
    """The detail of the BadInput a body refused by `schema` becomes."""
    with pytest.raises(ValidationError) as refused:
        schema.model_validate(value)
    error = bad_input(refused.value.errors(include_url=False))
    assert isinstance(error, BadInput)
    assert (error.status, error.code) == (400, 5006)
    assert error.message.startswith(PREFIX)
    return error.message.removeprefix(PREFIX)


def query_message(query: dict[str, str]) -> str:
    with pytest.raises(ValidationError) as refused:
        Page.model_validate(query)
    error = bad_input(refused.value.errors(include_url=False), source="query")
    return error.message.removeprefix(PREFIX)


BODY_ERRORS = [
    # missing
    pytest.param(QwqPrompt, {}, "required properties at '/' are 'prompt'", id="missing"),
    pytest.param(
        QwqMessages,
        {"messages": [{"content": "Hi"}]},
        "required properties at '/messages/0' are 'role'",
        id="missing-nested",
    ),
    # type mismatch, naming the JSON type that was sent
    pytest.param(
        QwqPrompt,
        {"prompt": "Hi", "temperature": "hot"},
        "Type mismatch of '/temperature', 'string' not in 'number'",
        id="string-for-number",
    ),
    pytest.param(
        QwqPrompt,
        {"prompt": "Hi", "stream": 1},
        "Type mismatch of '/stream', 'integer' not in 'boolean'",
        id="integer-for-boolean",
    ),
    pytest.param(
        QwqPrompt,
        {"prompt": True},
        "Type mismatch of '/prompt', 'boolean' not in 'string'",
        id="boolean-for-string",
    ),
    pytest.param(
        QwqPrompt,
        {"prompt": None},
        "Type mismatch of '/prompt', 'null' not in 'string'",
        id="null-for-string",
    ),
    pytest.param(
        QwqPrompt,
        {"prompt": "Hi", "top_k": 1.5},
        "Type mismatch of '/top_k', 'number' not in 'integer'",
        id="number-for-integer",
    ),
    pytest.param(
        QwqPrompt,
        {"prompt": "Hi", "guided_json": [1]},
        "Type mismatch of '/guided_json', 'array' not in 'object'",
        id="array-for-object",
    ),
    pytest.param(
        QwqMessages,
        {"messages": "Hi"},
        "Type mismatch of '/messages', 'string' not in 'array'",
        id="string-for-array",
    ),
    pytest.param(
        QwqMessages,
        {"messages": [{"role": "user", "content": 7}]},
        "Type mismatch of '/messages/0/content', 'integer' not in 'string', "
        "Type mismatch of '/messages/0/content', 'integer' not in 'array', "
        "Type mismatch of '/messages/0/content', 'integer' not in 'object'",
        id="union-branches-each-once",
    ),
    # ranges
    pytest.param(
        QwqPrompt, {"prompt": "Hi", "temperature": 9}, "'/temperature' must be <= 5.0", id="le"
    ),
    pytest.param(
        QwqPrompt, {"prompt": "Hi", "max_tokens": 0}, "'/max_tokens' must be >= 1", id="ge"
    ),
    pytest.param(R1Prompt, {"prompt": "Hi", "top_p": 0}, "'/top_p' must be >= 0.001", id="r1-ge"),
    pytest.param(Limits, {"ratio": 1.0}, "'/ratio' must be <= 1.0", id="lt"),
    pytest.param(Limits, {"ratio": 0.0}, "'/ratio' must be >= 0.0", id="gt"),
    # lengths
    pytest.param(
        QwqPrompt, {"prompt": ""}, "'/prompt' must be at least 1 characters long", id="too-short"
    ),
    pytest.param(
        Limits, {"label": "abcd"}, "'/label' must be at most 3 characters long", id="too-long"
    ),
    # literals and patterns
    pytest.param(
        QwqPrompt,
        {"prompt": "Hi", "response_format": {"type": "xml"}},
        "'/response_format/type' must be one of 'json_object' or 'json_schema'",
        id="literal",
    ),
    pytest.param(
        QwqMessages,
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}]},
        "'/messages/0/tool_call_id' does not match pattern '[a-zA-Z0-9]{9}'",
        id="pattern",
    ),
]


@pytest.mark.parametrize(("schema", "body", "expected"), BODY_ERRORS)
def test_a_body_error_names_the_field_and_the_rule(
    schema: type[BaseModel], body: Any, expected: str
) -> None:
    assert message(schema, body) == expected


def test_at_most_five_phrases_in_the_order_of_the_errors() -> None:
    body = {
        "prompt": "Hi",
        "temperature": 9,
        "top_p": 3,
        "top_k": 0,
        "seed": 0,
        "repetition_penalty": 3,
        "frequency_penalty": 3,
        "presence_penalty": 3,
    }

    phrases = message(QwqPrompt, body).split(", ")

    assert MAX_PHRASES == 5
    assert phrases == [
        "'/temperature' must be <= 5.0",
        "'/top_p' must be <= 2.0",
        "'/top_k' must be >= 1",
        "'/seed' must be >= 1",
        "'/repetition_penalty' must be <= 2.0",
    ]


def test_a_phrase_said_twice_is_said_once() -> None:
    with pytest.raises(ValidationError) as refused:
        QwqPrompt.model_validate({"prompt": "", "temperature": 9})
    errors = refused.value.errors(include_url=False)

    detail = bad_input([*errors, *errors]).message.removeprefix(PREFIX)

    assert detail == "'/prompt' must be at least 1 characters long, '/temperature' must be <= 5.0"


QUERY_ERRORS = [
    pytest.param({"page": "0"}, "query parameter 'page' must be >= 1", id="ge"),
    pytest.param({"per_page": "51"}, "query parameter 'per_page' must be <= 50", id="le"),
    pytest.param({"page": "x"}, "query parameter 'page' must be an integer", id="not-integer"),
    pytest.param({"page": "1.5"}, "query parameter 'page' must be an integer", id="fraction"),
    pytest.param(
        {"order": "up"}, "query parameter 'order' must be one of 'asc' or 'desc'", id="literal"
    ),
    pytest.param(
        {"page": "0", "per_page": "x"},
        "query parameter 'page' must be >= 1, query parameter 'per_page' must be an integer",
        id="two-parameters",
    ),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_ERRORS)
def test_a_query_error_names_the_parameter(query: dict[str, str], expected: str) -> None:
    assert query_message(query) == expected


def test_a_tool_error_names_the_tool_and_the_type_sent() -> None:
    parameters = {"type": "object", "properties": {}}
    good = {
        "type": "function",
        "function": {"name": "f", "description": "", "parameters": parameters},
    }
    bad = {"name": 1, "description": "", "parameters": parameters}
    body = {"messages": [{"role": "user", "content": "Hi"}], "tools": [good, bad]}

    detail = message(QwqMessages, body)

    assert "Type mismatch of '/tools/1/name', 'integer' not in 'string'" in detail


class Item(BaseModel):
    name: str
    count: int = 1


def client_with_a_validated_route() -> TestClient:
    """The real app (its error handlers), plus one route whose parameters FastAPI validates."""
    app = create_app(make_settings(), engines={})

    @app.post("/items/{item_id}")
    async def create(
        item_id: int,
        item: Item,
        page: Annotated[int, Query(ge=1)],
        x_count: Annotated[int, Header()],
    ) -> dict[str, str]:
        return {}

    return TestClient(app)  # no lifespan: the route needs no engine


FASTAPI_ERRORS = [
    pytest.param(
        "/items/1?page=0",
        {"x-count": "1"},
        {"name": "a"},
        "query parameter 'page' must be >= 1",
        id="query-range",
    ),
    pytest.param(
        "/items/x?page=1",
        {"x-count": "1"},
        {"name": "a"},
        "path parameter 'item_id' must be an integer",
        id="path-type",
    ),
    pytest.param(
        "/items/1?page=1",
        {"x-count": "z"},
        {"name": "a"},
        "header parameter 'x-count' must be an integer",
        id="header-type",
    ),
    pytest.param(
        "/items/1?page=1",
        {"x-count": "1"},
        {"name": 5},
        "Type mismatch of '/name', 'integer' not in 'string'",
        id="body-type",
    ),
    pytest.param(
        "/items/1",
        {},
        {},
        "required query parameter 'page' is missing, required header parameter 'x-count' is "
        "missing, required properties at '/' are 'name'",
        id="missing-everywhere",
    ),
]


@pytest.mark.parametrize(("url", "headers", "body", "expected"), FASTAPI_ERRORS)
def test_fastapis_own_errors_say_where_the_value_was(
    url: str, headers: dict[str, str], body: dict[str, Any], expected: str
) -> None:
    response = client_with_a_validated_route().post(url, json=body, headers=headers)

    assert response.status_code == 400
    assert response.json()["errors"] == [{"code": 5006, "message": PREFIX + expected}]
