"""One file of a LoRA adapter, checked on its own, before its partner is there.

    check_part(path, file_name, base, limits)

Uploads (Workers AI's finetune assets) arrive one file at a time. What one file tells on its own
is checked here, so that a wrong file is refused when it is sent rather than when its partner
arrives:

    adapter_config.json         JSON object, PEFT LoRA, rank within the limit, served target
                                modules, trained for this base model
    adapter_model.safetensors   a safetensors header (read with bounded reads; nothing is loaded
                                or unpickled), holding only lora_A / lora_B weights of the base
                                model's linear layers, with its layer count, sizes, and a rank
                                within the limit

The complete rules are `engine.adapter_format.validate_adapter`'s, applied to the pair once
both files are in. Every check here is one of those rules, so a file refused here could never
have completed a valid adapter.
"""

import json
import re
from pathlib import Path
from typing import Any, TypeGuard

from engine.adapter_format import (
    CONFIG_FILE,
    MAX_CONFIG_BYTES,
    WEIGHTS_FILE,
    AdapterInvalid,
    AdapterLimits,
    BaseModel,
    read_safetensors_header,
)

PART_NAMES = (CONFIG_FILE, WEIGHTS_FILE)

_TENSOR_NAME = re.compile(
    r"base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight"
)


def check_part(path: Path, file_name: str, base: BaseModel, limits: AdapterLimits) -> None:
    """Check the file at `path`, to be stored as `file_name` (one of PART_NAMES).

    Raises AdapterInvalid with a message a user can act on.
    """
    if file_name == CONFIG_FILE:
        check_config_file(path, base, limits)
    elif file_name == WEIGHTS_FILE:
        check_weights_file(path, base, limits)
    else:
        raise AdapterInvalid(
            f"{file_name!r} is not an adapter file (only {' and '.join(PART_NAMES)})"
        )


def check_config_file(path: Path, base: BaseModel, limits: AdapterLimits) -> None:
    config = _read_config(path)
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterInvalid(f'peft_type must be "LORA", got {config.get("peft_type")!r}')
    rank = config.get("r")
    if not _is_int(rank) or rank < 1:
        raise AdapterInvalid(f"r (the LoRA rank) must be a positive integer, got {rank!r}")
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict) or not all(_is_int(r) and r >= 1 for r in pattern.values()):
        raise AdapterInvalid("rank_pattern must map module names to positive integers")
    largest = max([rank, *pattern.values()])
    if largest > limits.max_rank:
        raise AdapterInvalid(f"rank {largest} is above the largest rank served ({limits.max_rank})")
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise AdapterInvalid("target_modules must be a non-empty list of module names")
    unknown = sorted(set(targets) - limits.target_modules)
    if unknown:
        allowed = ", ".join(sorted(limits.target_modules))
        raise AdapterInvalid(f"target_modules {unknown} are not served (allowed: {allowed})")
    base_name = config.get("base_model_name_or_path")
    if not isinstance(base_name, str) or not base_name:
        raise AdapterInvalid("base_model_name_or_path is missing: the base model is unknown")
    if not base.accepts(base_name):
        raise AdapterInvalid(
            f"the adapter was trained for {base_name!r}, not for {base.name} "
            f"(base_model_name_or_path must be one of {', '.join(sorted(base.accepted_names))})"
        )


def check_weights_file(path: Path, base: BaseModel, limits: AdapterLimits) -> None:
    header = read_safetensors_header(path)
    checkpoint = base.checkpoint
    linear = checkpoint.linear_shapes()
    ranks: dict[tuple[int, str], dict[str, int]] = {}
    for name, info in header.items():
        match = _TENSOR_NAME.fullmatch(name)
        if match is None or match[2] not in linear or match[2] not in limits.target_modules:
            raise AdapterInvalid(
                f"unexpected tensor {name}: only lora_A/lora_B weights of the decoder layers' "
                "served linear projections are accepted"
            )
        layer, module, matrix = int(match[1]), match[2], match[3]
        if layer >= checkpoint.num_layers:
            raise AdapterInvalid(
                f"tensor {name} is for layer {layer}, but {base.name} has "
                f"{checkpoint.num_layers} layers: was the adapter trained for another model?"
            )
        fan_in, fan_out = linear[module]
        shape: list[int] = info["shape"]  # a list of ints: read_safetensors_header checked
        if matrix == "A":
            rank = shape[0] if shape else 0
            expected = [rank, fan_in]
        else:
            rank = shape[-1] if shape else 0
            expected = [fan_out, rank]
        if shape != expected:
            raise AdapterInvalid(
                f"{name} has shape {shape}, but {base.name} needs {expected} (r = the rank): "
                "was the adapter trained for another base model?"
            )
        if not 1 <= rank <= limits.max_rank:
            raise AdapterInvalid(
                f"{name} has rank {rank}; ranks from 1 to {limits.max_rank} are served"
            )
        ranks.setdefault((layer, module), {})[matrix] = rank
    if not ranks:
        raise AdapterInvalid(f"{WEIGHTS_FILE} holds no LoRA weights")
    for (layer, module), pair in sorted(ranks.items()):
        if set(pair) != {"A", "B"}:
            raise AdapterInvalid(
                f"layers.{layer}.{module} has lora_{''.join(pair)} but not both lora_A and B"
            )
        if pair["A"] != pair["B"]:
            raise AdapterInvalid(
                f"layers.{layer}.{module} has lora_A of rank {pair['A']} but lora_B of "
                f"rank {pair['B']}"
            )


def _read_config(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise AdapterInvalid(f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AdapterInvalid(f"{CONFIG_FILE} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise AdapterInvalid(f"{CONFIG_FILE} must hold a JSON object")
    return config


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
