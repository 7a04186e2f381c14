"""The schemas of the OpenAPI document: Cloudflare's envelopes, every body the routes read and
write, and the error answers with their real statuses.

Request bodies the wire models validate are generated from those models (`model_schema` for
`/ai/run`, `FinetuneCreate`, `SearchQuery`, `PublicQuery`), never copied by hand; the OpenAI
bodies, which are translated rather than validated whole, are written out here.
"""

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from engine.lora.format import REQUIRED_FILES
from server.catalog.json_schema import model_schema
from server.finetunes.schemas import FinetuneCreate, FinetuneRecord
from server.generation.specs import ModelSpec

Schema = dict[str, Any]

COMPONENTS = "#/components/schemas/"


def ref(name: str) -> Schema:
    return {"$ref": COMPONENTS + name}


class Components:
    """`components/schemas`, filled as schemas are generated: every `$ref` of a pydantic schema
    is rewritten to point here (a `#/$defs/...` would resolve against the document's root)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> Schema:
        """Store `schema` (its `$defs` hoisted next to it) under `name`; return a `$ref`."""
        schema = dict(schema)
        schema.pop("$schema", None)
        for def_name, definition in schema.pop("$defs", {}).items():
            self._store(def_name, _relocated(definition))
        self._store(name, _relocated(schema))
        return ref(name)

    def model(self, model: type[BaseModel], name: str | None = None) -> Schema:
        return self.add(name or model.__name__, model.model_json_schema(mode="serialization"))

    def _store(self, name: str, schema: Schema) -> None:
        known = self.schemas.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are both named {name!r}")


def _relocated(schema: Schema) -> Schema:
    text = json.dumps(schema).replace('"#/$defs/', '"' + COMPONENTS)
    relocated: Schema = json.loads(text)
    return relocated


def input_name(spec: ModelSpec) -> str:
    """`QwqInput` for `@cf/qwen/qwq-32b`: the name of the model's input schema."""
    return spec.prompt_schema.__name__.removesuffix("Prompt") + "Input"


def model_inputs(components: Components, specs: Sequence[ModelSpec]) -> dict[str, Schema]:
    """Each served model's `/ai/run` body (the `oneOf` of its prompt and messages forms)."""
    inputs = {}
    for spec in specs:
        schema = {"description": f"The input of {spec.name}.", **model_schema(spec)["input"]}
        inputs[spec.name] = components.add(input_name(spec), schema)
    return inputs


def success(result: Schema, **extra: Schema) -> Schema:
    """Cloudflare's success envelope around `result`."""
    return {
        "type": "object",
        "required": ["result", "success", "errors", "messages"],
        "properties": {
            "result": result,
            "success": {"const": True},
            "errors": {"type": "array", "maxItems": 0},
            "messages": {"type": "array"},
            **extra,
        },
    }


ERROR_ENVELOPE: Schema = {
    "type": "object",
    "required": ["result", "success", "errors", "messages"],
    "properties": {
        "result": {"type": "null"},
        "success": {"const": False},
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            },
        },
        "messages": {"type": "array"},
    },
}

# status: (description, an example: code and message)
ERRORS: dict[int, tuple[str, int, str]] = {
    400: (
        "Bad input (5006), an empty body (3003), an unknown model (5007), an unusable LoRA "
        "adapter (3039)",
        5006,
        "AiError: Bad input: Error: Type mismatch of '/prompt', 'integer' not in 'string'",
    ),
    401: ("A missing or unknown bearer token (10000)", 10000, "Authentication error"),
    404: (
        "An account id not served here (7003), an unknown finetune (3037), an unknown path (7000)",
        7003,
        "Could not route to /client/v4/accounts/other/ai/run/@cf/qwen/qwq-32b, perhaps your "
        "object identifier is invalid?",
    ),
    405: (
        "`lora` on a model served without LoRA (5005), a method the path does not take (7001)",
        5005,
        "The model @cf/qwen/qwq-32b does not support LoRa inference",
    ),
    408: ("Slower than the request timeout (3007)", 3007, "Request timeout"),
    409: (
        "A finetune name taken (3045), an asset uploaded already (3046)",
        3045,
        "Finetune pirate already exists: a finetune of that name exists",
    ),
    413: (
        "A body over `max_request_bytes`, or an upload over its limit (3006); prompt and "
        "`max_tokens` over the model's context window (5021)",
        5021,
        "The estimated number of input and maximum output tokens (30000) exceeded this model "
        "context window limit (24000).",
    ),
    429: (
        "The model's queue is full, or `rejectIfBusy` found no free slot (3040)",
        3040,
        "Capacity temporarily exceeded, please try again.",
    ),
    500: ("Any other failure (3043); never internal details", 3043, "Internal server error"),
    503: (
        "The model's engine has stopped, or the server is shutting down (3040; "
        "`Retry-After` when shutting down)",
        3040,
        "The model is not available right now, please try again.",
    ),
}


