"""`POST .../ai/finetunes/{id or name}/finetune-assets` over the fake engine: what is accepted,
what is refused, and that the store only ever sees a complete, valid adapter."""

import asyncio
import json
import pickle
import struct
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.errors import RequestTooLarge
from server.finetunes.uploads import receive_file
from tests.support.app import AUTH, QWQ, ClientFactory, lora_models, run_url
from tests.support.envelopes import assert_error
from tests.support.finetunes_api import (
    CONFIG,
    FILES,
    WEIGHTS,
    adapter_files,
    create,
    created_id,
    finetunes_url,
    leftovers,
    published,
    upload,
)
from tests.support.lora_factory import QWEN25_32B, TINY, adapter_config

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    return tmp_path / "adapters"


@pytest.fixture
def client(make_client: ClientFactory, adapters_dir: Path) -> TestClient:
    return make_client(models=lora_models(), adapters_dir=adapters_dir)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """A good adapter for QwQ's tiny checkpoint: rank 8 on q_proj and v_proj."""
    return adapter_files(tmp_path / "source")


@pytest.fixture
def finetune(client: TestClient) -> str:
    return created_id(client, "pirate")


def staged(adapters_dir: Path, finetune_id: str) -> list[str]:
    """The files received so far by a finetune not yet published."""
    return sorted(
        path.name for path in (adapters_dir / ".finetunes" / finetune_id / "adapter").iterdir()
    )


def run_with(client: TestClient, lora: str) -> Any:
    return client.post(run_url(QWQ), json={**CHAT, "lora": lora}, headers=AUTH)


@pytest.mark.parametrize("order", [FILES, FILES[::-1]], ids=["config-first", "weights-first"])
def test_both_files_publish_the_adapter(
    client: TestClient,
    adapters_dir: Path,
    files: dict[str, bytes],
    finetune: str,
    order: tuple[str, str],
) -> None:
    for file_name in order:
        response = upload(client, finetune, file_name, files[file_name])
        assert response.status_code == 200, response.text

    folder = published(adapters_dir, "pirate")
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files
    assert leftovers(adapters_dir) == []


def test_an_upload_returns_the_asset(
    client: TestClient, files: dict[str, bytes], finetune: str
) -> None:
    response = upload(client, finetune, CONFIG, files[CONFIG])

    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["success"] is True
    asset = payload["result"]
    assert set(asset) == {
        "id",
        "finetune_id",
        "file_name",
        "bucket_name",
        "created_at",
        "modified_at",
    }
    assert (asset["finetune_id"], asset["file_name"]) == (finetune, CONFIG)


def test_an_upload_updates_the_finetunes_modified_at(
    client: TestClient, files: dict[str, bytes], finetune: str
) -> None:
    asset = upload(client, finetune, CONFIG, files[CONFIG]).json()["result"]

    (entry,) = client.get(finetunes_url(), headers=AUTH).json()["result"]
    assert entry["modified_at"] == asset["created_at"]
    assert entry["modified_at"] >= entry["created_at"]


@pytest.mark.parametrize("by", ["id", "name", "id-upper-case"])
def test_the_url_names_the_finetune_by_id_or_name(
    client: TestClient, files: dict[str, bytes], finetune: str, by: str
) -> None:
    ref = {"id": finetune, "name": "pirate", "id-upper-case": finetune.upper()}[by]

    assert upload(client, ref, CONFIG, files[CONFIG]).status_code == 200


def test_a_trailing_slash_works_as_in_cloudflares_example(
    client: TestClient, files: dict[str, bytes], finetune: str
) -> None:
    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets/"),
        headers=AUTH,
        data={"file_name": CONFIG},
        files={"file": ("blob", files[CONFIG])},
    )

    assert response.status_code == 200, response.text


def test_the_file_may_come_before_its_name(
    client: TestClient, files: dict[str, bytes], finetune: str
) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        .encode() + files[CONFIG]
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n'
        f"{CONFIG}\r\n--{boundary}--\r\n".encode()
    )  # fmt: skip
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}

    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets"), content=body, headers=headers
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("ref", "account"),
    [
        pytest.param("nobody", "acct", id="unknown-name"),
        pytest.param("0b5c4a3e-9f3c-4d5e-8a2b-1c2d3e4f5a6b", "acct", id="unknown-id"),
        pytest.param("pirate", "other", id="other-account"),
    ],
)
def test_an_unknown_finetune_is_not_found(
    client: TestClient, files: dict[str, bytes], finetune: str, ref: str, account: str
) -> None:
    response = upload(client, ref, CONFIG, files[CONFIG], account=account)

    assert_error(response, 404, 3037, f"Finetune {ref} not found")


TRAVERSALS = [
    pytest.param("..", id="parent"),
    pytest.param(".finetunes", id="data-dir"),
    pytest.param("%2e%2e", id="encoded-parent"),
    pytest.param("..%2F..%2Fcf-qwen-qwq-32b", id="encoded-slashes"),
    pytest.param("..%5C..", id="encoded-backslashes"),
]


@pytest.mark.parametrize("ref", TRAVERSALS)
def test_a_path_in_the_url_reaches_no_file(
    client: TestClient, adapters_dir: Path, files: dict[str, bytes], finetune: str, ref: str
) -> None:
    response = upload(client, ref, CONFIG, files[CONFIG])

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] in (3037, 7000)
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []


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


def test_the_adapter_is_not_in_the_store_until_both_files_are(
    client: TestClient, adapters_dir: Path, files: dict[str, bytes], finetune: str
) -> None:
    upload(client, finetune, CONFIG, files[CONFIG])

    assert not published(adapters_dir, "pirate").exists()
    assert_error(run_with(client, "pirate"), 404, 3037, "Finetune pirate not found")
    assert_error(run_with(client, finetune), 404, 3037)

    upload(client, finetune, WEIGHTS, files[WEIGHTS])

    assert run_with(client, "pirate").status_code == 200
    assert run_with(client, finetune).status_code == 200


