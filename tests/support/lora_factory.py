"""Real PEFT-format LoRA adapters for the tiny Qwen2 models, written without the `peft` package.

    write_adapter(folder, base_model="@cf/qwen/qwq-32b", rank=8, seed=1)

writes `adapter_config.json` and `adapter_model.safetensors` exactly as PEFT's `save_pretrained`
lays them out for a causal LM: tensors named
`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` ([r, in]) and
`...lora_B.weight` ([out, r]). PEFT initialises B to zero (a no-op adapter); here B is random
and large, so an adapter visibly changes greedy output. The dimensions are written down here,
independently of `engine.lora.store`, so that tests can catch a validator that reads them wrong.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.lora.format import LoraBase
from engine.types import CheckpointInfo

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Dims:
    """Linear-layer sizes of a Qwen2 decoder."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int

    def linear(self, module: str) -> tuple[int, int]:
        """(in_features, out_features) of one linear layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }[module]


TINY = Dims(hidden=128, intermediate=256, layers=2, heads=2, kv_heads=1, head_dim=64)
"""Both tiny checkpoints (`engine.builtin.tiny_models`)."""

QWEN25_32B = Dims(hidden=5120, intermediate=27648, layers=64, heads=40, kv_heads=8, head_dim=128)
"""QwQ-32B and DeepSeek-R1-Distill-Qwen-32B."""


TINY_CHECKPOINT = CheckpointInfo(
    source="/cache/tiny-qwq-32b-v1-abc",
    hidden_size=128,
    intermediate_size=256,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=64,
)


def tiny_base(model: str) -> LoraBase:
    """A tiny model served as `model`, built from the checkpoint `tiny-qwq-32b`."""
    names = {model, TINY_CHECKPOINT.source, "tiny-qwq-32b"}
    return LoraBase(name=model, accepted_names=frozenset(names), checkpoint=TINY_CHECKPOINT)


def tensor_name(layer: int, module: str, matrix: str) -> str:
    block = "self_attn" if module in ATTENTION else "mlp"
    return f"base_model.model.model.layers.{layer}.{block}.{module}.lora_{matrix}.weight"


def adapter_config(
    base_model: str, rank: int = 8, target_modules: tuple[str, ...] = ("q_proj", "v_proj")
) -> dict[str, Any]:
    """What PEFT 0.x writes for a plain LoRA on a causal LM (the fields vLLM reads, and more)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": list(target_modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "use_dora": False,
        "use_rslora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def write_adapter(
    folder: Path,
    *,
    base_model: str,
    rank: int = 8,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    dims: Dims = TINY,
    seed: int = 1,
    config_overrides: dict[str, Any] | None = None,
) -> Path:
    """Write a LoRA adapter into `folder` (created) and return the folder.

    The weights depend only on `seed`, `rank`, `target_modules` and `dims`.
    """
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {**adapter_config(base_model, rank, target_modules), **(config_overrides or {})}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    random = np.random.default_rng(seed)
    tensors: dict[str, Any] = {}
    for layer in range(dims.layers):
        for module in target_modules:
            fan_in, fan_out = dims.linear(module)
            # A ~ N(0, 1/in) keeps A x near unit size; B ~ N(0, 1) with scaling alpha/r = 2
            # then moves each projection by about as much as the base weights do.
            a = random.standard_normal((rank, fan_in)) / fan_in**0.5
            b = random.standard_normal((fan_out, rank))
            tensors[tensor_name(layer, module, "A")] = a.astype(np.float16)
            tensors[tensor_name(layer, module, "B")] = b.astype(np.float16)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder
