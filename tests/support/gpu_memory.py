"""Memory model of QwQ-32B and DeepSeek-R1-Distill-Qwen-32B (both Qwen2.5-32B) on one GPU.

What one engine needs, in GiB, from the architecture: its weights (bf16, fp8 or 4-bit AWQ), the
LoRA slots vLLM reserves at startup, and the KV cache of `max_model_len` tokens. vLLM measures
the rest (activations, sampler, CUDA graphs) in its profiling run: `RUNTIME_RESERVE_GIB` is an
estimate for an engine that leaves its batch to vLLM, `runtime_gib` one for an engine whose
profile bounds it (`max_num_seqs`, `vllm_args.max_num_batched_tokens`).

Engines that take turns on one GPU (a swap group, vLLM sleep mode level 1) also need what a
sleeping engine keeps on the GPU (`asleep_gib`) and the pinned host memory its weights move to
(`pinned_host_gib`). No GPU here: these are the numbers a device check must confirm.
"""

import math

import pytest

from engine.config import EngineConfig

GIB = 1 << 30
GB = 10**9
PARAMS = 32.8e9
VOCAB = 152064
# embed_tokens and lm_head (untied, 152064 x 5120 each) stay in the activation dtype under fp8
# and AWQ.
EMBEDDING_PARAMS = 2 * VOCAB * 5120
# KV cache per token: layers x KV heads x head_dim x (K and V) x bytes = 256 KiB bf16, 128 KiB fp8.
LAYERS, KV_HEADS, HEAD_DIM = 64, 8, 128
HIDDEN, INTERMEDIATE, HEADS = 5120, 27648, 40
# vLLM allocates the KV cache in blocks of 16 tokens and keeps one block back (the null block).
BLOCK_TOKENS = 16
# LoRA: vLLM reserves `max_loras` slots of `max_lora_rank` on every linear layer at startup,
# A [rank, in] and B [out, rank] in the activation dtype. Inputs + outputs of one layer's 7:
Q, KV = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
LORA_FEATURES_PER_LAYER = (
    (HIDDEN + Q) + 2 * (HIDDEN + KV) + (Q + HIDDEN)  # q, k, v, o
    + 2 * (HIDDEN + INTERMEDIATE) + (INTERMEDIATE + HIDDEN)  # gate, up, down
)  # fmt: skip
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# AWQ (AutoAWQ GEMM, 4 bits, group size 128, zero points): per weight of a linear layer half a
# byte, plus one fp16 scale and one 4-bit zero per 128 weights. 31.2 B x 0.52 + 1.6 B x 2 bytes
# = 19.35 GB, the size of the published checkpoints' safetensors shards.
AWQ_BYTES_PER_WEIGHT = 0.5 + 2 / 128 + 0.5 / 128
# Activations, sampler and CUDA graphs: vLLM measures them in its profiling run; an estimate.
RUNTIME_RESERVE_GIB = 4.0

# Batch limits of an in-process vLLM 0.32 engine that sets none: UsageContext.ENGINE_CONTEXT has
# no entry in EngineArgs.get_batch_defaults, so SchedulerConfig's defaults apply (chunked
# prefill is on for these models).
DEFAULT_MAX_NUM_BATCHED_TOKENS, DEFAULT_MAX_NUM_SEQS = 2048, 128
# The profiling run's forward pass over max_num_batched_tokens tokens, everything one layer
# holds at once counted: residual, hidden, normed and attention output (4 x hidden), qkv,
# gate_up (2 x intermediate) and its activation (intermediate). 216 KiB a token in bf16.
ACTIVATION_VALUES_PER_TOKEN = 4 * HIDDEN + (Q + 2 * KV) + 3 * INTERMEDIATE
# The sampler's copies of one sequence's logits: bf16 and fp32 logits, probabilities, the
# sorted values and int64 indices of top-p/top-k, a cumulative sum: about 32 bytes a logit.
SAMPLER_BYTES_PER_LOGIT = 32
# CUDA graphs of the decode batch sizes (vLLM 0.32 measures them and takes them from the
# budget); none with enforce_eager.
CUDA_GRAPHS_GIB = 1.0
# cuBLAS workspaces, the attention backend's workspace, the Marlin workspace, allocator slack.
FIXED_RUNTIME_GIB = 0.75
# Each engine process's CUDA context: outside vLLM's budget, paid per process.
CUDA_CONTEXT_GIB = 0.5
# Sleep mode level 1 (vllm/device_allocator/sleep_mode_backend.py) backs up the weights and the
# CUDA-graph pool to pinned host memory and drops the KV cache. A sleeping text model keeps
# its CUDA context and 2-3 % of its footprint (allocator reservations): vLLM's multi-tenant
# sleep-mode guide (docs/features/sleep_mode_multi_tenant.md) measured that for generate
# models. 3 % is taken.
SLEEP_LEFTOVER_FRACTION = 0.03
# The same guide: leave 10-15 % of each GPU free when engines share it (CUDA contexts,
# unanticipated peaks, residue that grows over sleep cycles).
SWAP_HEADROOM = 0.10


