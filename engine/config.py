"""How to build one engine: which checkpoint, and how the engine holds it."""

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

BuiltinCheckpoint = Literal[
    "smollm2-135m-instruct", "tiny-qwq-32b", "tiny-deepseek-r1-distill-qwen-32b"
]
"""Checkpoints this project makes itself on first use (see `engine.builtin.checkpoints`)."""

BUILTIN_CHECKPOINTS: tuple[BuiltinCheckpoint, ...] = get_args(BuiltinCheckpoint)


class EngineConfig(BaseModel):
    """Engine settings for one model. Exactly one of `checkpoint` and `builtin` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str | None = Field(
        default=None,
        description="Hugging Face model id or local directory of the weights.",
    )
    builtin: BuiltinCheckpoint | None = Field(
        default=None,
        description="A checkpoint prepared locally on first use, for CPU demos and tests.",
    )
    max_model_len: int = Field(gt=0, description="Longest sequence (prompt + output) served.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    quantization: Literal["fp8", "awq", "gptq"] | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    tensor_parallel_size: int = Field(default=1, ge=1)
    gpu_ids: list[int] | None = Field(
        default=None, description="GPUs this engine uses (CUDA_VISIBLE_DEVICES)."
    )
    gpu_memory_utilization: float = Field(default=0.92, gt=0, le=1)
    cpu_kv_cache_gib: float = Field(
        default=1.0, gt=0, description="KV cache size on the CPU build (VLLM_CPU_KVCACHE_SPACE)."
    )
    kv_cache_memory_bytes: int | None = Field(
        default=None,
        gt=0,
        description="KV cache size on a GPU, fixed instead of what gpu_memory_utilization "
        "leaves: engines that share a GPU then do not depend on their start order.",
    )
    max_num_seqs: int | None = Field(
        default=None, ge=1, description="Requests generated together (vLLM's default if unset)."
    )
    max_waiting_requests: int | None = Field(
        default=None,
        ge=0,
        description="Requests that may wait for a running slot; past it requests are refused "
        "with 429 (code 3040). Default: as many as run at once (max_num_seqs).",
    )
    enforce_eager: bool = False
    seed: int = 0
    structured_output_backend: Literal["guidance", "xgrammar"] = Field(
        default="guidance",
        description="Grammar backend for JSON mode. Fixed per engine so that runaway "
        "whitespace can be switched off (vLLM reads that only with an explicit backend).",
    )
    reasoning_parser: str | None = Field(
        default="deepseek_r1",
        description="How the engine finds the end of reasoning (`</think>`), so a grammar "
        "can start after it. `deepseek_r1` fits both QwQ and R1-distill.",
    )
    enable_lora: bool = False
    max_lora_rank: Literal[8, 16, 32, 64] = Field(
        default=32, description="Largest adapter rank served (Workers AI allows up to 32)."
    )
    max_loras: int = Field(default=2, ge=1, description="Adapters in one batch.")
    max_cpu_loras: int = Field(default=8, ge=1, description="Adapters kept loaded (LRU).")
    vllm_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Further vLLM engine arguments (names of vllm.EngineArgs, e.g. "
        "block_size, max_num_batched_tokens, speculative_config), passed as given. Checked "
        "against EngineArgs when the engine starts and by `workers-ai-local check`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> "EngineConfig":
        if (self.checkpoint is None) == (self.builtin is None):
            raise ValueError("set exactly one of 'checkpoint' (a model id or path) and 'builtin'")
        if self.max_cpu_loras < self.max_loras:
            raise ValueError("max_cpu_loras must be at least max_loras")
        if self.gpu_ids is not None and len(self.gpu_ids) < self.tensor_parallel_size:
            raise ValueError(
                f"tensor_parallel_size is {self.tensor_parallel_size} "
                f"but only {len(self.gpu_ids)} gpu_ids are listed"
            )
        return self


class SwapGroupConfig(BaseModel):
    """Models that share one GPU (or, on a CPU, one machine's memory) by taking turns: one is
    awake, the others wait asleep (vLLM sleep mode) or stopped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Shown in logs, /health and metrics, e.g. 'gpu0'.")
    models: list[str] = Field(min_length=2, description="Workers AI names of the members.")
    method: Literal["auto", "sleep", "restart"] = Field(
        default="auto",
        description="'sleep': vLLM sleep mode level 1 (weights to host memory; GPU only); "
        "'restart': stop one engine and start the other; 'auto': sleep on a GPU, restart on "
        "the CPU build.",
    )
    min_residency_s: float = Field(
        default=30,
        ge=0,
        description="A model woken for waiting requests stays awake at least this long while "
        "its own requests keep coming, before the group swaps back.",
    )
