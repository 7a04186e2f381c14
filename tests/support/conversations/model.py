"""The shapes of the conversation data: what a case is, and the two templates it runs on."""

from dataclasses import dataclass
from typing import Any, Literal

# Messages, tools and tool calls are JSON-shaped client data.
Message = dict[str, Any]
Tool = dict[str, Any]

QWQ = "qwq-32b"
R1 = "deepseek-r1-distill-qwen-32b"
TEMPLATES = (QWQ, R1)


@dataclass(frozen=True)
class Conversation:
    """Rendered by both templates; ours must match the official output byte for byte.

    `official_crashes` names the templates whose official version raises on this input
    (ours must then raise ChatTemplateError instead).
    """

    id: str
    messages: list[Message]
    tools: list[Tool] | None = None
    add_generation_prompt: bool = True
    official_crashes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rejected:
    """Input our `template` rejects with a ChatTemplateError containing `error`.

    `official` says what the official template does with it: "crashes" (raises) or
    "nonsense" (renders, but drops a message or prints "None").
    """

    id: str
    template: str
    official: Literal["crashes", "nonsense"]
    messages: list[Message]
    error: str
    tools: list[Tool] | None = None
