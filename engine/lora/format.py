"""The LoRA adapter format this server accepts, checked before any engine sees an adapter.

    validate_adapter(folder, base, limits) -> AdapterSummary
    check_config(config, base, limits) -> AdapterSummary     the rules of adapter_config.json
    check_tensors(header, base, limits, config)              those of adapter_model.safetensors

A folder must hold `adapter_config.json` (a PEFT LoRA config) and `adapter_model.safetensors`,
as Workers AI requires. Nothing is loaded or unpickled: the config is plain JSON, and the tensor
names, dtypes and shapes come from the safetensors header (an 8-byte little-endian length, then
that many bytes of JSON), read with bounded reads. A folder that passes loads in vLLM; one that
fails raises `AdapterMissingFiles` or `AdapterInvalid` with a message a user can act on.
Uploads check each file on arrival with the same two checks (`engine.lora.parts`).
"""

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from engine.types import CheckpointInfo

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE)

# Weight formats that torch loads with pickle, which can run code; never accepted.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

QWEN2_LINEAR_MODULES = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
)
_ATTENTION_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj"})

# PEFT initialisations that only seed the training weights: the saved adapter is a plain LoRA.
# The others (PiSSA, OLoRA, LoftQ, ...) also rewrite the base weights, which vLLM cannot follow.
_PLAIN_INITS = frozenset({"gaussian", "eva", "orthogonal", "mica", "lora_ga"})
# PEFT features vLLM does not implement; any truthy value refuses the adapter.
_UNSUPPORTED_FEATURES = {
    "use_dora": "DoRA",
    "lora_bias": "LoRA bias",
    "modules_to_save": "modules_to_save (fully trained extra modules)",
    "layer_replication": "layer_replication",
    "alora_invocation_tokens": "activated LoRA (aLoRA)",
    "use_qalora": "QALoRA",
    "use_bdlora": "block-diagonal LoRA",
}

MAX_CONFIG_BYTES = 1 << 20
MAX_HEADER_BYTES = 100 << 20  # the limit the safetensors library itself enforces
_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4}
# How PEFT's `save_pretrained` names a causal LM's decoder layers (see `tensor_name`).
_LAYERS_PREFIX = "base_model.model.model.layers."
_TENSOR_NAME = re.compile(
    re.escape(_LAYERS_PREFIX) + r"(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight"
)


class AdapterError(Exception):
    """A LoRA adapter cannot be used; the message says why."""


