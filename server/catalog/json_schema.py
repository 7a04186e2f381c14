"""A model's input and output JSON Schemas, generated from the wire models the server validates.

There is no hand-written copy: `input` is the `oneOf` of the model's prompt form and messages
form (`ModelSpec.prompt_schema`, `ModelSpec.messages_schema`), `output` is
`TextGenerationResult`, so the schemas change when the wire models do. Both sides agree on every
constraint the wire models declare (types, ranges, enums, required fields). Where the server
is stricter, the schema is the more lenient side, never the other way round: each `tools` item
is a plain object here (a validator checks its two published shapes); JSON Schema counts `1.0`
as an integer, strict pydantic does not; and `parse_input` refuses a body holding both `prompt`
and `messages` keys even when one of them is `null`.
"""

import json
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.generation.schemas import TextGenerationResult
from server.generation.specs import ModelSpec

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DEFS = "$defs"


@cache
def model_schema(spec: ModelSpec) -> dict[str, Any]:
    """`{"input": <JSON Schema>, "output": <JSON Schema>}` for one model.

    Every `$ref` points into the top-level `$defs` of the schema that holds it.
    Callers must not mutate the result (it is cached).
    """
    return {"input": _input_schema(spec), "output": _output_schema()}


def _input_schema(spec: ModelSpec) -> dict[str, Any]:
    forms: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (spec.prompt_schema, "validation"),
        (spec.messages_schema, "validation"),
    ]
    # Generated together so both forms share one `$defs`; a `$ref` inside a `oneOf` branch
    # resolves against the document root, so separate per-form `$defs` would dangle.
    references, document = models_json_schema(forms)
    definitions: dict[str, Any] = dict(document.get(_DEFS, {}))
    # Workers AI's schemas write the two forms inline, each with its title.
    names = [_name(references[form]) for form in forms]
    branches = [definitions[name] for name in names]
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "type": "object", "oneOf": branches}
    for name in names:
        if not _is_referenced(name, schema, definitions):
            del definitions[name]
    if definitions:
        schema[_DEFS] = definitions
    return schema


def _output_schema() -> dict[str, Any]:
    # Serialization mode: the shape the server writes, not the shape it would accept.
    schema = TextGenerationResult.model_json_schema(mode="serialization")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def _name(reference: dict[str, Any]) -> str:
    return str(reference["$ref"]).rsplit("/", 1)[-1]


def _is_referenced(name: str, schema: dict[str, Any], definitions: dict[str, Any]) -> bool:
    """Whether a `$ref` anywhere (inlined forms or other definitions) points at `name`."""
    text = json.dumps([schema["oneOf"], {k: v for k, v in definitions.items() if k != name}])
    return json.dumps(f"#/{_DEFS}/{name}") in text
