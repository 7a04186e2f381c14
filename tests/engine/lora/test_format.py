"""`engine.lora.format`: which adapter folders pass, and why the others do not."""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.lora.format import (
    AdapterInvalid,
    AdapterLimits,
    AdapterMissingFiles,
    AdapterSummary,
    read_safetensors_header,
    validate_adapter,
)
from engine.lora.format import tensor_name as peft_tensor_name
from tests.support.lora_factory import (
    QWEN25_32B,
    QWQ,
    TINY,
    Dims,
    tensor_name,
    tiny_base,
    write_adapter,
)

BASE = tiny_base(QWQ)
LIMITS = AdapterLimits(max_rank=32)
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def adapter(tmp_path: Path, **options: Any) -> Path:
    return write_adapter(tmp_path / "adapter", base_model=QWQ, **options)


def edit_config(folder: Path, **changes: Any) -> None:
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def replace_weights(folder: Path, tensors: dict[str, Any]) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / "adapter_model.safetensors"))


def zeros(*shape: int, dtype: str = "float16") -> Any:
    import numpy as np

    return np.zeros(shape, dtype=dtype)


def test_a_peft_lora_for_the_base_model_passes(tmp_path: Path) -> None:
    folder = adapter(tmp_path, rank=16, target_modules=ALL_LINEAR)

    summary = validate_adapter(folder, BASE, LIMITS)

    assert summary == AdapterSummary(rank=16, target_modules=tuple(sorted(ALL_LINEAR)))


@pytest.mark.parametrize("rank", [1, 8, 32])
def test_ranks_up_to_the_limit_pass(tmp_path: Path, rank: int) -> None:
    assert validate_adapter(adapter(tmp_path, rank=rank), BASE, LIMITS).rank == rank


def test_other_files_beside_the_two_are_ignored(tmp_path: Path) -> None:
    folder = adapter(tmp_path)
    (folder / "README.md").write_text("trained on pirate talk")

    validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "removed",
    [
        ["adapter_config.json"],
        ["adapter_model.safetensors"],
        ["adapter_model.safetensors", "adapter_config.json"],
    ],
    ids=["config", "weights", "both"],
)
def test_missing_files_are_named(tmp_path: Path, removed: list[str]) -> None:
    folder = adapter(tmp_path)
    for name in removed:
        (folder / name).unlink()

    with pytest.raises(AdapterMissingFiles) as caught:
        validate_adapter(folder, BASE, LIMITS)

    assert caught.value.missing == removed


def test_a_directory_named_like_a_required_file_is_missing(tmp_path: Path) -> None:
    folder = adapter(tmp_path)
    (folder / "adapter_config.json").unlink()
    (folder / "adapter_config.json").mkdir()

    with pytest.raises(AdapterMissingFiles):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "name", ["adapter_model.bin", "adapter_model.pt", "x.pth", "x.pkl", "x.ckpt", "X.BIN"]
)
def test_pickle_weight_files_are_refused(tmp_path: Path, name: str) -> None:
    folder = adapter(tmp_path)
    (folder / name).write_bytes(b"\x80\x04K\x01.")  # a pickle

    with pytest.raises(AdapterInvalid, match=f"pickle-format weight files.*{name}"):
        validate_adapter(folder, BASE, LIMITS)


ConfigCase = dict[str, Any]

