"""The OpenAPI shapes of the OpenAI-compatible routes and the examples of the run routes.

The OpenAI bodies are translated into the model's native body, which is then validated by the
model's own schema (`server.openai_api.requests`); what is written here is what the translation
reads, and every other native field passes through under its own name.
"""

from collections.abc import Sequence
from typing import Any

Schema = dict[str, Any]

_TEXT_PART: Schema = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}

_COMMON: Schema = {
    "max_tokens": {"type": "integer", "minimum": 1, "default": 256},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 5},
    "top_p": {"type": "number", "minimum": 0, "maximum": 2},
    "seed": {"type": "integer", "minimum": 1, "maximum": 9999999999},
    "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
    "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
    "stream": {"type": "boolean", "default": False},
    "stream_options": {
        "type": "object",
        "properties": {"include_usage": {"type": "boolean"}},
    },
    "n": {"const": 1, "description": "Only one choice per request (other values: 5006)"},
    "lora": {"type": "string", "description": "A LoRA adapter's name or id"},
}


def chat_request(models: Sequence[str]) -> Schema:
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": {
                "anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}],
            },
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "tool_call_id": {"type": "string"},
        },
    }
    tool = {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                },
            },
        },
    }
    return {
        "type": "object",
        "description": "An OpenAI chat completion request, translated into the model's native "
        "body: ranges and defaults are the model's own. Other native fields pass through.",
        "required": ["model", "messages"],
        "properties": {
            "model": {"enum": list(models)},
            "messages": {"type": "array", "items": message},
            "tools": {"type": "array", "items": tool},
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["text", "json_object", "json_schema"]},
                    "json_schema": {"type": "object"},
                },
            },
            **_COMMON,
        },
    }


def completion_request(models: Sequence[str]) -> Schema:
    return {
        "type": "object",
        "description": "An OpenAI text completion request; the prompt is sent raw (no chat "
        "template). Other native fields pass through.",
        "required": ["model", "prompt"],
        "properties": {
            "model": {"enum": list(models)},
            "prompt": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "maxItems": 1,
                    },
                ]
            },
            **_COMMON,
        },
    }


_USAGE: Schema = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        name: {"type": "integer"} for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    },
}


def _completion(object_name: str, choice: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": object_name},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": choice},
            "usage": _USAGE,
        },
    }


_FINISH_REASON: Schema = {"enum": ["stop", "length", "tool_calls"]}

CHAT_COMPLETION = _completion(
    "chat.completion",
    {
        "type": "object",
        "required": ["index", "message", "finish_reason"],
        "properties": {
            "index": {"type": "integer"},
            "message": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"const": "assistant"},
                    "content": {"type": ["string", "null"]},
                    "reasoning_content": {"type": "string"},
                    "reasoning": {"type": "string"},
                    "tool_calls": {"type": "array", "items": {"type": "object"}},
                },
            },
            "finish_reason": _FINISH_REASON,
        },
    },
)

TEXT_COMPLETION = _completion(
    "text_completion",
    {
        "type": "object",
        "required": ["index", "text", "finish_reason"],
        "properties": {
            "index": {"type": "integer"},
            "text": {"type": "string"},
            "finish_reason": _FINISH_REASON,
        },
    },
)

MODEL_LIST: Schema = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "object", "created", "owned_by"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "model"},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string"},
                },
            },
        },
    },
}

RUN_EXAMPLES: Schema = {
    "messages": {
        "summary": "Chat messages",
        "value": {
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "temperature": 0,
        },
    },
    "prompt": {"summary": "A prompt", "value": {"prompt": "Tell me a joke", "max_tokens": 64}},
    "stream": {
        "summary": "Streamed (text/event-stream)",
        "value": {"prompt": "Tell me a joke", "stream": True},
    },
}

RUN_RESULT_EXAMPLE: Schema = {
    "result": {
        "response": "The user asks for the capital...</think>\n\nThe capital of France is Paris.",
        "tool_calls": [],
        "usage": {"prompt_tokens": 36, "completion_tokens": 8, "total_tokens": 44},
    },
    "success": True,
    "errors": [],
    "messages": [],
}

RUN_STREAM_EXAMPLE = (
    'data: {"response":"Why","p":"abcdefghij"}\n\n'
    'data: {"response":"","usage":{"prompt_tokens":12,"completion_tokens":31,'
    '"total_tokens":43}}\n\n'
    "data: [DONE]\n\n"
)

CHAT_EXAMPLE: Schema = {
    "model": "@cf/qwen/qwq-32b",
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 64,
}

CHAT_STREAM_EXAMPLE = (
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1748736000,'
    '"model":"@cf/qwen/qwq-32b","choices":[{"index":0,"delta":{"content":"Hi"},'
    '"logprobs":null,"finish_reason":null}]}\n\n'
    "data: [DONE]\n\n"
)
