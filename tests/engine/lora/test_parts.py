"""`engine.lora.parts`: one adapter file checked on its own, by the very checks that
`engine.lora.format` applies to the pair, so an upload and a load refuse a file alike."""

import json
import pickle
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.lora.format import (
    AdapterInvalid,
    AdapterLimits,
    check_tensors,
    read_safetensors_header,
    validate_adapter,
)
from engine.lora.parts import check_part
from tests.support.lora_factory import QWEN25_32B, QWQ, TINY, tensor_name, tiny_base, write_adapter

BASE = tiny_base(QWQ)
LIMITS = AdapterLimits(max_rank=32)
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

Damage = Callable[[Path], None]


def adapter(tmp_path: Path, **options: Any) -> Path:
    return write_adapter(tmp_path / "adapter", base_model=QWQ, **options)


def config_with(**changes: Any) -> Damage:
    def damage(folder: Path) -> None:
        path = folder / CONFIG
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return damage


def config_bytes(content: bytes) -> Damage:
    def damage(folder: Path) -> None:
        (folder / CONFIG).write_bytes(content)

    return damage


def weights_of(**options: Any) -> Damage:
    """Weights of another adapter (`write_adapter` options) in place of the good ones."""

    def damage(folder: Path) -> None:
        other = write_adapter(folder.parent / "other", base_model=QWQ, **options)
        (folder / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())

    return damage


def weights_bytes(content: bytes) -> Damage:
    def damage(folder: Path) -> None:
        (folder / WEIGHTS).write_bytes(content)

    return damage


def weights_edited(edit: Callable[[dict[str, Any]], None]) -> Damage:
    def damage(folder: Path) -> None:
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(folder / WEIGHTS))
        edit(tensors)
        save_file(tensors, str(folder / WEIGHTS))

    return damage


def _zeros(*shape: int) -> Any:
    import numpy as np

    return np.zeros(shape, dtype="float16")


def _drop_b(tensors: dict[str, Any]) -> None:
    del tensors[tensor_name(1, "v_proj", "B")]


def _lm_head(tensors: dict[str, Any]) -> None:
    tensors["base_model.model.lm_head.lora_A.weight"] = _zeros(8, 128)


def _unequal_ranks(tensors: dict[str, Any]) -> None:
    tensors[tensor_name(0, "q_proj", "B")] = _zeros(128, 4)


def _attention_in_mlp(tensors: dict[str, Any]) -> None:
    for matrix in ("A", "B"):
        name = tensor_name(0, "q_proj", matrix)
        tensors[name.replace("self_attn", "mlp")] = tensors.pop(name)


BAD_TENSORS = [
    pytest.param(
        weights_of(rank=64),
        r"layers\.0\.q_proj has rank 64; ranks from 1 to 32 are served",
        id="rank-64",
    ),
    pytest.param(
        weights_of(dims=replace(QWEN25_32B, layers=2)),
        r"has shape \[8, 5120\], but @cf/qwen/qwq-32b needs \[8, 128\]",
        id="32b-shapes",
    ),
    pytest.param(weights_of(dims=replace(TINY, kv_heads=2)), r"\[64, 8\]", id="kv-heads"),
    pytest.param(weights_of(dims=replace(TINY, layers=3)), "is for layer 2", id="layers"),
    pytest.param(weights_edited(_drop_b), "but not both lora_A and B", id="a-without-b"),
    pytest.param(weights_edited(_lm_head), "unexpected tensor", id="lm-head"),
    pytest.param(
        weights_edited(_attention_in_mlp),
        r"unexpected tensor base_model\.model\.model\.layers\.0\.mlp\.q_proj\.lora_[AB]\.weight: "
        "no such linear layer",
        id="attention-in-mlp",
    ),
    pytest.param(
        weights_edited(_unequal_ranks),
        r"layers\.0\.q_proj\.lora_B has shape \[128, 4\], but @cf/qwen/qwq-32b needs \[128, 8\]",
        id="a-b-ranks",
    ),
    pytest.param(weights_edited(dict.clear), "no LoRA weights", id="none"),
]  # fmt: skip
"""Weights files with a valid header whose tensors break a rule of `check_tensors`."""

