"""The Workers AI models this server can serve, with the facts their model pages publish."""

from dataclasses import dataclass

from server.generation.schemas import QwqMessages, QwqPrompt, R1Messages, R1Prompt


@dataclass(frozen=True, slots=True)
class Task:
    """A Workers AI task, as its model catalog names it."""

    id: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Price:
    """One line of a model's unit pricing, as the catalog's `price` property lists it."""

    unit: str
    price: float
    currency: str = "USD"


TEXT_GENERATION = Task(
    id="c329a1f9-323d-4e91-b2aa-582dd4188d34",
    name="Text Generation",
    description="Family of generative text models, such as large language models (LLM), "
    "that can be adapted for a variety of natural language tasks.",
)


@dataclass(frozen=True, slots=True)
class ToolHistory:
    """How the model's chat template renders an earlier assistant turn that called tools.

    `arguments_as_object`: the template encodes each call's `arguments` itself (QwQ's
    `arguments | tojson`), so JSON text sent by OpenAI clients is decoded first; otherwise it
    prints them as sent (R1's template wants the JSON text).
    `content_required`: the template needs string content on such a turn (QwQ); otherwise it
    renders the calls only when content is null (R1).
    """

    arguments_as_object: bool
    content_required: bool


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What Workers AI publishes about one text-generation model.

    `id`, `description`, `created_at`, `task`, `price`, `reasoning` and `terms` are the model's
    catalog entry on Workers AI (`/ai/models/search`), verbatim. `template` names the model's
    chat template in `chat_templates/`; what the server must know about that template's
    behaviour is stated here (`tool_history`), never inferred from its name.
    """

    name: str
    context_window: int
    template: str
    prompt_schema: type[QwqPrompt] | type[R1Prompt]
    messages_schema: type[QwqMessages] | type[R1Messages]
    id: str
    description: str
    created_at: str
    price: tuple[Price, ...]
    tool_history: ToolHistory
    task: Task = TEXT_GENERATION
    reasoning: bool = False
    terms: str | None = None

    @property
    def author(self) -> str:
        """The vendor segment of the name: `qwen` for `@cf/qwen/qwq-32b`."""
        parts = self.name.split("/")
        return parts[1] if len(parts) > 2 else ""


QWQ_32B = ModelSpec(
    name="@cf/qwen/qwq-32b",
    context_window=24000,
    template="qwq-32b",
    prompt_schema=QwqPrompt,
    messages_schema=QwqMessages,
    id="02c16efa-29f5-4304-8e6c-3d188889f875",
    description="QwQ is the reasoning model of the Qwen series. Compared with conventional "
    "instruction-tuned models, QwQ, which is capable of thinking and reasoning, can achieve "
    "significantly enhanced performance in downstream tasks, especially hard problems. QwQ-32B "
    "is the medium-sized reasoning model, which is capable of achieving competitive performance "
    "against state-of-the-art reasoning models, e.g., DeepSeek-R1, o1-mini.",
    created_at="2025-03-05 21:52:40.974",
    price=(Price("per M input tokens", 0.66), Price("per M output tokens", 1)),
    tool_history=ToolHistory(arguments_as_object=True, content_required=True),
)

R1_DISTILL_QWEN_32B = ModelSpec(
    name="@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
    context_window=80000,
    template="deepseek-r1-distill-qwen-32b",
    prompt_schema=R1Prompt,
    messages_schema=R1Messages,
    id="ad01ab83-baf8-4e7b-8fed-a0a219d4eb45",
    description="DeepSeek-R1-Distill-Qwen-32B is a model distilled from DeepSeek-R1 based on "
    "Qwen2.5. It outperforms OpenAI-o1-mini across various benchmarks, achieving new "
    "state-of-the-art results for dense models.",
    created_at="2025-01-22 19:48:55.776",
    price=(Price("per M input tokens", 0.497), Price("per M output tokens", 4.881)),
    tool_history=ToolHistory(arguments_as_object=False, content_required=False),
    reasoning=True,
    terms="https://github.com/deepseek-ai/DeepSeek-R1/blob/main/LICENSE",
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (QWQ_32B, R1_DISTILL_QWEN_32B)}
