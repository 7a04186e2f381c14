"""OpenAI response objects built from the service's output: whole, or as streamed chunks.

The reasoning before `</think>` is returned as `reasoning_content` (and `reasoning`, the newer
vLLM name), the answer as `content`. Errors inside a stream carry both OpenAI's `error` and
Workers AI's `errors`: OpenAI SDKs raise on the first, Workers AI clients read the second.
"""

import json
import secrets
from typing import Any, assert_never

from server.errors import WorkersAIError
from server.generation.output import Finished, ReasoningChunk, StreamEvent, TextChunk, ToolCallChunk
from server.generation.schemas import ToolCall
from server.generation.service import Collected


class _Completion:
    """What both OpenAI objects share: identity, model, and the optional closing usage chunk."""

    chunk_object = ""

    def __init__(self, model: str, request_id: str, created: int, include_usage: bool) -> None:
        self._base = {"id": request_id, "object": self.chunk_object, "created": created}
        self._model = model
        self._include_usage = include_usage

    def error(self, error: WorkersAIError) -> dict[str, Any]:
        """Both shapes: OpenAI SDKs raise on `error`, Workers AI clients read `errors`."""
        detail = {"code": error.code, "message": error.message}
        return {"error": detail, "errors": [detail]}

    def _usage(self, event: Finished) -> list[dict[str, Any]]:
        if not self._include_usage:
            return []
        usage = event.usage.model_dump()
        return [{**self._base, "model": self._model, "choices": [], "usage": usage}]


class ChatCompletion(_Completion):
    """`chat.completion`, or its `chat.completion.chunk` stream, for one request."""

    chunk_object = "chat.completion.chunk"

    def __init__(self, model: str, request_id: str, created: int, include_usage: bool) -> None:
        super().__init__(model, request_id, created, include_usage)
        self._calls = 0

    def body(self, output: Collected) -> dict[str, Any]:
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
            **self._base,
            "object": "chat.completion",
            "model": self._model,
            "choices": [choice],
            "usage": output.usage.model_dump(),
        }

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk):
            return [self._chunk({"content": event.text})]
        if isinstance(event, ReasoningChunk):
            return [self._chunk({"reasoning_content": event.text, "reasoning": event.text})]
        if isinstance(event, ToolCallChunk):
            call = {"index": self._calls, **_openai_call(event.call)}
            self._calls += 1
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, Finished):
            reason = _finish_reason(event.finish_reason, self._calls > 0)
            return [self._chunk({}, finish_reason=reason), *self._usage(event)]
        assert_never(event)

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base, "model": self._model, "choices": [choice]}


class TextCompletion(_Completion):
    """`text_completion`, whole or streamed, for one request: reasoning is plain text here."""

    chunk_object = "text_completion"

    def body(self, output: Collected) -> dict[str, Any]:
        choice = {
            "index": 0,
            "text": output.reasoning + output.text,
            "logprobs": None,
            "finish_reason": _finish_reason(output.finish_reason, False),
        }
        return {
            **self._base,
            "model": self._model,
            "choices": [choice],
            "usage": output.usage.model_dump(),
        }

    def opening(self) -> list[dict[str, Any]]:
        return []

    def payloads(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextChunk | ReasoningChunk):
            return [self._chunk(event.text, None)]
        if isinstance(event, ToolCallChunk):
            return []
        if isinstance(event, Finished):
            reason = _finish_reason(event.finish_reason, False)
            return [self._chunk("", reason), *self._usage(event)]
        assert_never(event)

    def _chunk(self, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._base, "model": self._model, "choices": [choice]}


def include_usage(body: Any) -> bool:
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


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