def weight_gib(engine: EngineConfig) -> float:
    activation_bytes = DTYPE_BYTES[engine.dtype]
    linear = PARAMS - EMBEDDING_PARAMS
    embeddings = EMBEDDING_PARAMS * activation_bytes
    if engine.quantization is None:
        return PARAMS * activation_bytes / GIB
    if engine.quantization == "fp8":
        return (linear * 1 + embeddings) / GIB
    if engine.quantization == "awq":
        return (linear * AWQ_BYTES_PER_WEIGHT + embeddings) / GIB
    pytest.fail(f"no memory model for quantization {engine.quantization!r}: add one here")


def lora_gib(engine: EngineConfig) -> float:
    if not engine.enable_lora:
        return 0.0
    slots = engine.max_loras * engine.max_lora_rank * LAYERS * LORA_FEATURES_PER_LAYER
    return slots * DTYPE_BYTES[engine.dtype] / GIB


def kv_bytes_per_token(engine: EngineConfig) -> int:
    element = 1 if engine.kv_cache_dtype == "fp8" else DTYPE_BYTES[engine.dtype]
    return LAYERS * KV_HEADS * HEAD_DIM * 2 * element


def kv_gib(engine: EngineConfig) -> float:
    """The KV cache one full-length sequence needs: its blocks, plus vLLM's null block."""
    blocks = math.ceil(engine.max_model_len / BLOCK_TOKENS) + 1
    return blocks * BLOCK_TOKENS * kv_bytes_per_token(engine) / GIB


def kv_tokens(engine: EngineConfig) -> int:
    """Tokens the fixed KV cache (`kv_cache_memory_bytes`) holds, shared by all requests."""
    assert engine.kv_cache_memory_bytes is not None, "the engine sets no fixed KV cache"
    return engine.kv_cache_memory_bytes // kv_bytes_per_token(engine)


def max_num_batched_tokens(engine: EngineConfig) -> int:
    return int(engine.vllm_args.get("max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS))


def runtime_gib(engine: EngineConfig) -> float:
    """What vLLM's profiling run takes besides weights, LoRA slots and the KV cache."""
    activation_bytes = DTYPE_BYTES[engine.dtype]
    activations = max_num_batched_tokens(engine) * ACTIVATION_VALUES_PER_TOKEN * activation_bytes
    sampler = (engine.max_num_seqs or DEFAULT_MAX_NUM_SEQS) * VOCAB * SAMPLER_BYTES_PER_LOGIT
    graphs = 0.0 if engine.enforce_eager else CUDA_GRAPHS_GIB
    return (activations + sampler) / GIB + graphs + FIXED_RUNTIME_GIB


def device_gib(engine: EngineConfig) -> float:
    """What an awake engine with a fixed KV cache allocates on its GPU (its budget)."""
    assert engine.kv_cache_memory_bytes is not None, "the engine sets no fixed KV cache"
    kv_cache = engine.kv_cache_memory_bytes / GIB
    return weight_gib(engine) + runtime_gib(engine) + lora_gib(engine) + kv_cache


def awake_gib(engine: EngineConfig) -> float:
    return CUDA_CONTEXT_GIB + device_gib(engine)


def asleep_gib(engine: EngineConfig) -> float:
    """What a sleeping engine (sleep mode level 1) keeps on its GPU."""
    return CUDA_CONTEXT_GIB + SLEEP_LEFTOVER_FRACTION * device_gib(engine)


def pinned_host_gib(engine: EngineConfig) -> float:
    """Pinned host memory a sleeping engine holds: its weights and its CUDA-graph pool."""
    graphs = 0.0 if engine.enforce_eager else CUDA_GRAPHS_GIB
    return weight_gib(engine) + graphs
