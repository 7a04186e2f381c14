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
both files are in. Each file is checked by the very same function the pair is (`check_config`,
`check_tensors`), only without what the other file says, so a file refused here could never
have completed a valid adapter, with the same message either way.
"""

from pathlib import Path

from engine.lora.format import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterInvalid,
    AdapterLimits,
    LoraBase,
    check_config,
    check_tensors,
    read_config,
    read_safetensors_header,
)

PART_NAMES = (CONFIG_FILE, WEIGHTS_FILE)


def check_part(path: Path, file_name: str, base: LoraBase, limits: AdapterLimits) -> None:
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


def check_config_file(path: Path, base: LoraBase, limits: AdapterLimits) -> None:
    check_config(read_config(path), base, limits)


def check_weights_file(path: Path, base: LoraBase, limits: AdapterLimits) -> None:
    check_tensors(read_safetensors_header(path), base, limits)
