"""Conversations for tests/chat_templates/test_renderer.py: plain data, no logic.

CONVERSATIONS must render exactly as the official templates render them (`basic`: no tools;
`tools`: tools, tool calls and tool results). REJECTED (`rejected`) lists input our templates
refuse with ChatTemplateError, because the official template either crashes on it or quietly
renders nonsense. `blocks` holds the tools and tool calls they are built from.
"""

from tests.support.conversations.basic import BASIC
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
from tests.support.conversations.model import (
    QWQ,
    R1,
    TEMPLATES,
    Conversation,
    Message,
    Rejected,
    Tool,
)
from tests.support.conversations.rejected import REJECTED
from tests.support.conversations.tools import TOOLS

CONVERSATIONS: list[Conversation] = [*BASIC, *TOOLS]

__all__ = [
    "CALL_BARE",
    "CALL_DICT_ARGS",
    "CALL_DICT_ARGS_UNICODE",
    "CALL_STRING_ARGS",
    "CALL_STRING_ARGS_2",
    "CALL_STRING_ARGS_3",
    "CONVERSATIONS",
    "QWQ",
    "R1",
    "REJECTED",
    "SEARCH_TOOL_BARE",
    "TEMPLATES",
    "WEATHER_TOOL",
    "Conversation",
    "Message",
    "Rejected",
    "Tool",
]
