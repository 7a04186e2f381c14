"""The OpenAPI 3.1 document at `/openapi.json` (and the Swagger UI at `/docs`).

The routes read their bodies by hand, so FastAPI's generated document knows only paths and
methods. This module takes those and writes each operation out in full from the table below,
keyed by the route function's name: every path parameter (`gateway_id` included), the request
body the route really reads (generated from the pydantic models that validate it where there are
such), the success envelope with its `result`, `text/event-stream` where a run can stream, the
error envelopes with the statuses the route can answer, and the bearer token. Built once per app.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from server.catalog.search import SearchQuery
from server.finetunes.schemas import PublicQuery
from server.generation.schemas import TextGenerationResult
from server.generation.specs import MODELS, ModelSpec
from server.health import HealthQuery
from server.http import openapi_bodies as bodies
from server.http.body import TIMEOUT_HEADER
from server.http.openapi_schemas import (
    ASSET_UPLOAD,
    CATALOG_ENTRY,
    ERROR_ENVELOPE,
    FINETUNE_ASSET,
    HEALTH,
    MODEL_SCHEMAS,
    RESULT_INFO,
    Components,
    Schema,
    error_response,
    event_stream,
    finetune_shapes,
    model_inputs,
    success,
)

DESCRIPTION = """Cloudflare Workers AI's REST API, served by vLLM on your own machine.

