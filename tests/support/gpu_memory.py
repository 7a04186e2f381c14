"""Memory model of QwQ-32B and DeepSeek-R1-Distill-Qwen-32B (both Qwen2.5-32B) on one GPU.

What one engine needs, in GiB, from the architecture: its weights, the LoRA slots vLLM reserves
at startup, and the KV cache of `max_model_len` tokens. vLLM measures the rest (activations,
sampler, CUDA graphs) in its profiling run; `RUNTIME_RESERVE_GIB` is an estimate of it.
"""

import pytest

from engine.config import EngineConfig

GIB = 1 << 30
PARAMS = 32.8e9
# embed_tokens and lm_head (untied, 152064 x 5120 each) stay in the activation dtype under fp8.
EMBEDDING_PARAMS = 2 * 152064 * 5120
# KV cache per token: layers x KV heads x head_dim x (K and V) x bytes = 256 KiB bf16, 128 KiB fp8.
LAYERS, KV_HEADS, HEAD_DIM = 64, 8, 128
HIDDEN, INTERMEDIATE, HEADS = 5120, 27648, 40
# LoRA: vLLM reserves `max_loras` slots of `max_lora_rank` on every linear layer at startup,
# A [rank, in] and B [out, rank] in the activation dtype. Inputs + outputs of one layer's 7:
Q, KV = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
LORA_FEATURES_PER_LAYER = (
    (HIDDEN + Q) + 2 * (HIDDEN + KV) + (Q + HIDDEN)  # q, k, v, o
    + 2 * (HIDDEN + INTERMEDIATE) + (INTERMEDIATE + HIDDEN)  # gate, up, down
)  # fmt: skip
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Activations, sampler and CUDA graphs: vLLM measures them in its profiling run; an estimate.
RUNTIME_RESERVE_GIB = 4.0


def weight_gib(engine: EngineConfig) -> float:
    activation_bytes = DTYPE_BYTES[engine.dtype]
    if engine.quantization is None:
        return PARAMS * activation_bytes / GIB
    if engine.quantization == "fp8":
        return ((PARAMS - EMBEDDING_PARAMS) * 1 + EMBEDDING_PARAMS * activation_bytes) / GIB
    pytest.fail(f"no memory model for quantization {engine.quantization!r}: add one here")


def lora_gib(engine: EngineConfig) -> float:
    if not engine.enable_lora:
        return 0.0
    slots = engine.max_loras * engine.max_lora_rank * LAYERS * LORA_FEATURES_PER_LAYER
    return slots * DTYPE_BYTES[engine.dtype] / GIB


def kv_gib(engine: EngineConfig) -> float:
    element = 1 if engine.kv_cache_dtype == "fp8" else DTYPE_BYTES[engine.dtype]
    return engine.max_model_len * LAYERS * KV_HEADS * HEAD_DIM * 2 * element / GIB
