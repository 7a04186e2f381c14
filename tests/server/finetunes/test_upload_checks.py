"""What a finetune asset must be, checked on arrival: one of the two adapter files by name,
safetensors weights, a LoRA config for the finetune's model, and a partner that matches. A
refused file leaves nothing behind."""

import json
import pickle
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.app import QWQ
from tests.support.envelopes import assert_error
from tests.support.finetunes_api import (
    CONFIG,
    FILES,
    WEIGHTS,
    adapter_files,
    leftovers,
    published,
    run_with,
    staged,
    upload,
)
from tests.support.lora_factory import QWEN25_32B, TINY, adapter_config

WRONG_NAMES = [
    pytest.param("adapter_model.bin", id="pickle-weights"),
    pytest.param("adapter_model.pt", id="torch"),
    pytest.param("config.json", id="old-name"),
    pytest.param("../adapter_config.json", id="parent"),
    pytest.param("../../cf-qwen-qwq-32b/evil/adapter_config.json", id="into-the-store"),
    pytest.param("/tmp/adapter_config.json", id="absolute"),
    pytest.param("adapter/../adapter_config.json", id="dot-dot-inside"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("file_name", WRONG_NAMES)
def test_only_the_two_adapter_files_are_accepted(
    client: TestClient, adapters_dir: Path, files: dict[str, bytes], finetune: str, file_name: str
) -> None:
    response = upload(client, finetune, file_name, files[CONFIG])

    assert_error(response, 400, 5006, "is not accepted (only adapter_config.json and")
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []
    assert {path.name for path in adapters_dir.iterdir()} == {".finetunes"}


def _safetensors(header: dict[str, Any], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


NOT_SAFETENSORS = [
    pytest.param(pickle.dumps({"weight": [1.0, 2.0]}), "not a safetensors file", id="pickle"),
    pytest.param(b"PK\x03\x04" + b"\x00" * 64, "not a safetensors file", id="torch-zip"),
    pytest.param(b"", "not a safetensors file", id="empty"),
    pytest.param(b"hello, world", "not a safetensors file", id="text"),
    pytest.param(struct.pack("<Q", 2) + b"[]", "corrupt header", id="header-not-object"),
    pytest.param(
        _safetensors({"w": {"dtype": "F16", "shape": [8, 128], "data_offsets": [0, 2048]}}),
        "truncated or corrupt",
        id="truncated",
    ),
]


@pytest.mark.parametrize(("content", "fragment"), NOT_SAFETENSORS)
def test_weights_must_be_safetensors(
    client: TestClient, adapters_dir: Path, finetune: str, content: bytes, fragment: str
) -> None:
    response = upload(client, finetune, WEIGHTS, content)

    assert_error(response, 400, 5006, "Finetune pirate cannot be used", fragment)
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []


BAD_CONFIGS = [
    pytest.param({"r": 64}, "rank 64 is above the largest rank served (32)", id="rank-64"),
    pytest.param({"rank_pattern": {"q_proj": 48}}, "rank 48 is above", id="rank-pattern-48"),
    pytest.param(
        {"base_model_name_or_path": "meta-llama/Llama-3-8B"}, "trained for", id="other-base"
    ),
    pytest.param({"base_model_name_or_path": None}, "base model is unknown", id="no-base"),
    pytest.param({"peft_type": "IA3"}, 'peft_type must be "LORA"', id="not-lora"),
    pytest.param({"target_modules": ["lm_head"]}, "are not served", id="lm-head"),
]


@pytest.mark.parametrize(("overrides", "fragment"), BAD_CONFIGS)
def test_a_config_is_checked_on_arrival(
    client: TestClient, adapters_dir: Path, finetune: str, overrides: dict[str, Any], fragment: str
) -> None:
    config = {**adapter_config(QWQ), **overrides}

    response = upload(client, finetune, CONFIG, json.dumps(config).encode())

    assert_error(response, 400, 5006, "Finetune pirate cannot be used", fragment)
    assert staged(adapters_dir, finetune) == []


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"], ids=["not-json", "not-object"])
def test_a_config_must_be_a_json_object(client: TestClient, finetune: str, content: bytes) -> None:
    assert_error(upload(client, finetune, CONFIG, content), 400, 5006, "adapter_config.json")


BAD_WEIGHTS = [
    pytest.param({"rank": 64}, "has rank 64; ranks from 1 to 32 are served", id="rank-64"),
    pytest.param(
        {"dims": replace(QWEN25_32B, layers=2)},
        "has shape [8, 5120], but @cf/qwen/qwq-32b needs [8, 128]",
        id="other-base-shapes",
    ),
    pytest.param({"dims": replace(TINY, layers=3)}, "is for layer 2", id="more-layers"),
]


@pytest.mark.parametrize(("options", "fragment"), BAD_WEIGHTS)
def test_weights_are_checked_on_arrival(
    client: TestClient,
    adapters_dir: Path,
    tmp_path: Path,
    finetune: str,
    options: dict[str, Any],
    fragment: str,
) -> None:
    weights = adapter_files(tmp_path / "bad", **options)[WEIGHTS]

    response = upload(client, finetune, WEIGHTS, weights)

    assert_error(response, 400, 5006, "Finetune pirate cannot be used", fragment)
    assert staged(adapters_dir, finetune) == []


MISMATCHES = [
    pytest.param({"rank": 16}, "but the config says r=", id="other-rank"),
    pytest.param(
        {"target_modules": ("k_proj", "o_proj")}, "not in target_modules", id="other-modules"
    ),
]


@pytest.mark.parametrize("first", FILES, ids=["config-first", "weights-first"])
@pytest.mark.parametrize(("options", "fragment"), MISMATCHES)
def test_a_file_that_does_not_match_its_partner_is_refused(
    client: TestClient,
    adapters_dir: Path,
    tmp_path: Path,
    files: dict[str, bytes],
    finetune: str,
    first: str,
    options: dict[str, Any],
    fragment: str,
) -> None:
    second = WEIGHTS if first == CONFIG else CONFIG
    other = adapter_files(tmp_path / "other", **options)
    assert upload(client, finetune, first, files[first]).status_code == 200

    response = upload(client, finetune, second, other[second])

    assert_error(response, 400, 5006, "Finetune pirate cannot be used", fragment)
    assert staged(adapters_dir, finetune) == [first]
    assert not published(adapters_dir, "pirate").exists()
    assert_error(run_with(client, "pirate"), 404, 3037)
