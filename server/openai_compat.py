"""OpenAI-compatible bodies (`/ai/v1/...`) translated to and from the Workers AI service.

Requests become native Workers AI bodies, so validation, ranges, defaults and errors are the
model's own (errors keep the Cloudflare envelope, as on Workers AI). Responses are plain OpenAI
objects; the reasoning before `</think>` is returned as `reasoning_content` (and `reasoning`, the
newer vLLM name), the answer as `content`.
"""

import contextlib
import json
import secrets
from typing import Any

from server.catalog import ModelSpec
from server.errors import BadInput
from server.output import Finished, ReasoningChunk, StreamEvent, TextChunk, ToolCallChunk
from server.schemas import ToolCall, Usage
from server.service import Collected

# Sampling fields shared by OpenAI and Workers AI bodies, passed through for native validation.
PASSED_THROUGH = (
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "stream",
    "json_after_reasoning",
    "lora",
)


def chat_request(body: Any, spec_of: Any) -> tuple[str, dict[str, Any]]:
    """(model name, native body) of an OpenAI chat completion request.

    `spec_of(name)` returns the served model's ModelSpec (raising NoSuchModel).
    """
    body = _object(body)
    model = _model_name(body)
    spec: ModelSpec = spec_of(model)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadInput("required properties at '/' are 'messages'")
    _refuse_unsupported(body)
    native: dict[str, Any] = {
        "messages": [_message(message, index, spec) for index, message in enumerate(messages)]
    }
    native.update(_common(body))
    if body.get("tools"):
        native["tools"] = [_tool(tool, index) for index, tool in enumerate(body["tools"])]
    native.update(_json_mode(body.get("response_format"), spec))
    return model, native


def completion_request(body: Any, spec_of: Any) -> tuple[str, dict[str, Any]]:
    """(model name, native body) of an OpenAI text completion: the prompt is sent raw."""
    body = _object(body)
    model = _model_name(body)
    spec_of(model)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadInput("'/prompt' must be one string")
    _refuse_unsupported(body)
    return model, {"prompt": prompt, "raw": True, **_common(body)}


def chat_completion(output: Collected, model: str, request_id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": output.text or None}
    if output.reasoning:
        message["reasoning_content"] = output.reasoning
        message["reasoning"] = output.reasoning
    if output.tool_calls:
        message["tool_calls"] = [_openai_call(call) for call in output.tool_calls]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _finish_reason(output.finish_reason, bool(output.tool_calls)),
    }
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": output.usage.model_dump(),
    }


def text_completion(output: Collected, model: str, request_id: str, created: int) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": output.reasoning + output.text,
        "logprobs": None,
        "finish_reason": _finish_reason(output.finish_reason, False),
    }
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": output.usage.model_dump(),
    }


class ChatChunks:
    """Turns service events into `chat.completion.chunk` payloads, in order."""

    def __init__(self, model: str, request_id: str, created: int, include_usage: bool) -> None:
        self._base = {"id": request_id, "object": "chat.completion.chunk", "created": created}
        self._model = model
        self._include_usage = include_usage
        self._calls = 0

    def first(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk):
            return [self._chunk({"content": event.text})]
        if isinstance(event, ReasoningChunk):
            return [self._chunk({"reasoning_content": event.text, "reasoning": event.text})]
        if isinstance(event, ToolCallChunk):
            call = {"index": self._calls, **_openai_call(event.call)}
            self._calls += 1
            return [self._chunk({"tool_calls": [call]})]
        assert isinstance(event, Finished)
        reason = _finish_reason(event.finish_reason, self._calls > 0)
        closing = [self._chunk({}, finish_reason=reason)]
        if self._include_usage:
            closing.append(
                {**self._base, "model": self._model, "choices": [], "usage": _usage(event.usage)}
            )
        return closing

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base, "model": self._model, "choices": [choice]}


class CompletionChunks:
    """Turns service events into streamed `text_completion` payloads."""

    def __init__(self, model: str, request_id: str, created: int, include_usage: bool) -> None:
        self._base = {"id": request_id, "object": "text_completion", "created": created}
        self._model = model
        self._include_usage = include_usage

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk | ReasoningChunk):
            return [self._chunk(event.text, None)]
        if isinstance(event, ToolCallChunk):
            return []
        closing = [self._chunk("", _finish_reason(event.finish_reason, False))]
        if self._include_usage:
            closing.append(
                {**self._base, "model": self._model, "choices": [], "usage": _usage(event.usage)}
            )
        return closing

    def _chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base, "model": self._model, "choices": [choice]}


def include_usage(body: Any) -> bool:
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


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


def _common(body: dict[str, Any]) -> dict[str, Any]:
    native = {name: body[name] for name in PASSED_THROUGH if body.get(name) is not None}
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
        qwq = spec.template == "qwq-32b"
        native["tool_calls"] = [_history_call(call, qwq) for call in calls]
        # QwQ's template needs text on an earlier tool-call turn; R1's renders the calls only
        # when there is no text at all.
        native["content"] = (content or "") if qwq else (content or None)
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
        texts.append(part.get("text", ""))
    return "\n".join(texts)


def _history_call(call: Any, decode_arguments: bool) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return call
    arguments = function.get("arguments")
    if decode_arguments and isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    return {**call, "function": {**function, "arguments": arguments}}


def _tool(tool: Any, index: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadInput(f"'/tools/{index}' must be {{'type': 'function', 'function': {{...}}}}")
    parameters = function.get("parameters") or {}
    parameters = {"type": "object", "properties": {}, **parameters}
    return {
        "type": "function",
        "function": {
            "name": function["name"],
            "description": function.get("description", ""),
            "parameters": parameters,
        },
    }


def _json_mode(response_format: Any, spec: ModelSpec) -> dict[str, Any]:
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return {}
    if spec.template != "qwq-32b":
        return {"response_format": response_format}
    if response_format.get("type") == "json_object":
        return {"guided_json": {"type": "object"}}
    wrapped = response_format.get("json_schema")
    schema = wrapped.get("schema", wrapped) if isinstance(wrapped, dict) else wrapped
    return {"guided_json": schema}


def _openai_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": "call_" + secrets.token_hex(12),
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def _finish_reason(reason: str | None, called_tools: bool) -> str:
    if called_tools:
        return "tool_calls"
    return "length" if reason == "length" else "stop"


def _usage(usage: Usage) -> dict[str, Any]:
    return usage.model_dump()