class AdapterMissingFiles(AdapterError):
    """A required file is absent from the adapter folder."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(f"missing {' and '.join(missing)}")


class AdapterInvalid(AdapterError):
    """The files are present but unsafe, malformed, or do not fit the base model."""


@dataclass(frozen=True, slots=True)
class AdapterLimits:
    """What the engine serves: the largest rank (its `max_lora_rank`) and the layers a LoRA
    may target."""

    max_rank: int = 32
    target_modules: frozenset[str] = QWEN2_LINEAR_MODULES


@dataclass(frozen=True, slots=True)
class LoraBase:
    """The model adapters are applied to. `accepted_names` are the values of
    `base_model_name_or_path` that name it (compared case-insensitively, and by last path
    segment, so `Qwen/QwQ-32B` and `/models/qwq-32b` both match `@cf/qwen/qwq-32b`)."""

    name: str
    accepted_names: frozenset[str]
    checkpoint: CheckpointInfo
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = {key for name in self.accepted_names for key in _name_keys(name)}
        object.__setattr__(self, "_keys", frozenset(keys))

    def accepts(self, name: str) -> bool:
        return not _name_keys(name).isdisjoint(self._keys)


def _name_keys(name: str) -> set[str]:
    full = name.strip().rstrip("/").lower()
    return {full, full.rsplit("/", 1)[-1]} - {""}


@dataclass(frozen=True, slots=True)
class AdapterSummary:
    """What an adapter's config declares: its rank `r`, the modules it targets, and whether
    every module has rank `r` (`uniform_rank`; False when a `rank_pattern` sets others)."""

    rank: int
    target_modules: tuple[str, ...]
    uniform_rank: bool = True


def tensor_name(layer: int, module: str, matrix: str) -> str:
    """PEFT's name of the lora_`matrix` ("A" or "B") weight of `module` in decoder layer
    `layer`, e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`."""
    return f"{_LAYERS_PREFIX}{layer}.{_block(module)}.{module}.lora_{matrix}.weight"


def _block(module: str) -> str:
    return "self_attn" if module in _ATTENTION_MODULES else "mlp"


def validate_adapter(folder: Path, base: LoraBase, limits: AdapterLimits) -> AdapterSummary:
    """Check an adapter folder against `base` and `limits`; raises AdapterError subclasses.

    Usable on any folder, e.g. an upload before it is moved into the store.
    """
    files = _file_names(folder)
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise AdapterMissingFiles(missing)
    pickles = sorted(name for name in files if name.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise AdapterInvalid(
            f"pickle-format weight files are not accepted ({', '.join(pickles)}); "
            f"only {WEIGHTS_FILE} is"
        )
    config = read_config(folder / CONFIG_FILE)
    summary = check_config(config, base, limits)
    check_tensors(read_safetensors_header(folder / WEIGHTS_FILE), base, limits, summary)
    return summary


def _file_names(folder: Path) -> set[str]:
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except OSError as error:
        raise AdapterInvalid(f"cannot read the adapter folder: {error.strerror}") from None


def read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise AdapterInvalid(f"cannot read {CONFIG_FILE}: {error.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise AdapterInvalid(f"{CONFIG_FILE} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AdapterInvalid(f"{CONFIG_FILE} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise AdapterInvalid(f"{CONFIG_FILE} must hold a JSON object")
    return config


def check_config(config: dict[str, Any], base: LoraBase, limits: AdapterLimits) -> AdapterSummary:
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterInvalid(f'peft_type must be "LORA", got {config.get("peft_type")!r}')
    rank = config.get("r")
    if not _is_int(rank) or rank < 1:
        raise AdapterInvalid(f"r (the LoRA rank) must be a positive integer, got {rank!r}")
    ranks = config.get("rank_pattern") or {}
    if not isinstance(ranks, dict) or not all(_is_int(r) and r >= 1 for r in ranks.values()):
        raise AdapterInvalid("rank_pattern must map module names to positive integers")
    largest = max([rank, *ranks.values()])
    if largest > limits.max_rank:
        raise AdapterInvalid(f"rank {largest} is above the largest rank served ({limits.max_rank})")
    alpha = config.get("lora_alpha")
    if not (_is_int(alpha) or isinstance(alpha, float)):
        raise AdapterInvalid(f"lora_alpha must be a number, got {alpha!r}")
    targets = config.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise AdapterInvalid("target_modules must be a non-empty list of module names")
    unknown = sorted(set(targets) - limits.target_modules)
    if unknown:
        allowed = ", ".join(sorted(limits.target_modules))
        raise AdapterInvalid(f"target_modules {unknown} are not served (allowed: {allowed})")
    if config.get("bias", "none") != "none":
        raise AdapterInvalid(f'bias must be "none", got {config.get("bias")!r}')
    for key, feature in _UNSUPPORTED_FEATURES.items():
        if config.get(key):
            raise AdapterInvalid(f"{feature} is not supported ({key} is set)")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in _PLAIN_INITS:
        raise AdapterInvalid(f"init_lora_weights {init!r} changes the base weights; unsupported")
    base_name = config.get("base_model_name_or_path")
    if not isinstance(base_name, str) or not base_name:
        raise AdapterInvalid("base_model_name_or_path is missing: the base model is unknown")
    if not base.accepts(base_name):
        raise AdapterInvalid(
            f"the adapter was trained for {base_name!r}, not for {base.name} "
            f"(base_model_name_or_path must be one of {', '.join(sorted(base.accepted_names))})"
        )
    return AdapterSummary(
        rank=rank, target_modules=tuple(sorted(set(targets))), uniform_rank=not ranks
    )


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked for consistency with the file size.

    Raises AdapterInvalid. Reads at most 8 + MAX_HEADER_BYTES bytes.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                raise AdapterInvalid(f"{WEIGHTS_FILE} is not a safetensors file")
            raw = handle.read(length)
    except OSError as error:
        raise AdapterInvalid(f"cannot read {WEIGHTS_FILE}: {error.strerror}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AdapterInvalid(f"{WEIGHTS_FILE} has a corrupt header") from None
    if not isinstance(header, dict):
        raise AdapterInvalid(f"{WEIGHTS_FILE} has a corrupt header")
    header.pop("__metadata__", None)
    data_size = size - 8 - length
    for name, info in header.items():
        _check_entry(name, info, data_size)
    return header


def _check_entry(name: str, info: Any, data_size: int) -> None:
    if not isinstance(info, dict):
        raise AdapterInvalid(f"{WEIGHTS_FILE}: corrupt entry for {name}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        allowed = ", ".join(_DTYPE_BYTES)
        raise AdapterInvalid(f"{WEIGHTS_FILE}: {name} has dtype {dtype!r} (allowed: {allowed})")
    if not (isinstance(shape, list) and all(_is_int(n) and n >= 0 for n in shape)):
        raise AdapterInvalid(f"{WEIGHTS_FILE}: corrupt shape for {name}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
        raise AdapterInvalid(f"{WEIGHTS_FILE}: corrupt offsets for {name}")
    start, end = offsets
    expected_bytes = math.prod(shape) * _DTYPE_BYTES[dtype]
    if not 0 <= start <= end <= data_size or end - start != expected_bytes:
        raise AdapterInvalid(f"{WEIGHTS_FILE} is truncated or corrupt (at {name})")


def check_tensors(
    header: dict[str, Any],
    base: LoraBase,
    limits: AdapterLimits,
    config: AdapterSummary | None = None,
) -> None:
    """Check the tensors of an adapter's weights file (its `header`, as `read_safetensors_header`
    returns it); raises AdapterInvalid. The one place these rules live: uploads check a weights
    file on its own with them (`engine.lora.parts`), `validate_adapter` the whole adapter.

    The file must hold lora_A and lora_B weights, both of each pair, of the served linear
    projections of `base`'s decoder layers only (attention ones in `self_attn`, MLP ones in
    `mlp`), shaped for `base`, of a rank from 1 to `limits.max_rank`. Given the adapter's
    `config`, the tensors must also be for its target modules, and of its rank `r` unless a
    rank_pattern sets others.
    """
    checkpoint = base.checkpoint
    linear = checkpoint.linear_shapes()
    shapes: dict[tuple[int, str], dict[str, list[int]]] = {}
    for name, info in header.items():
        match = _TENSOR_NAME.fullmatch(name)
        if match is None:
            raise AdapterInvalid(
                f"unexpected tensor {name}: only lora_A/lora_B weights of the decoder layers' "
                "served linear projections are accepted"
            )
        layer, block, module, matrix = int(match[1]), match[2], match[3], match[4]
        if module not in linear or block != _block(module):
            raise AdapterInvalid(f"unexpected tensor {name}: no such linear layer")
        if module not in limits.target_modules:
            allowed = ", ".join(sorted(limits.target_modules))
            raise AdapterInvalid(
                f"unexpected tensor {name}: {module} is not served (allowed: {allowed})"
            )
        if config is not None and module not in config.target_modules:
            raise AdapterInvalid(f"tensor {name} is for {module}, not in target_modules")
        if layer >= checkpoint.num_layers:
            raise AdapterInvalid(
                f"tensor {name} is for layer {layer}, but {base.name} has "
                f"{checkpoint.num_layers} layers: was the adapter trained for another model?"
            )
        # A list of ints: read_safetensors_header checked.
        shapes.setdefault((layer, module), {})[matrix] = info["shape"]
    if not shapes:
        raise AdapterInvalid(f"{WEIGHTS_FILE} holds no LoRA weights")
    for (layer, module), pair in sorted(shapes.items()):
        prefix = f"layers.{layer}.{module}"
        if set(pair) != {"A", "B"}:
            raise AdapterInvalid(f"{prefix} has lora_{''.join(pair)} but not both lora_A and B")
        fan_in, fan_out = linear[module]
        # The rank is lora_A's row count; lora_B must then agree with it.
        rank = pair["A"][0] if pair["A"] else 0
        expected = {"A": [rank, fan_in], "B": [fan_out, rank]}
        for matrix in ("A", "B"):
            if pair[matrix] != expected[matrix]:
                raise AdapterInvalid(
                    f"{prefix}.lora_{matrix} has shape {pair[matrix]}, but {base.name} needs "
                    f"{expected[matrix]}: was the adapter trained for another base model?"
                )
        if not 1 <= rank <= limits.max_rank:
            raise AdapterInvalid(
                f"{prefix} has rank {rank}; ranks from 1 to {limits.max_rank} are served"
            )
        if config is not None and config.uniform_rank and rank != config.rank:
            raise AdapterInvalid(f"{prefix} has rank {rank}, but the config says r={config.rank}")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
