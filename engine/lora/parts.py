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

The complete rules are `engine.lora.format.validate_adapter`'s, applied to the pair once
both files are in. The config is checked by the very same function (`check_config`); the weights
check is the subset of those rules one file can answer, so a file refused here could never have
completed a valid adapter.
"""

import re
from pathlib import Path

from engine.lora.format import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterInvalid,
    AdapterLimits,
    BaseModel,
    check_config,
    read_config,
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
    check_config(read_config(path), base, limits)


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