CONFIG_REFUSALS = [
    pytest.param({"peft_type": "PREFIX_TUNING"}, "peft_type must be", id="not-lora"),
    pytest.param({"r": 64}, r"rank 64 is above the largest rank served \(32\)", id="rank-64"),
    pytest.param({"r": 0}, "positive integer", id="rank-0"),
    pytest.param({"r": "8"}, "positive integer", id="rank-string"),
    pytest.param({"rank_pattern": {"q_proj": 64}}, "rank 64 is above", id="rank-pattern-64"),
    pytest.param({"lora_alpha": None}, "lora_alpha must be a number", id="no-alpha"),
    pytest.param({"target_modules": "all-linear"}, "non-empty list", id="targets-string"),
    pytest.param({"target_modules": []}, "non-empty list", id="targets-empty"),
    pytest.param({"target_modules": ["q_proj", "lm_head"]}, r"\['lm_head'\]", id="lm-head"),
    pytest.param({"target_modules": ["embed_tokens"]}, "are not served", id="embeddings"),
    pytest.param({"use_dora": True}, "DoRA", id="dora"),
    pytest.param({"bias": "all"}, 'bias must be "none"', id="bias"),
    pytest.param({"lora_bias": True}, "LoRA bias", id="lora-bias"),
    pytest.param({"modules_to_save": ["lm_head"]}, "modules_to_save", id="modules-to-save"),
    pytest.param({"init_lora_weights": "pissa"}, "changes the base weights", id="pissa"),
    pytest.param({"base_model_name_or_path": None}, "base model is unknown", id="no-base"),
    pytest.param(
        {"base_model_name_or_path": "meta-llama/Llama-2-7b-chat-hf"},
        "trained for 'meta-llama/Llama-2-7b-chat-hf', not for @cf/qwen/qwq-32b",
        id="wrong-base",
    ),
    pytest.param(
        {"base_model_name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"},
        "not for @cf/qwen/qwq-32b",
        id="other-served-model",
    ),
]


@pytest.mark.parametrize(("changes", "message"), CONFIG_REFUSALS)
def test_unusable_configs_are_refused(tmp_path: Path, changes: ConfigCase, message: str) -> None:
    folder = adapter(tmp_path)
    edit_config(folder, **changes)

    with pytest.raises(AdapterInvalid, match=message):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", "\xff\xfe"], ids=["syntax", "not-object", "not-utf8"]
)
def test_unreadable_configs_are_refused(tmp_path: Path, content: str) -> None:
    folder = adapter(tmp_path)
    (folder / "adapter_config.json").write_bytes(content.encode("latin-1"))

    with pytest.raises(AdapterInvalid, match=r"adapter_config\.json"):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "name",
    [
        "@cf/qwen/qwq-32b",
        "@CF/Qwen/QwQ-32B",
        "Qwen/QwQ-32B",  # the upstream model: same last segment as the Workers AI name
        "/models/qwq-32b/",
        "tiny-qwq-32b",
        "/cache/tiny-qwq-32b-v1-abc",
        "/elsewhere/TINY-QWQ-32B-V1-ABC",
    ],
)
def test_base_model_names_match_without_case_and_by_last_path_segment(
    tmp_path: Path, name: str
) -> None:
    folder = adapter(tmp_path)
    edit_config(folder, base_model_name_or_path=name)

    validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        (replace(QWEN25_32B, layers=2), r"has shape \[8, 5120\], but .* needs \[8, 128\]"),
        (replace(TINY, kv_heads=2), r"v_proj.lora_B has shape \[128, 8\]"),
        (replace(TINY, layers=3), "is for layer 2, but @cf/qwen/qwq-32b has 2 layers"),
    ],
    ids=["32b-shapes", "more-kv-heads", "more-layers"],
)
def test_weights_for_another_architecture_are_refused(
    tmp_path: Path, dims: Dims, message: str
) -> None:
    folder = adapter(tmp_path, dims=dims)

    with pytest.raises(AdapterInvalid, match=message):
        validate_adapter(folder, BASE, LIMITS)


def test_mlp_shapes_are_checked_too(tmp_path: Path) -> None:
    folder = adapter(tmp_path, target_modules=("down_proj",), dims=replace(TINY, intermediate=512))

    with pytest.raises(AdapterInvalid, match=r"down_proj.lora_A has shape \[8, 512\]"):
        validate_adapter(folder, BASE, LIMITS)


TensorEdit = Callable[[dict[str, Any]], None]


