"""Conversations with tools, tool calls and tool results that both templates must render as
the official ones do, or refuse where the official one crashes (`official_crashes`)."""

from tests.support.conversations.blocks import (
    CALL_BARE,
    CALL_DICT_ARGS,
    CALL_DICT_ARGS_UNICODE,
    CALL_STRING_ARGS,
    CALL_STRING_ARGS_2,
    CALL_STRING_ARGS_3,
    SEARCH_TOOL_BARE,
    WEATHER_TOOL,
)
from tests.support.conversations.model import QWQ, R1, Conversation

TOOLS: list[Conversation] = [
    Conversation(
        "qwq_tools_wrapped_with_system",
        [
            {"role": "system", "content": "You can check the weather."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        tools=[WEATHER_TOOL],
    ),
    Conversation(
        "qwq_tools_bare_without_system",
        [{"role": "user", "content": "Search for cats."}],
        tools=[SEARCH_TOOL_BARE],
    ),
    Conversation(
        "qwq_tools_both_shapes_system_not_first",
        [
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Tools are available."},
            {"role": "user", "content": "Weather in Tokyo?"},
        ],
        tools=[WEATHER_TOOL, SEARCH_TOOL_BARE],
        add_generation_prompt=False,
    ),
    Conversation(
        "tools_empty_list",
        [{"role": "system", "content": "No tools."}, {"role": "user", "content": "Hi"}],
        tools=[],
    ),
    Conversation(
        "tool_call_string_arguments_last",
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS]},
        ],
        tools=[WEATHER_TOOL],
        add_generation_prompt=False,
    ),
    Conversation(
        "tool_call_dict_arguments_last",
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_DICT_ARGS]},
        ],
        tools=[WEATHER_TOOL],
        add_generation_prompt=False,
        official_crashes=frozenset({R1}),
    ),
    Conversation(
        "tool_call_dict_arguments_unicode_nested_last",
        [
            {"role": "user", "content": "東京の天気を検索して"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [CALL_DICT_ARGS_UNICODE, CALL_STRING_ARGS],
            },
        ],
        tools=[SEARCH_TOOL_BARE, WEATHER_TOOL],
        official_crashes=frozenset({R1}),
    ),
    Conversation(
        "tool_call_with_text_last",
        [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "<think>\nI should call the tool.\n</think>\n\nChecking.",
                "tool_calls": [CALL_STRING_ARGS],
            },
        ],
        add_generation_prompt=False,
    ),
    Conversation(
        "tool_round_trip_empty_content",
        [
            {"role": "system", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL_DICT_ARGS]},
            {
                "role": "tool",
                "tool_call_id": "call_jkl012",
                "content": '{"temp": 21, "unit": "°C"}',
            },
            {"role": "assistant", "content": "<think>\n21 degrees.\n</think>\n\nIt is 21 °C."},
            {"role": "user", "content": "Thanks"},
        ],
        tools=[WEATHER_TOOL],
    ),
    Conversation(
        "tool_round_trip_null_content",
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": "Sunny, 21 °C"},
            {"role": "assistant", "content": "<think>\nSunny.\n</think>\n\nIt is sunny."},
            {"role": "user", "content": "And tomorrow?"},
        ],
        official_crashes=frozenset({QWQ}),
    ),
    Conversation(
        "tool_result_last_null_content_call",
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "content": "Sunny"},
        ],
        official_crashes=frozenset({QWQ}),
    ),
    Conversation(
        "consecutive_tool_results",
        [
            {"role": "user", "content": "Weather in Paris and Tokyo?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [CALL_STRING_ARGS, CALL_STRING_ARGS_2],
            },
            {"role": "tool", "tool_call_id": "call_abc123", "content": "Paris: 21 °C"},
            {"role": "tool", "tool_call_id": "call_def456", "content": "東京: 18 °C"},
            {"role": "assistant", "content": "Paris 21 °C, Tokyo 18 °C."},
            {"role": "user", "content": "Great."},
        ],
        tools=[WEATHER_TOOL],
    ),
    Conversation(
        "r1_parallel_calls",
        [
            {"role": "user", "content": "Weather in Paris and Tokyo, and search."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [CALL_STRING_ARGS, CALL_STRING_ARGS_2, CALL_STRING_ARGS_3],
            },
            {"role": "tool", "content": "Paris: 21 °C"},
            {"role": "tool", "content": "東京: 18 °C"},
            {"role": "tool", "content": "No results"},
            {"role": "assistant", "content": "<think>\nkept here\n</think>\n\nDone."},
            {"role": "user", "content": "Thanks"},
        ],
        official_crashes=frozenset({QWQ}),
    ),
    Conversation(
        "r1_two_tool_rounds",
        [
            {"role": "system", "content": "Be helpful."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "content": "Sunny"},
            {"role": "assistant", "content": "It is sunny."},
            {"role": "user", "content": "And in Tokyo?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS_2]},
            {"role": "tool", "content": "Rainy"},
            {"role": "assistant", "content": "It is rainy."},
            {"role": "user", "content": "Thanks"},
        ],
        official_crashes=frozenset({QWQ}),
    ),
    Conversation(
        "tool_call_bare_shape",
        [
            {"role": "user", "content": "Weather in Zürich?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL_BARE]},
            {"role": "tool", "content": "Snow"},
            {"role": "user", "content": "Brr."},
        ],
        tools=[SEARCH_TOOL_BARE],
    ),
    Conversation(
        "tool_call_reasoning_only_content",
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "<think>\nOnly reasoning, no text.\n</think>",
                "tool_calls": [CALL_DICT_ARGS],
            },
            {"role": "tool", "content": "Cloudy"},
            {"role": "assistant", "content": "Cloudy."},
        ],
        add_generation_prompt=False,
    ),
    Conversation(
        "tool_result_last_with_generation_prompt",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "content": '{"temp": 21}'},
            {"role": "tool", "content": "second result\nwith lines"},
        ],
    ),
    Conversation(
        "tool_result_first",
        [
            {"role": "tool", "content": "orphan result"},
            {"role": "user", "content": "What was that?"},
        ],
    ),
    Conversation(
        "tool_calls_empty_list",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello", "tool_calls": []},
            {"role": "user", "content": "Bye"},
        ],
    ),
    Conversation(
        "tool_calls_null",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "tool_calls": None},
            {"role": "user", "content": "Bye"},
        ],
    ),
    Conversation(
        "tools_passed_to_r1_are_ignored",
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "Weather?"},
        ],
        tools=[WEATHER_TOOL, SEARCH_TOOL_BARE],
        add_generation_prompt=False,
    ),
]
