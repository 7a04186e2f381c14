"""`POST .../ai/finetunes/{id or name}/finetune-assets` over the fake engine: the two files
publish the adapter, the URL names the finetune, assets are never replaced, and the store only
ever sees a complete adapter (content checks: test_upload_checks; the form: test_upload_form)."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.app import AUTH, ClientFactory, lora_models
from tests.support.envelopes import assert_error
from tests.support.finetunes_api import (
    CONFIG,
    FILES,
    WEIGHTS,
    adapter_files,
    create,
    finetunes_url,
    leftovers,
    published,
    run_with,
    staged,
    upload,
)


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
