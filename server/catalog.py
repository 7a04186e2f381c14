"""The Workers AI models this server can serve, with the facts their model pages publish."""

from dataclasses import dataclass

from server.schemas import QwqMessages, QwqPrompt, R1Messages, R1Prompt


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What Workers AI publishes about one text-generation model."""

    name: str
    context_window: int
    template: str
    prompt_schema: type[QwqPrompt] | type[R1Prompt]
    messages_schema: type[QwqMessages] | type[R1Messages]


QWQ_32B = ModelSpec(
    name="@cf/qwen/qwq-32b",
    context_window=24000,
    template="qwq-32b",
    prompt_schema=QwqPrompt,
    messages_schema=QwqMessages,
)

R1_DISTILL_QWEN_32B = ModelSpec(
    name="@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    context_window=80000,
    template="deepseek-r1-distill-qwen-32b",
    prompt_schema=R1Prompt,
    messages_schema=R1Messages,
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (QWQ_32B, R1_DISTILL_QWEN_32B)}
