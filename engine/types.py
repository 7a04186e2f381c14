"""Plain data passed across the engine seam."""

from collections.abc import Mapping
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
    # Refuse (EngineBusyError) rather than wait when every running slot is taken.
    reject_if_busy: bool = False
    # Workers AI's `x-session-affinity`: requests of one session may share a prompt cache, so a
    # router in front of several replicas may send them to the same one.
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of generated output: new text and how many tokens produced it."""

    text: str
    token_count: int
    finish_reason: FinishReason | None = None


@dataclass(frozen=True, slots=True)
class SwapState:
    """Where a model of a swap group (`engine.swap`) stands, and its group's swaps so far."""

    group: str
    state: Literal["awake", "asleep", "waking"]
    swaps: int
    swap_seconds: float


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """The requests an engine holds now: running, and admitted but waiting for a running slot."""

    running_requests: int
    waiting_requests: int = 0
    # Requests it admits at once, running and waiting; past it new ones are refused (None: no
    # limit). The server refuses early, before preparing a request it could not admit.
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What `/health` and `/metrics` report for one engine: requests running now, and those
    admitted that wait for a running slot."""

    healthy: bool
    running_requests: int
    waiting_requests: int = 0
    detail: str = ""
    capacity: int | None = None  # as in EngineLoad
    swap: SwapState | None = None  # set for members of a swap group


@dataclass(frozen=True, slots=True)
class CheckpointTemplate:
    """The chat template a checkpoint ships with, and the special tokens it refers to."""

    source: str
    bos_token: str = ""
    eos_token: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """Where the served weights came from and the sizes of their decoder's linear layers:
    what a LoRA adapter must fit. `source` is the model id or local path the engine loaded."""

    source: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_hf_config(cls, source: str, config: Mapping[str, Any]) -> "CheckpointInfo":
        """Read a Hugging Face `config.json` of a Llama/Qwen2-style decoder."""
        heads = int(config["num_attention_heads"])
        head_dim = config.get("head_dim") or int(config["hidden_size"]) // heads
        return cls(
            source=source,
            hidden_size=int(config["hidden_size"]),
            intermediate_size=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(head_dim),
        )

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear layer of one decoder layer."""
        q = self.num_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        hidden, intermediate = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (hidden, q),
            "k_proj": (hidden, kv),
            "v_proj": (hidden, kv),
            "o_proj": (q, hidden),
            "gate_proj": (hidden, intermediate),
            "up_proj": (hidden, intermediate),
            "down_proj": (intermediate, hidden),
        }