REFUSED = [
    pytest.param(CONFIG, config_with(peft_type="IA3"), 'peft_type must be "LORA"', id="not-lora"),
    pytest.param(CONFIG, config_with(r=64), r"rank 64 is above .*\(32\)", id="rank-64"),
    pytest.param(CONFIG, config_with(r=0), "positive integer", id="rank-0"),
    pytest.param(CONFIG, config_with(r=True), "positive integer", id="rank-bool"),
    pytest.param(CONFIG, config_with(rank_pattern={"q_proj": 33}), "rank 33", id="pattern-33"),
    pytest.param(CONFIG, config_with(rank_pattern=[8]), "rank_pattern", id="pattern-list"),
    pytest.param(CONFIG, config_with(target_modules="all-linear"), "non-empty", id="targets-str"),
    pytest.param(CONFIG, config_with(target_modules=["lm_head"]), "are not served", id="lm-head"),
    pytest.param(CONFIG, config_with(base_model_name_or_path=""), "is unknown", id="no-base"),
    pytest.param(
        CONFIG,
        config_with(base_model_name_or_path="meta-llama/Llama-2-7b-chat-hf"),
        "trained for 'meta-llama/Llama-2-7b-chat-hf', not for @cf/qwen/qwq-32b",
        id="other-base",
    ),
    pytest.param(CONFIG, config_bytes(b"{not json"), "not valid JSON", id="not-json"),
    pytest.param(CONFIG, config_bytes(b"[1, 2]"), "must hold a JSON object", id="not-object"),
    pytest.param(CONFIG, config_bytes(b"{" + b" " * (1 << 20) + b"}"), "larger than", id="huge"),
    pytest.param(WEIGHTS, weights_bytes(pickle.dumps({"w": 1})), "not a safetensors", id="pickle"),
    pytest.param(WEIGHTS, weights_bytes(b""), "not a safetensors", id="empty"),
    *(pytest.param(WEIGHTS, *case.values, id=case.id) for case in BAD_TENSORS),
]  # fmt: skip


@pytest.mark.parametrize("options", [{}, {"rank": 32, "target_modules": ALL_LINEAR}, {"rank": 1}])
@pytest.mark.parametrize("file_name", [CONFIG, WEIGHTS])
def test_the_files_of_a_good_adapter_pass(
    tmp_path: Path, file_name: str, options: dict[str, Any]
) -> None:
    check_part(adapter(tmp_path, **options) / file_name, file_name, BASE, LIMITS)


@pytest.mark.parametrize(("file_name", "damage", "message"), REFUSED)
def test_a_bad_file_is_refused_on_its_own(
    tmp_path: Path, file_name: str, damage: Damage, message: str
) -> None:
    folder = adapter(tmp_path)
    damage(folder)

    with pytest.raises(AdapterInvalid, match=message):
        check_part(folder / file_name, file_name, BASE, LIMITS)


def refusal(check: Callable[[], object]) -> str:
    """The message `check` is refused with."""
    with pytest.raises(AdapterInvalid) as caught:
        check()
    return str(caught.value)


@pytest.mark.parametrize(("file_name", "damage", "message"), REFUSED)
def test_what_is_refused_on_upload_is_refused_on_load_with_the_same_message(
    tmp_path: Path, file_name: str, damage: Damage, message: str
) -> None:
    folder = adapter(tmp_path)
    damage(folder)

    on_upload = refusal(lambda: check_part(folder / file_name, file_name, BASE, LIMITS))
    on_load = refusal(lambda: validate_adapter(folder, BASE, LIMITS))

    assert re.search(message, on_upload)
    assert on_load == on_upload


@pytest.mark.parametrize(("damage", "message"), BAD_TENSORS)
def test_upload_and_load_refuse_bad_tensors_through_check_tensors(
    tmp_path: Path, damage: Damage, message: str
) -> None:
    folder = adapter(tmp_path)
    damage(folder)
    header = read_safetensors_header(folder / WEIGHTS)

    rule = refusal(lambda: check_tensors(header, BASE, LIMITS))

    assert re.search(message, rule)
    assert refusal(lambda: check_part(folder / WEIGHTS, WEIGHTS, BASE, LIMITS)) == rule
    assert refusal(lambda: validate_adapter(folder, BASE, LIMITS)) == rule


def test_weights_for_a_module_the_engine_does_not_serve_are_refused(tmp_path: Path) -> None:
    limits = replace(LIMITS, target_modules=frozenset({"q_proj"}))
    weights = adapter(tmp_path) / WEIGHTS  # q_proj and v_proj

    with pytest.raises(AdapterInvalid) as caught:
        check_part(weights, WEIGHTS, BASE, limits)

    assert str(caught.value) == (
        f"unexpected tensor {tensor_name(0, 'v_proj', 'A')}: v_proj is not served (allowed: q_proj)"
    )


def test_files_that_pass_alone_may_still_not_fit_together(tmp_path: Path) -> None:
    folder = adapter(tmp_path, rank=8)
    weights_of(rank=16)(folder)

    for file_name in (CONFIG, WEIGHTS):
        check_part(folder / file_name, file_name, BASE, LIMITS)
    with pytest.raises(AdapterInvalid, match="but the config says r=8"):
        validate_adapter(folder, BASE, LIMITS)


@pytest.mark.parametrize(
    "file_name", ["adapter_model.bin", "config.json", "../adapter_config.json"]
)
def test_only_the_two_adapter_files_are_parts(tmp_path: Path, file_name: str) -> None:
    with pytest.raises(AdapterInvalid, match="is not an adapter file"):
        check_part(adapter(tmp_path) / CONFIG, file_name, BASE, LIMITS)
