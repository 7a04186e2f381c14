"""OpenAI-compatible request bodies (`/ai/v1/...`) translated into native Workers AI bodies.

The native body is then validated by the model's own schema, so ranges, defaults and errors are
the model's (errors keep the Cloudflare envelope, as on Workers AI). Every native field the OpenAI
body does not carry in a shape of its own (`TRANSLATED`) passes through under its own name: a
new field of the native schemas reaches the OpenAI routes without a change here.
"""

import contextlib
import json
from collections.abc import Callable
from typing import Any

from server.errors import BadInput
from server.generation.specs import ModelSpec, ToolHistory

# Native fields that an OpenAI body carries in its own shape, translated below.
TRANSLATED = frozenset(
    {"prompt", "raw", "messages", "tools", "functions", "response_format", "max_tokens"}
)


def passed_through(spec: ModelSpec) -> frozenset[str]:
    """The native fields an OpenAI body may send as they are."""
    fields = spec.prompt_schema.model_fields.keys() | spec.messages_schema.model_fields.keys()
    return frozenset(fields - TRANSLATED)


def chat_request(body: Any, spec_of: Callable[[str], ModelSpec]) -> tuple[str, dict[str, Any]]:
    """(model name, native body) of an OpenAI chat completion request.

    `spec_of(name)` returns the served model's ModelSpec (raising NoSuchModel).
    """
    body = _object(body)
    model = _model_name(body)
    spec = spec_of(model)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadInput("required properties at '/' are 'messages'")
    _refuse_unsupported(body)
    native: dict[str, Any] = {
        "messages": [_message(message, index, spec) for index, message in enumerate(messages)]
    }
    native.update(_common(body, spec))
    if body.get("tools"):
        if not isinstance(body["tools"], list):
            raise BadInput("Type mismatch of '/tools', expected an array")
        native["tools"] = [_tool(tool, index) for index, tool in enumerate(body["tools"])]
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        native["response_format"] = response_format  # the native JSON-mode rule applies
    return model, native


def completion_request(
    body: Any, spec_of: Callable[[str], ModelSpec]
) -> tuple[str, dict[str, Any]]:
    """(model name, native body) of an OpenAI text completion: the prompt is sent raw."""
    body = _object(body)
    model = _model_name(body)
    spec = spec_of(model)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadInput("'/prompt' must be one string")
    _refuse_unsupported(body)
    return model, {"prompt": prompt, "raw": True, **_common(body, spec)}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadInput("Type mismatch of '/', expected an object")
    return body


def _model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadInput("required properties at '/' are 'model'")
    return model


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body.get("n", 1) != 1:
        raise BadInput("'/n': only one choice per request is supported")
    if body.get("stop"):
        raise BadInput("'/stop' is not supported by this server")


def _common(body: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    fields = passed_through(spec)
    native = {name: value for name, value in body.items() if name in fields and value is not None}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        native["max_tokens"] = max_tokens
    return native


def _message(message: Any, index: int, spec: ModelSpec) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise BadInput(f"Type mismatch of '/messages/{index}', expected an object")
    role = "system" if message.get("role") == "developer" else message.get("role")
    content = _text(message.get("content"), index)
    native: dict[str, Any] = {"role": role, "content": content}
    calls = message.get("tool_calls")
    if role == "assistant" and calls:
        if not isinstance(calls, list):
            raise BadInput(f"Type mismatch of '/messages/{index}/tool_calls', expected an array")
        history = spec.tool_history
        native["tool_calls"] = [_history_call(call, history) for call in calls]
        native["content"] = (content or "") if history.content_required else (content or None)
    return native


def _text(content: Any, index: int) -> Any:
    if not isinstance(content, list):
        return content
    texts = []
    for position, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise BadInput(
                f"'/messages/{index}/content/{position}': this model takes text parts only"
            )
        text = part.get("text", "")
        if not isinstance(text, str):
            raise BadInput(
                f"Type mismatch of '/messages/{index}/content/{position}/text', expected a string"
            )
        texts.append(text)
    return "\n".join(texts)


def _history_call(call: Any, history: ToolHistory) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return call
    arguments = function.get("arguments")
    if history.arguments_as_object and isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    return {**call, "function": {**function, "arguments": arguments}}


def _tool(tool: Any, index: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadInput(f"'/tools/{index}' must be {{'type': 'function', 'function': {{...}}}}")
    parameters = function.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadInput(f"Type mismatch of '/tools/{index}/function/parameters', expected an object")
    parameters = {"type": "object", "properties": {}, **parameters}
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": parameters,
        },
    }
