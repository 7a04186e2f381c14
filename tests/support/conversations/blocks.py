"""Tools and tool calls the conversations are built from, in every shape clients send."""

from typing import Any

from tests.support.conversations.model import Tool

WEATHER_TOOL: Tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

# The bare shape Workers AI documents: no {"type": "function", "function": ...} wrapper.
SEARCH_TOOL_BARE: Tool = {
    "name": "search",
    "description": "Search the web for <b>pages</b> & 'snippets' — résumé, 東京, 🔎.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
        "required": ["query"],
    },
}

CALL_STRING_ARGS: dict[str, Any] = {
    "id": "call_abc123",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
}
CALL_STRING_ARGS_2: dict[str, Any] = {
    "id": "call_def456",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "東京"}'},
}
CALL_STRING_ARGS_3: dict[str, Any] = {
    "id": "call_ghi789",
    "type": "function",
    "function": {"name": "search", "arguments": '{"query": "weather \\"today\\""}'},
}
CALL_DICT_ARGS: dict[str, Any] = {
    "id": "call_jkl012",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
}
CALL_DICT_ARGS_UNICODE: dict[str, Any] = {
    "id": "call_mno345",
    "type": "function",
    "function": {
        "name": "search",
        "arguments": {"query": "東京 天気 ☀️", "filters": {"lang": ["ja", "en"], "safe": True}},
    },
}
CALL_BARE: dict[str, Any] = {"name": "get_weather", "arguments": {"city": "Zürich"}}
