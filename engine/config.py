"""How to build one engine: which checkpoint, and how the engine holds it."""

from typing import Literal, get_args

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
