"""Validation errors turned into Workers AI's 5006 messages, the one place that does it.

    bad_input(errors)                        bodies:  "'/temperature' must be <= 5"
    bad_input(errors, source="query")        queries: "query parameter 'page' must be >= 1"

One phrase per distinct field, at most five, in the spirit of Workers AI's validator. Request
bodies, query parameters and whatever FastAPI itself refuses all read the same way.
"""

from collections.abc import Iterable
from typing import Any, Literal

from pydantic_core import ErrorDetails

from server.errors import BadInput

# Where the values came from; "request": FastAPI's own errors, whose first location part says
# (`body`, `query`, `path`, `header`).
Source = Literal["body", "query", "request"]

MAX_PHRASES = 5

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
    "int_parsing": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "float_parsing": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def bad_input(errors: Iterable[ErrorDetails], *, source: Source = "body") -> BadInput:
    """The BadInput (400, 5006) that names every offending field of `errors`."""
    phrases: list[str] = []
    for item in errors:
        phrase = _describe(item, source)
        if phrase not in phrases:
            phrases.append(phrase)
    return BadInput(", ".join(phrases[:MAX_PHRASES]))


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value."""
    return _JSON_TYPE_NAMES.get(type(value), "unknown")


def _describe(item: ErrorDetails, source: Source) -> str:
    location = [part for part in item["loc"] if not _is_union_branch(part)]
    where: str = source
    if source == "request" and location:
        where, location = str(location[0]), location[1:]
    kind = item["type"]
    context = item.get("ctx") or {}
    if where != "body":
        subject = f"{where} parameter '{'.'.join(str(part) for part in location)}'"
        if kind == "missing":
            return f"required {subject} is missing"
        if kind == "extra_forbidden":
            return f"{subject} is not accepted"
        if kind in _EXPECTED_BY_ERROR:
            return f"{subject} must be {_a(_EXPECTED_BY_ERROR[kind])}"
    else:
        subject = "'/" + "/".join(str(part) for part in location) + "'"
        if kind == "missing":
            parent = "/" + "/".join(str(part) for part in location[:-1])
            return f"required properties at '{parent}' are '{location[-1]}'"
        if kind in _EXPECTED_BY_ERROR:
            actual = json_type(item.get("input"))
            return f"Type mismatch of {subject}, '{actual}' not in '{_EXPECTED_BY_ERROR[kind]}'"
    if kind in ("less_than_equal", "less_than"):
        return f"{subject} must be <= {context.get('le', context.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{subject} must be >= {context.get('ge', context.get('gt'))}"
    if kind == "string_too_short":
        return f"{subject} must be at least {context.get('min_length')} characters long"
    if kind == "string_too_long":
        return f"{subject} must be at most {context.get('max_length')} characters long"
    if kind in ("literal_error", "enum"):
        return f"{subject} must be one of {context.get('expected')}"
    if kind == "string_pattern_mismatch":
        return f"{subject} does not match pattern '{context.get('pattern')}'"
    return f"{subject}: {item['msg']}"


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _is_union_branch(part: int | str) -> bool:
    # pydantic names union branches in error locations ("str", "list[...]", "TextPart").
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "none") or "[" in part or part[:1].isupper()
    )