@pytest.mark.parametrize("file_name", FILES)
def test_an_asset_cannot_be_replaced(
    client: TestClient, adapters_dir: Path, tmp_path: Path, finetune: str, file_name: str
) -> None:
    first = adapter_files(tmp_path / "first", seed=1)
    second = adapter_files(tmp_path / "second", seed=2, config_overrides={"lora_dropout": 0.1})
    upload(client, finetune, file_name, first[file_name])

    response = upload(client, finetune, file_name, second[file_name])

    assert_error(response, 409, 3046, f"Finetune pirate already has {file_name}")
    stored = adapters_dir / ".finetunes" / finetune / "adapter" / file_name
    assert stored.read_bytes() == first[file_name]
    assert leftovers(adapters_dir) == []


@pytest.mark.parametrize("file_name", FILES)
def test_a_published_finetune_takes_no_more_assets(
    client: TestClient, adapters_dir: Path, files: dict[str, bytes], finetune: str, file_name: str
) -> None:
    for name in FILES:
        upload(client, finetune, name, files[name])

    response = upload(client, finetune, file_name, files[file_name])

    assert_error(response, 409, 3046, "already has adapter_config.json and")
    assert leftovers(adapters_dir) == []


def test_an_upload_over_the_limit_is_refused_while_it_streams(
    make_client: ClientFactory, adapters_dir: Path, files: dict[str, bytes]
) -> None:
    client = make_client(
        models=lora_models(), adapters_dir=adapters_dir, max_finetune_file_bytes=len(files[CONFIG])
    )
    finetune = created_id(client, "pirate")

    response = upload(client, finetune, WEIGHTS, files[WEIGHTS])

    assert_error(response, 413, 3006, f"at most {len(files[CONFIG])} bytes")
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []
    assert upload(client, finetune, CONFIG, files[CONFIG]).status_code == 200


def bytes_in(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def test_an_oversized_upload_is_refused_without_being_held(tmp_path: Path) -> None:
    limit, chunk, chunks = 1 << 20, 1 << 16, 512
    sizes: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        for _ in range(chunks):
            sizes.append(bytes_in(tmp_path))
            yield b"x" * chunk
        yield b"\r\n--b--\r\n"

    tracemalloc.start()
    try:
        with pytest.raises(RequestTooLarge):
            asyncio.run(receive_file("multipart/form-data; boundary=b", body(), tmp_path, limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(sizes) <= 2 + limit // chunk, "reading stops at the limit"
    assert max(sizes) <= limit
    assert peak < 4 * limit
    assert list(tmp_path.iterdir()) == []


MALFORMED = [
    pytest.param({"json": {"file_name": CONFIG}}, "must be multipart/form-data", id="json"),
    pytest.param(
        {"data": {"file_name": CONFIG}, "files": {"other": ("x", b"{}")}},
        "required field 'file'",
        id="no-file",
    ),
    pytest.param(
        {"files": {"file": ("x", b"{}")}}, "required field 'file_name'", id="no-file-name"
    ),
    pytest.param(
        {"data": {"file_name": CONFIG}, "files": [("file", ("a", b"{}")), ("file", ("b", b"{}"))]},
        "more than one 'file'",
        id="two-files",
    ),
    pytest.param(
        {
            "content": b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n{}',
            "headers": {"Content-Type": "multipart/form-data; boundary=b"},
        },
        "ends early",
        id="truncated",
    ),
    pytest.param(
        {
            "content": b"--",
            "headers": {"Content-Type": f"multipart/form-data; boundary={'b' * 300}"},
        },
        "is malformed",
        id="long-boundary",
    ),
    pytest.param(
        {"data": {"file_name": "x" * 2000}, "files": {"file": ("x", b"{}")}},
        "longer than",
        id="long-file-name",
    ),
]


@pytest.mark.parametrize(("request_options", "fragment"), MALFORMED)
def test_a_malformed_upload_is_bad_input(
    client: TestClient,
    adapters_dir: Path,
    finetune: str,
    request_options: dict[str, Any],
    fragment: str,
) -> None:
    options = dict(request_options)
    headers = {**AUTH, **options.pop("headers", {})}

    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets"), headers=headers, **options
    )

    assert_error(response, 400, 5006, fragment)
    assert leftovers(adapters_dir) == []


def test_a_finetune_whose_model_is_no_longer_served_takes_no_assets(
    make_client: ClientFactory, adapters_dir: Path, files: dict[str, bytes]
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    create(first, "pirate")
    second = make_client(models=lora_models()[1:], adapters_dir=adapters_dir)

    assert_error(upload(second, "pirate", CONFIG, files[CONFIG]), 400, 5007)


def test_what_a_crash_leaves_behind_is_never_seen_and_is_swept(
    client: TestClient, adapters_dir: Path, files: dict[str, bytes], finetune: str
) -> None:
    folder = adapters_dir / ".finetunes" / finetune
    (adapters_dir / ".finetunes" / ".new-crashed").mkdir()
    (folder / ".candidate-crashed").mkdir()
    (folder / ".candidate-crashed" / CONFIG).write_bytes(b"half")

    assert [
        entry["name"] for entry in client.get(finetunes_url(), headers=AUTH).json()["result"]
    ] == ["pirate"]
    for file_name in FILES:
        assert upload(client, finetune, file_name, files[file_name]).status_code == 200

    assert sorted(path.name for path in folder.iterdir()) == ["finetune.json", "incoming"]
    assert published(adapters_dir, "pirate").is_dir()
