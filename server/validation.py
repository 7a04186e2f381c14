"""Turn a request body into a model's wire schema, with Workers AI-style error messages."""

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from server.catalog import ModelSpec
from server.errors import BadInput
from server.schemas import MessagesInput, PromptInput

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}

_EXPECTED_BY_ERROR = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "bool_type": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def parse_input(spec: ModelSpec, body: Any) -> PromptInput | MessagesInput:
    """Validate `body` against the model's schema: the `prompt` form or the `messages` form.

    Raises BadInput naming the offending field.
    """
    if not isinstance(body, dict):
        raise BadInput(f"Type mismatch of '/', '{_json_type(body)}' not in 'object'")
    has_prompt, has_messages = "prompt" in body, "messages" in body
    if has_prompt and has_messages:
        raise BadInput("oneOf at '/' not met, 2 matches: send either 'prompt' or 'messages'")
    if not (has_prompt or has_messages):
        raise BadInput(
            "oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', "
            "required properties at '/' are 'messages'"
        )
    schema = spec.prompt_schema if has_prompt else spec.messages_schema
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        raise BadInput(describe_errors(error, body)) from None


def describe_errors(error: ValidationError, body: Any) -> str:
    """One phrase per distinct field, in the spirit of Workers AI's validator."""
    phrases: list[str] = []
    for item in error.errors(include_url=False):
        phrase = _describe(item, body)
        if phrase not in phrases:
            phrases.append(phrase)
    return ", ".join(phrases[:5])


def _describe(item: ErrorDetails, body: Any) -> str:
    location = [part for part in item["loc"] if not _is_union_branch(part)]
    pointer = "/" + "/".join(str(part) for part in location)
    kind = item["type"]
    if kind == "missing":
        parent = "/" + "/".join(str(part) for part in location[:-1])
        return f"required properties at '{parent}' are '{location[-1]}'"
    if kind in _EXPECTED_BY_ERROR:
        actual = _json_type(_lookup(body, location))
        return f"Type mismatch of '{pointer}', '{actual}' not in '{_EXPECTED_BY_ERROR[kind]}'"
    context = item.get("ctx") or {}
    if kind in ("less_than_equal", "less_than"):
        return f"'{pointer}' must be <= {context.get('le', context.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"'{pointer}' must be >= {context.get('ge', context.get('gt'))}"
    if kind == "string_too_short":
        return f"'{pointer}' must be at least {context.get('min_length')} characters long"
    if kind == "literal_error":
        return f"'{pointer}' must be one of {context.get('expected')}"
    if kind == "string_pattern_mismatch":
        return f"'{pointer}' does not match pattern '{context.get('pattern')}'"
    return f"'{pointer}': {item['msg']}"


def _is_union_branch(part: int | str) -> bool:
    # pydantic names union branches in error locations ("str", "list[...]", "TextPart").
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none") or "[" in part or part[:1].isupper()
    )


def _lookup(body: Any, location: list[int | str]) -> Any:
    value = body
    for part in location:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "unknown")