def _drop_b(tensors: dict[str, Any]) -> None:
    del tensors[tensor_name(1, "v_proj", "B")]


def _add(name: str, value: Any) -> TensorEdit:
    def edit(tensors: dict[str, Any]) -> None:
        tensors[name] = value

    return edit


def _rank_4(tensors: dict[str, Any]) -> None:
    tensors[tensor_name(0, "q_proj", "A")] = zeros(4, 128)
    tensors[tensor_name(0, "q_proj", "B")] = zeros(128, 4)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_b, "layers.1.v_proj has lora_A but not both"),
        (_add("base_model.model.lm_head.lora_A.weight", zeros(8, 128)), "unexpected tensor"),
        (_add("base_model.model.model.embed_tokens.lora_embedding_A", zeros(8, 10)), "unexpected"),
        (_add(tensor_name(0, "k_proj", "A"), zeros(8, 128)), "for k_proj, not in target_modules"),
        (_add(tensor_name(0, "q_proj", "A").replace("self_attn", "mlp"), zeros(8, 128)), "no such"),
        (_rank_4, "rank 4, but the config says r=8"),
        (_add(tensor_name(0, "q_proj", "A"), zeros(8, 128, dtype="float64")), "dtype 'F64'"),
        (_add(tensor_name(0, "q_proj", "A"), zeros(8, 128, dtype="int64")), "dtype 'I64'"),
    ],
    ids=["a-without-b", "lm-head", "embeddings", "untargeted", "wrong-block", "rank", "f64", "i64"],
)
def test_unexpected_tensors_are_refused(tmp_path: Path, edit: TensorEdit, message: str) -> None:
    from safetensors.numpy import load_file

    folder = adapter(tmp_path)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    edit(tensors)
    replace_weights(folder, tensors)

    with pytest.raises(AdapterInvalid, match=message):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize("module", ALL_LINEAR)
@pytest.mark.parametrize(("layer", "matrix"), [(0, "A"), (1, "B"), (63, "A")])
def test_tensor_names_are_the_ones_peft_writes(layer: int, module: str, matrix: str) -> None:
    assert peft_tensor_name(layer, module, matrix) == tensor_name(layer, module, matrix)


def test_a_file_without_tensors_is_refused(tmp_path: Path) -> None:
    folder = adapter(tmp_path)
    replace_weights(folder, {})

    with pytest.raises(AdapterInvalid, match="holds no LoRA weights"):
        validate_adapter(folder, BASE, LIMITS)


def test_rank_pattern_allows_other_ranks_per_module(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    folder = adapter(tmp_path)
    edit_config(folder, rank_pattern={"q_proj": 4})
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    _rank_4(tensors)
    replace_weights(folder, tensors)

    validate_adapter(folder, BASE, LIMITS)


def test_a_truncated_weights_file_is_refused(tmp_path: Path) -> None:
    folder = adapter(tmp_path)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])

    with pytest.raises(AdapterInvalid, match="truncated or corrupt"):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x01\x02",
        (1 << 62).to_bytes(8, "little") + b"{}",
        (4).to_bytes(8, "little") + b"{x}!",
        (2).to_bytes(8, "little") + b"[]",
        b"PK\x03\x04" + bytes(100),  # a zip (torch.save's format) renamed
    ],
    ids=["empty", "short", "huge-header", "bad-json", "not-object", "zip"],
)
def test_files_that_are_not_safetensors_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(content)

    with pytest.raises(AdapterInvalid, match=r"adapter_model\.safetensors"):
        read_safetensors_header(path)


def test_the_header_is_read_without_loading_the_weights(tmp_path: Path) -> None:
    folder = adapter(tmp_path)

    header = read_safetensors_header(folder / "adapter_model.safetensors")

    assert header[tensor_name(0, "q_proj", "A")]["shape"] == [8, 128]
    assert header[tensor_name(1, "v_proj", "B")]["shape"] == [64, 8]
