"""Input our templates refuse with a clear ChatTemplateError, because the official template
either crashes on it or quietly renders nonsense."""

from tests.support.conversations.blocks import (
    CALL_BARE,
    CALL_DICT_ARGS,
    CALL_STRING_ARGS,
    WEATHER_TOOL,
)
from tests.support.conversations.model import QWQ, R1, Rejected

REJECTED: list[Rejected] = [
    # QwQ: the official template crashes.
    Rejected(
        "qwq_user_content_null",
        QWQ,
        "crashes",
        [{"role": "user", "content": None}],
        "messages[0].content must be a string, not null.",
    ),
    Rejected(
        "qwq_user_content_number",
        QWQ,
        "crashes",
        [{"role": "user", "content": 42}],
        "messages[0].content must be a string.",
    ),
    Rejected(
        "qwq_system_content_null",
        QWQ,
        "crashes",
        [{"role": "system", "content": None}, {"role": "user", "content": "Hi"}],
        "messages[0].content must be a string, not null.",
    ),
    Rejected(
        "qwq_later_system_content_null",
        QWQ,
        "crashes",
        [{"role": "user", "content": "Hi"}, {"role": "system", "content": None}],
        "messages[1].content must be a string, not null.",
    ),
    Rejected(
        "qwq_tool_call_turn_content_null_not_last",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "content": "Sunny"},
        ],
        'messages[1].content must be a string, not null. Use "" for a tool-call turn',
    ),
    Rejected(
        "qwq_assistant_content_null_last",
        QWQ,
        "crashes",
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}],
        "messages[1].content must be a string, not null.",
    ),
    Rejected(
        "qwq_assistant_content_missing_not_last",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant"},
            {"role": "user", "content": "Hello?"},
        ],
        "messages[1].content must be a string.",
    ),
    Rejected(
        "qwq_tool_call_arguments_missing",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]},
        ],
        "messages[1].tool_calls[0].function.arguments is missing.",
    ),
    Rejected(
        "qwq_tool_call_function_null",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": None}]},
        ],
        "messages[1].tool_calls[0].function must be an object",
    ),
    Rejected(
        "qwq_tool_calls_object",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": CALL_STRING_ARGS},
        ],
        "messages[1].tool_calls must be a list of tool calls.",
    ),
    Rejected(
        "qwq_tool_call_not_object",
        QWQ,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": ["get_weather"]},
        ],
        "messages[1].tool_calls[0] must be an object.",
    ),
    # QwQ: the official template renders nonsense.
    Rejected(
        "qwq_unknown_role",
        QWQ,
        "nonsense",
        [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
        'messages[0] has role "developer"; this model accepts system, user, assistant and tool.',
    ),
    Rejected(
        "qwq_role_missing",
        QWQ,
        "nonsense",
        [{"role": "user", "content": "Hi"}, {"content": "who am I?"}],
        "messages[1] has no role.",
    ),
    Rejected(
        "qwq_tools_system_content_null",
        QWQ,
        "nonsense",
        [{"role": "system", "content": None}, {"role": "user", "content": "Hi"}],
        "messages[0].content must be a string, not null.",
        tools=[WEATHER_TOOL],
    ),
    Rejected(
        "qwq_tool_result_content_null",
        QWQ,
        "nonsense",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL_STRING_ARGS]},
            {"role": "tool", "content": None},
        ],
        "messages[2].content must be a string, not null.",
    ),
    Rejected(
        "qwq_tool_call_name_missing",
        QWQ,
        "nonsense",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": "{}"}}]},
        ],
        "messages[1].tool_calls[0].function.name must be a string.",
    ),
    # R1: the official template crashes.
    Rejected(
        "r1_tool_call_arguments_object",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_DICT_ARGS]},
        ],
        "messages[1].tool_calls[0].function.arguments must be a string. "
        "This model takes the arguments as a JSON-encoded string.",
    ),
    Rejected(
        "r1_tool_calls_null",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": None},
        ],
        "messages[1].tool_calls must be a list of tool calls when content is null.",
    ),
    Rejected(
        "r1_tool_calls_string",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": "f"},
        ],
        "messages[1].tool_calls must be a list of tool calls when content is null.",
    ),
    Rejected(
        "r1_tool_call_type_missing",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
            },
        ],
        'messages[1].tool_calls[0].type must be a string. Use "function".',
    ),
    Rejected(
        "r1_tool_call_bare_shape",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "function", **CALL_BARE}],
            },
        ],
        "messages[1].tool_calls[0].function must be an object with a name and arguments.",
    ),
    Rejected(
        "r1_tool_call_name_missing",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}],
            },
        ],
        "messages[1].tool_calls[0].function.name must be a string.",
    ),
    Rejected(
        "r1_tool_call_not_object",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": [7]},
        ],
        "messages[1].tool_calls[0] must be an object.",
    ),
    Rejected(
        "r1_user_content_null",
        R1,
        "crashes",
        [{"role": "user", "content": None}],
        "messages[0].content must be a string, not null.",
    ),
    Rejected(
        "r1_tool_result_content_null",
        R1,
        "crashes",
        [{"role": "user", "content": "Hi"}, {"role": "tool", "content": None}],
        "messages[1].content must be a string, not null.",
    ),
    Rejected(
        "r1_answer_after_tool_content_missing",
        R1,
        "crashes",
        [
            {"role": "user", "content": "Hi"},
            {"role": "tool", "content": "result"},
            {"role": "assistant"},
        ],
        "messages[2].content must be a string.",
    ),
    # R1: the official template renders nonsense.
    Rejected(
        "r1_unknown_role",
        R1,
        "nonsense",
        [{"role": "user", "content": "Hi"}, {"role": "function", "content": "42"}],
        'messages[1] has role "function"; this model accepts system, user, assistant and tool.',
    ),
    Rejected(
        "r1_role_missing",
        R1,
        "nonsense",
        [{"content": "Hi"}],
        "messages[0] has no role.",
    ),
    Rejected(
        "r1_system_content_null",
        R1,
        "nonsense",
        [{"role": "system", "content": None}, {"role": "user", "content": "Hi"}],
        "messages[0].content must be a string, not null.",
    ),
    Rejected(
        "r1_assistant_content_null_without_tool_calls",
        R1,
        "nonsense",
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}],
        "messages[1] has neither content nor tool calls.",
    ),
    Rejected(
        "r1_assistant_content_null_empty_tool_calls",
        R1,
        "nonsense",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
        "messages[1] has neither content nor tool calls.",
    ),
]