Every answer but `/health` and the OpenAI-compatible bodies is Cloudflare's envelope
`{"result", "success", "errors": [{"code", "message"}], "messages"}`. Send
`Authorization: Bearer <token>` (one of `api_tokens`; not checked when none is configured).
Each Workers AI route also answers without the `/client/v4` prefix."""

SECURITY_SCHEME = "bearer"

RUN_ERRORS = (400, 401, 404, 405, 408, 413, 429, 500, 503)
READ_ERRORS = (401, 404, 500, 503)  # 503: the server is draining
QUERY_ERRORS = (400, 401, 404, 500, 503)


@dataclass(frozen=True)
class Operation:
    """Everything the document says about one route function."""

    summary: str
    tag: str
    responses: dict[int, Schema]
    errors: tuple[int, ...] = READ_ERRORS
    body: Schema | None = None
    query: tuple[Schema, ...] = ()
    timeout_header: bool = False
    authenticated: bool = True
    description: str | None = None
    examples: dict[str, Schema] = field(default_factory=dict)

    def render(self, path: str, operation_id: str, path_params: list[Schema]) -> Schema:
        parameters = [*path_params, *self.query]
        if self.timeout_header:
            parameters.append(TIMEOUT_PARAMETER)
        rendered: Schema = {
            "tags": ["AI Gateway" if path.startswith("/v1/") else self.tag],
            "summary": self.summary,
            "operationId": operation_id,
            "parameters": parameters,
            "responses": {
                **{str(status): response for status, response in self.responses.items()},
                **{
                    str(status): {"$ref": f"#/components/responses/{status}"}
                    for status in self.errors
                },
            },
            "security": [{SECURITY_SCHEME: []}] if self.authenticated else [],
        }
        if self.description:
            rendered["description"] = self.description
        if self.body is not None:
            rendered["requestBody"] = {"required": True, "content": self.body}
        return rendered


TIMEOUT_PARAMETER: Schema = {
    "name": TIMEOUT_HEADER,
    "in": "header",
    "required": False,
    "description": "AI Gateway's per-request timeout in milliseconds; it can only shorten the "
    "server's `request_timeout_s`.",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


def install(app: FastAPI, served: Sequence[str]) -> None:
    """Serve the document of `app`, whose models are `served`, at `app.openapi_url`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, [MODELS[name] for name in served if name in MODELS])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI, specs: Sequence[ModelSpec]) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=DESCRIPTION,
        routes=app.routes,
    )
    functions = {
        (route.path_format, method.lower()): route.endpoint.__name__
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    components = Components()
    table = operations(components, specs)
    for path, item in document["paths"].items():
        for method, generated in item.items():
            name = functions[(path, method)]
            operation = table[name] if name in table else _undescribed(generated)
            item[method] = operation.render(
                path, generated["operationId"], path_parameters(path, specs)
            )
    document["components"] = {
        "schemas": {**components.schemas, "ErrorEnvelope": ERROR_ENVELOPE},
        "responses": {str(status): error_response(status) for status in _statuses(table)},
        "securitySchemes": {
            SECURITY_SCHEME: {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the server's `api_tokens`",
            }
        },
    }
    return document


def _statuses(table: dict[str, Operation]) -> list[int]:
    return sorted({status for operation in table.values() for status in operation.errors})


def path_parameters(path: str, specs: Sequence[ModelSpec]) -> list[Schema]:
    """Every `{name}` of the path, declared."""
    described: dict[str, Schema] = {
        "account_id": {
            "description": "The Cloudflare account id (any, unless `account_ids` is set)"
        },
        "gateway_id": {"description": "The AI Gateway id (accepted and ignored)"},
        "model": {
            "description": "A served model's name; its slashes may be sent as they are, or as "
            "`%2F`",
            "schema": {"enum": [spec.name for spec in specs]},
            **({"example": specs[0].name} if specs else {}),
        },
        "finetune": {"description": "A finetune's id or name"},
    }
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    parameters = []
    for name in names:
        details = {"schema": {"type": "string", "pattern": "^[^/]+$"}, **described.get(name, {})}
        parameters.append({"name": name, "in": "path", "required": True, **details})
    return parameters


def query_parameters(model: type[BaseModel]) -> tuple[Schema, ...]:
    """The query parameters a pydantic model parses (all optional), with its constraints."""
    schema = model.model_json_schema()
    parameters = []
    for name, property_ in schema["properties"].items():
        property_ = {k: v for k, v in property_.items() if k != "title" and v is not None}
        branches = property_.pop("anyOf", None)
        if branches is not None:  # `X | None`: absent means None
            property_.update(next(b for b in branches if b.get("type") != "null"))
        description = property_.pop("description", None)
        parameter: Schema = {"name": name, "in": "query", "required": False, "schema": property_}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return tuple(parameters)


def health_parameters(names: Sequence[str]) -> tuple[Schema, ...]:
    """`/health`'s query (`HealthQuery`), its `model` limited to the served names."""
    model, ready = query_parameters(HealthQuery)
    model["schema"]["items"] = {"enum": list(names)}
    return model, ready


def json_body(schema: Schema, examples: dict[str, Schema] | None = None) -> Schema:
    content: Schema = {"schema": schema}
    if examples:
        content["examples"] = examples
    return {"application/json": content}


def ok(content: Schema, description: str = "Success") -> dict[int, Schema]:
    return {200: {"description": description, "content": content}}


def operations(components: Components, specs: Sequence[ModelSpec]) -> dict[str, Operation]:
    names = [spec.name for spec in specs]
    inputs = model_inputs(components, specs)
    result = components.model(TextGenerationResult)
    run_ok = ok(
        {
            **json_body(success(result)),
            **event_stream(bodies.RUN_STREAM_EXAMPLE),
        },
        "The result, or with `stream: true` Workers AI's event stream",
    )
    run_ok[200]["content"]["application/json"]["example"] = bodies.RUN_RESULT_EXAMPLE
    run_body = json_body(
        {"anyOf": list(inputs.values()), "description": "The input of the model in the path"},
        bodies.RUN_EXAMPLES,
    )
    universal = {
        "oneOf": [
            {
                "type": "object",
                "required": ["model", "input"],
                "properties": {"model": {"const": name}, "input": schema},
            }
            for name, schema in inputs.items()
        ]
    }
    run = Operation(
        "Run a model",
        "Workers AI",
        run_ok,
        RUN_ERRORS,
        run_body,
        timeout_header=True,
    )
    create, created, listed = finetune_shapes(components)
    return {
        "health": Operation(
            "Engine health",
            "Operations",
            {
                200: {
                    "description": "The judged models are up: every one, or one at least "
                    "with `ready=any`",
                    "content": json_body(HEALTH),
                },
                503: {
                    "description": "Draining (whatever the query), or too few of the judged "
                    "models are up",
                    "content": json_body(HEALTH),
                },
            },
            (400, 500),
            authenticated=False,
            query=health_parameters(names),
        ),
        "run_model": run,
        "run_model_bare": run,
        "run_universal": Operation(
            "Run a model (universal form)",
            "Workers AI",
            run_ok,
            RUN_ERRORS,
            json_body(universal),
            timeout_header=True,
        ),
        "chat_completions": _openai(
            "Chat completion",
            bodies.chat_request(names),
            bodies.CHAT_COMPLETION,
            bodies.CHAT_EXAMPLE,
            bodies.CHAT_STREAM_EXAMPLE,
        ),
        "completions": _openai(
            "Text completion",
            bodies.completion_request(names),
            bodies.TEXT_COMPLETION,
            {"model": names[0] if names else "", "prompt": "Once upon a time"},
            bodies.CHAT_STREAM_EXAMPLE.replace("chat.completion.chunk", "text_completion"),
        ),
        "metrics": Operation(
            "Prometheus metrics",
            "Operations",
            ok({"text/plain": {"schema": {"type": "string"}}}, "Prometheus' text format"),
        ),
        "list_models": Operation(
            "The served models (OpenAI)", "OpenAI-compatible", ok(json_body(bodies.MODEL_LIST))
        ),
        "search_models": Operation(
            "Search the model catalog",
            "Models",
            ok(
                json_body(
                    success({"type": "array", "items": CATALOG_ENTRY}, result_info=RESULT_INFO)
                )
            ),
            QUERY_ERRORS,
            query=query_parameters(SearchQuery),
        ),
        "model_schema": Operation(
            "A model's input and output JSON Schemas",
            "Models",
            ok(json_body(success(MODEL_SCHEMAS))),
            QUERY_ERRORS,
            query=({"name": "model", "in": "query", "required": True, "schema": {"enum": names}},),
        ),
        "create_finetune": Operation(
            "Create a finetune",
            "Finetunes",
            ok(json_body(success(created))),
            (400, 401, 404, 405, 409, 413, 500, 503),
            json_body(
                create,
                {"example": {"value": {"model": names[0] if names else "", "name": "pirate"}}},
            ),
        ),
        "list_finetunes": Operation(
            "The account's finetunes",
            "Finetunes",
            ok(json_body(success({"type": "array", "items": listed}))),
        ),
        "list_public_finetunes": Operation(
            "Every public finetune",
            "Finetunes",
            ok(json_body(success({"type": "array", "items": created}))),
            QUERY_ERRORS,
            query=query_parameters(PublicQuery),
        ),
        "upload_finetune_asset": Operation(
            "Upload a finetune's LoRA file",
            "Finetunes",
            ok(json_body(success(FINETUNE_ASSET))),
            (400, 401, 404, 409, 413, 500, 503),
            {"multipart/form-data": {"schema": ASSET_UPLOAD}},
        ),
    }


def _openai(
    summary: str, request: Schema, whole: Schema, example: Schema, stream: str
) -> Operation:
    return Operation(
        summary,
        "OpenAI-compatible",
        ok({**json_body(whole), **event_stream(stream)}),
        RUN_ERRORS,
        json_body(request, {"example": {"value": example}}),
        timeout_header=True,
    )


def _undescribed(generated: Schema) -> Operation:
    """A route the table does not know yet: FastAPI's own view of it, without its 422."""
    responses = {
        int(status): response
        for status, response in generated.get("responses", {}).items()
        if status != "422"
    }
    return Operation(generated.get("summary", ""), "Operations", responses, (500,))
