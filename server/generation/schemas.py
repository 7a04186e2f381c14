"""Wire schemas of the two text-generation models, mirroring their published Workers AI schemas.

Each model accepts one of two forms (the JSON Schema `oneOf` of its page): `prompt` (+ `raw`) or
`messages`. Unknown fields are ignored, as Workers AI ignores them. `functions` is accepted here
and refused by the service with a clear error.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageUrl(_Wire):
    url: str


class ImagePart(_Wire):
    type: Literal["image_url"]
    image_url: ImageUrl


ContentPart = TextPart | ImagePart

Role = Literal["system", "user", "assistant", "tool"]


class Message(_Wire):
    """A message of `@cf/deepseek-ai/deepseek-r1-distill-qwen-32b`: content is a string."""

    role: Role
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class QwqMessage(_Wire):
    """A message of `@cf/qwen/qwq-32b`: content may also be a list of parts, or one part."""

    role: Role
    content: str | list[ContentPart] | ContentPart | None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = Field(default=None, pattern=r"[a-zA-Z0-9]{9}")


class Function(_Wire):
    name: str
    code: str


class ToolParameters(_Wire):
    type: str
    properties: dict[str, Any]
    required: list[str] | None = None


class FunctionTool(_Wire):
    """`{name, description, parameters}`, the first tool shape of the model pages."""

    name: str
    description: str
    parameters: ToolParameters


class WrappedTool(_Wire):
    """`{type: "function", function: {...}}`, the second tool shape (OpenAI's)."""

    type: str
    function: FunctionTool


_TOOLS = TypeAdapter(list[FunctionTool | WrappedTool])


class ResponseFormat(_Wire):
    """R1-distill's JSON mode. `json_schema` is a bare JSON Schema; OpenAI's wrapped form
    `{"name", "schema", "strict"}` is accepted too and unwrapped by the service."""

    type: Literal["json_object", "json_schema"]
    json_schema: Any = None


class RunOptions(_Wire):
    """Workers AI's request options. `rejectIfBusy`: answer 429 (code 3040) at once rather
    than wait for a running slot."""

    reject_if_busy: bool = Field(default=False, alias="rejectIfBusy")


class _Common(_Wire):
    """Fields both forms of both models share. Defaults and ranges are QwQ's."""

    raw: bool = False
    stream: bool = False
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.15, ge=0, le=5)
    top_p: float | None = Field(default=None, ge=0, le=2)
    top_k: int | None = Field(default=None, ge=1, le=50)
    seed: int | None = Field(default=None, ge=1, le=9999999999)
    repetition_penalty: float | None = Field(default=None, ge=0, le=2)
    frequency_penalty: float | None = Field(default=None, ge=0, le=2)
    presence_penalty: float | None = Field(default=None, ge=0, le=2)
    guided_json: dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    lora: str | None = None
    options: RunOptions = RunOptions()
    # Extensions (not on Workers AI): reason first, then apply the JSON grammar after
    # `</think>` (default from the model's config); return that reasoning in `result.reasoning`.
    json_after_reasoning: bool | None = None
    include_reasoning: bool = False


class _R1Ranges(_Common):
    """R1-distill's own defaults and ranges."""

    temperature: float = Field(default=0.6, ge=0, le=5)
    top_p: float | None = Field(default=None, ge=0.001, le=1)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)


class _PromptForm(_Wire):
    prompt: str = Field(min_length=1)


class _ChatForm(_Wire):
    tools: list[dict[str, Any]] | None = None
    functions: list[Function] | None = None

    @field_validator("tools")
    @classmethod
    def _tool_shapes(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        # Validate against the published shapes, but keep each tool exactly as sent: the chat
        # template renders it verbatim. The list is checked whole, so errors name the index.
        _TOOLS.validate_python(tools or [], strict=True)
        return tools


class QwqPrompt(_Common, _PromptForm):
    pass


class QwqMessages(_Common, _ChatForm):
    messages: list[QwqMessage]


class R1Prompt(_R1Ranges, _PromptForm):
    pass


class R1Messages(_R1Ranges, _ChatForm):
    messages: list[Message]


PromptInput = QwqPrompt | R1Prompt
MessagesInput = QwqMessages | R1Messages
TextGenerationInput = PromptInput | MessagesInput


class Usage(_Wire):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ToolCall(_Wire):
    name: str
    arguments: dict[str, Any]


class TextGenerationResult(_Wire):
    """`response` is the text, or in JSON mode the parsed JSON value."""

    response: Any
    tool_calls: list[ToolCall] = []
    usage: Usage
    reasoning: str | None = None