def error_response(status: int) -> Schema:
    description, code, message = ERRORS[status]
    example = {"result": None, "success": False, "errors": [{"code": code, "message": message}]}
    response: Schema = {
        "description": description,
        "content": {
            "application/json": {
                "schema": ref("ErrorEnvelope"),
                "example": {**example, "messages": []},
            }
        },
    }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


SSE_EVENT: Schema = {
    "type": "object",
    "description": "One server-sent event. `data` is compact JSON (the last event's is "
    "`[DONE]`); a failure after the first byte is one event carrying `errors`.",
    "required": ["data"],
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


def event_stream(example: str) -> Schema:
    return {"text/event-stream": {"schema": SSE_EVENT, "example": example}}


def finetune_shapes(components: Components) -> tuple[Schema, Schema, Schema]:
    """(create body, a created or public finetune, an entry of the account's listing)."""
    record = FinetuneRecord.model_json_schema(mode="serialization")
    created = {
        **record,
        "properties": {
            name: field
            for name, field in record["properties"].items()
            if name not in ("account_id", "sequence")
        },
        "required": [name for name in record["required"] if name not in ("account_id", "sequence")],
    }
    listed = {
        **created,
        "properties": {k: v for k, v in created["properties"].items() if k != "public"},
        "required": [name for name in created["required"] if name != "public"],
    }
    return (
        components.model(FinetuneCreate),
        components.add("Finetune", {**created, "title": "Finetune"}),
        components.add("FinetuneListed", {**listed, "title": "FinetuneListed"}),
    )


FINETUNE_ASSET: Schema = {
    "type": "object",
    "required": ["id", "finetune_id", "file_name", "bucket_name", "created_at", "modified_at"],
    "properties": {
        name: {"type": "string"}
        for name in ("id", "finetune_id", "file_name", "bucket_name", "created_at", "modified_at")
    },
}

ASSET_UPLOAD: Schema = {
    "type": "object",
    "required": ["file_name", "file"],
    "properties": {
        "file_name": {"type": "string", "enum": sorted(REQUIRED_FILES)},
        "file": {"type": "string", "format": "binary"},
    },
}

HEALTH: Schema = {
    "type": "object",
    "required": ["status", "models"],
    "properties": {
        "status": {"enum": ["ok", "unavailable", "draining"]},
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": [
                    "healthy",
                    "running_requests",
                    "waiting_requests",
                    "context_window",
                ],
                "properties": {
                    "healthy": {"type": "boolean"},
                    "running_requests": {"type": "integer"},
                    "waiting_requests": {"type": "integer"},
                    "context_window": {"type": "integer"},
                    "stand_in": {"type": "string"},
                    "swap_group": {"type": "string"},
                    "state": {"enum": ["awake", "asleep", "waking"]},
                    "remote": {"const": True},
                },
            },
        },
    },
}

CATALOG_ENTRY: Schema = {
    "type": "object",
    "required": ["id", "source", "name", "description", "task", "created_at", "properties"],
    "properties": {
        "id": {"type": "string"},
        "source": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "task": {
            "type": "object",
            "required": ["id", "name", "description"],
            "properties": {name: {"type": "string"} for name in ("id", "name", "description")},
        },
        "created_at": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "properties": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["property_id", "value"],
                "properties": {"property_id": {"type": "string"}, "value": {}},
            },
        },
    },
}

RESULT_INFO: Schema = {
    "type": "object",
    "required": ["page", "per_page", "count", "total_count"],
    "properties": {
        name: {"type": "integer"} for name in ("page", "per_page", "count", "total_count")
    },
}

MODEL_SCHEMAS: Schema = {
    "type": "object",
    "required": ["input", "output"],
    "properties": {
        "input": {"type": "object", "description": "JSON Schema of the model's input"},
        "output": {"type": "object", "description": "JSON Schema of the non-streamed result"},
    },
}
