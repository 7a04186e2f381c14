"""Plain data passed across the engine seam."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """Constrain the output with a grammar. Exactly one of the three is set.

    `regex` is not reachable from the wire; it lets tests force a known output.
    With `after_reasoning`, the model reasons freely and the grammar applies after `</think>`.
    """

    json_schema: dict[str, Any] | None = None
    json_object: bool = False
    regex: str | None = None
    after_reasoning: bool = False


@dataclass(frozen=True, slots=True)
class Adapter:
    """A validated LoRA adapter on disk; `id` is stable for the life of the engine."""

    name: str
    id: int
    path: Path


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters in Workers AI terms, already range-checked by the wire schema.

    `None` means "not set by the request": the engine falls back to the checkpoint's own
    generation defaults, then to its built-in defaults.
    """

    max_tokens: int
    temperature: float
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    structured: StructuredOutput | None = None
    adapter: Adapter | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of generated output: new text and how many tokens produced it."""

    text: str
    token_count: int
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What `/health` reports for one engine."""

    healthy: bool
    running_requests: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointTemplate:
    """The chat template a checkpoint ships with, and the special tokens it refers to."""

    source: str
    bos_token: str = ""
    eos_token: str = ""
