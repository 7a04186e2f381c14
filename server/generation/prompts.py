"""The text a model sees: a raw prompt, or the conversation through its chat template."""

from typing import Any

from chat_templates import ChatTemplate, ChatTemplateError
from server.errors import BadInput
from server.generation.schemas import ImagePart, MessagesInput, PromptInput, QwqMessage, TextPart

THINK_OPEN = "<think>"


def render_prompt(template: ChatTemplate, request: PromptInput | MessagesInput) -> str:
    """The raw prompt (`raw: true`), else the messages (or the prompt as one user turn),
    rendered with the model's chat template and its generation prompt."""
    tools = None
    if isinstance(request, PromptInput):
        if request.raw:
            return request.prompt
        messages: list[dict[str, Any]] = [{"role": "user", "content": request.prompt}]
    else:
        messages = [_message_dict(message, index) for index, message in enumerate(request.messages)]
        tools = request.tools or None
    try:
        return template.render(messages, tools=tools, add_generation_prompt=True)
    except ChatTemplateError as error:
        raise BadInput(str(error)) from None


def opens_reasoning(prompt: str) -> bool:
    """True when the prompt ends inside an opened `<think>` block, as both models' templates do."""
    return prompt.rstrip().endswith(THINK_OPEN)


def _message_dict(message: Any, index: int) -> dict[str, Any]:
    content = message.content
    if isinstance(message, QwqMessage):
        content = _flatten_parts(content, index)
    result: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls is not None:
        result["tool_calls"] = message.tool_calls
    if message.tool_call_id is not None:
        result["tool_call_id"] = message.tool_call_id
    return result


def _flatten_parts(content: Any, index: int) -> str | None:
    if content is None or isinstance(content, str):
        return content
    parts = [content] if isinstance(content, TextPart | ImagePart) else content
    texts: list[str] = []
    for position, part in enumerate(parts):
        if isinstance(part, ImagePart):
            raise BadInput(
                f"'/messages/{index}/content/{position}' is an image; this model takes text only"
            )
        texts.append(part.text)
    return "\n".join(texts)
