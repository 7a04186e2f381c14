"""`POST/GET .../ai/finetunes` and `GET .../ai/finetunes/public` over the fake engine: records,
the naming rules, persistence, and a finetune reaching the engine through `lora`."""

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.config import EngineConfig
from server.settings import ModelSettings
from tests.support.app import AUTH, QWQ, R1, ClientFactory, lora_models, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.finetunes_api import (
    CONFIG,
    FILES,
    WEIGHTS,
    adapter_files,
    create,
    created_id,
    finetunes_url,
    published,
    upload,
)
from tests.support.lora_factory import write_adapter

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [entry["name"] for entry in response.json()["result"]]


def complete(client: TestClient, tmp_path: Path, name: str, model: str = QWQ) -> str:
    """Create a finetune and upload both its files; its id."""
    finetune_id = created_id(client, name, model)
    files = adapter_files(tmp_path / f"source-{name}", model)
    for file_name in FILES:
        assert upload(client, finetune_id, file_name, files[file_name]).status_code == 200
    return finetune_id


@pytest.mark.parametrize("prefix", ["/client/v4", ""], ids=["client-v4", "bare"])
def test_create_returns_the_finetune(client: TestClient, prefix: str) -> None:
    body = {"model": R1, "name": "pirate", "description": "arr", "public": True}

    response = client.post(finetunes_url(prefix=prefix), json=body, headers=AUTH)

    assert response.status_code == 200, response.text
    payload = response.json()
    assert (payload["success"], payload["errors"], payload["messages"]) == (True, [], [])
    result = payload["result"]
    assert set(result) == {
        "id", "name", "model", "description", "public", "created_at", "modified_at"
    }  # fmt: skip
    assert str(uuid.UUID(result["id"])) == result["id"]
    assert (result["name"], result["model"], result["description"], result["public"]) == (
        "pirate",
        R1,
        "arr",
        True,
    )
    assert TIMESTAMP.fullmatch(result["created_at"])
    assert result["modified_at"] == result["created_at"]


def test_description_and_public_are_optional(client: TestClient) -> None:
    result = create(client).json()["result"]

    assert (result["description"], result["public"]) == (None, False)


def test_the_listing_holds_the_accounts_finetunes_oldest_first(client: TestClient) -> None:
    for name in ("first", "second"):
        created_id(client, name)
    create(client, "elsewhere", account="other")

    response = client.get(finetunes_url(), headers=AUTH)

    assert names(response) == ["first", "second"]
    entry = response.json()["result"][0]
    assert set(entry) == {"id", "name", "model", "description", "created_at", "modified_at"}


def test_an_account_without_finetunes_lists_none(client: TestClient) -> None:
    assert names(client.get(finetunes_url(account="nobody"), headers=AUTH)) == []


@pytest.mark.parametrize("method", ["post", "get"])
def test_a_trailing_slash_works_as_in_cloudflares_examples(client: TestClient, method: str) -> None:
    if method == "post":
        response = client.post(
            finetunes_url("/"), json={"model": QWQ, "name": "pirate"}, headers=AUTH
        )
    else:
        response = client.get(finetunes_url("/"), headers=AUTH)

    assert response.status_code == 200, response.text


UNKNOWN = "@cf/meta/llama-3-8b"
CREATE_ERRORS = [
    pytest.param({"model": UNKNOWN, "name": "x"}, 400, 5007, "No such model", id="unknown-model"),
    pytest.param({"name": "x"}, 400, 5006, "required properties at '/' are 'model'", id="no-model"),
    pytest.param({"model": QWQ}, 400, 5006, "required properties at '/' are 'name'", id="no-name"),
    pytest.param({"model": QWQ, "name": 5}, 400, 5006, "'/name'", id="name-not-string"),
    pytest.param(
        {"model": QWQ, "name": "x", "public": "yes"}, 400, 5006, "'/public'", id="public-not-bool"
    ),
    pytest.param(
        {"model": QWQ, "name": "x", "description": "d" * 4097},
        400,
        5006,
        "'/description'",
        id="long-description",
    ),
    pytest.param(["pirate"], 400, 5006, "must be a JSON object", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "status", "code", "fragment"), CREATE_ERRORS)
def test_create_refuses_bad_input(
    client: TestClient, body: Any, status: int, code: int, fragment: str
) -> None:
    response = client.post(finetunes_url(), json=body, headers=AUTH)

    assert_error(response, status, code, fragment)


@pytest.mark.parametrize(
    ("content", "code"), [(b"", 3003), (b"{not json", 5006)], ids=["empty", "not-json"]
)
def test_create_refuses_a_body_that_is_not_json(
    client: TestClient, content: bytes, code: int
) -> None:
    response = client.post(finetunes_url(), content=content, headers=AUTH)

    assert_error(response, 400, code)


def test_a_model_served_without_lora_cannot_have_finetunes(
    make_client: ClientFactory, adapters_dir: Path
) -> None:
    plain = ModelSettings(
        name=R1,
        engine=EngineConfig(builtin="tiny-deepseek-r1-distill-qwen-32b", max_model_len=80000),
    )
    client = make_client(models=[lora_models()[0], plain], adapters_dir=adapters_dir)

    assert_error(create(client, model=R1), 405, 5005, f"The model {R1} does not support LoRa")


BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("../pirate", id="parent"),
    pytest.param("a/b", id="slash"),
    pytest.param("/etc", id="absolute"),
    pytest.param(".finetunes", id="dot-data-dir"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("with space", id="space"),
    pytest.param("x" * 129, id="too-long"),
    pytest.param("0b5c4a3e-9f3c-4d5e-8a2b-1c2d3e4f5a6b", id="shaped-like-an-id"),
    pytest.param("0B5C4A3E-9F3C-4D5E-8A2B-1C2D3E4F5A6B", id="shaped-like-an-id-upper-case"),
    pytest.param("1", id="digits"),
    pytest.param("0042", id="digits-leading-zeros"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_must_be_plain_adapter_names(
    client: TestClient, adapters_dir: Path, name: str
) -> None:
    assert_error(create(client, name), 400, 5006, "is not a valid finetune name")
    assert names(client.get(finetunes_url(), headers=AUTH)) == []


@pytest.mark.parametrize(
    ("model", "account"),
    [(QWQ, "acct"), (QWQ, "other"), (R1, "acct")],
    ids=["same-account", "other-account", "other-model"],
)
def test_names_are_unique_on_the_server(client: TestClient, model: str, account: str) -> None:
    created_id(client, "pirate")

    response = create(client, "pirate", model, account=account)

    assert_error(response, 409, 3045, "Finetune pirate already exists")


def test_a_name_taken_by_an_installed_adapter_is_refused(
    client: TestClient, adapters_dir: Path
) -> None:
    write_adapter(published(adapters_dir, "pirate"), base_model=QWQ)

    assert_error(create(client, "pirate"), 409, 3045, "an adapter of that name is installed")


def test_public_lists_public_finetunes_of_every_account(client: TestClient) -> None:
    create(client, "mine", public=True)
    create(client, "private")
    create(client, "theirs", account="other", public=True, description="shared")

    response = client.get(finetunes_url("/public"), headers=AUTH)

    assert names(response) == ["mine", "theirs"]
    entry = response.json()["result"][1]
    assert (entry["public"], entry["description"]) == (True, "shared")
    assert set(entry) == {
        "id", "name", "model", "description", "public", "created_at", "modified_at"
    }  # fmt: skip


PUBLIC_PAGES = [
    pytest.param({}, ["c", "a", "b"], id="oldest-first"),
    pytest.param({"limit": "2"}, ["c", "a"], id="limit"),
    pytest.param({"offset": "1"}, ["a", "b"], id="offset"),
    pytest.param({"limit": "1.0", "offset": "2"}, ["b"], id="sdk-float"),
    pytest.param({"offset": "5"}, [], id="past-the-end"),
    pytest.param({"orderBy": "name"}, ["a", "b", "c"], id="order-by-name"),
    pytest.param({"orderBy": "model"}, ["c", "b", "a"], id="order-by-model"),
]


@pytest.mark.parametrize(("query", "expected"), PUBLIC_PAGES)
def test_public_listing_pages_and_orders(
    client: TestClient, query: dict[str, str], expected: list[str]
) -> None:
    for name, model in (("c", R1), ("a", QWQ), ("b", R1)):
        created_id(client, name, model, public=True)

    response = client.get(finetunes_url("/public"), params=query, headers=AUTH)

    assert names(response) == expected


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        pytest.param({"limit": "0"}, "'limit'", id="limit-zero"),
        pytest.param({"limit": "ten"}, "'limit'", id="limit-text"),
        pytest.param({"limit": "1.5"}, "'limit'", id="limit-fraction"),
        pytest.param({"offset": "-1"}, "'offset'", id="offset-negative"),
        pytest.param({"orderBy": "account_id"}, "'orderBy'", id="order-by-unknown"),
    ],
)
def test_public_listing_refuses_bad_parameters(
    client: TestClient, query: dict[str, str], fragment: str
) -> None:
    response = client.get(finetunes_url("/public"), params=query, headers=AUTH)

    assert_error(response, 400, 5006, fragment)


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", ""), ("get", ""), ("get", "/public"), ("post", "/pirate/finetune-assets")],
    ids=["create", "list", "public", "assets"],
)
def test_the_routes_take_the_token_and_account_checks(
    make_client: ClientFactory, adapters_dir: Path, method: str, path: str
) -> None:
    client = make_client(models=lora_models(), adapters_dir=adapters_dir, account_ids=["acct"])

    assert_error(client.request(method, finetunes_url(path)), 401, 10000)
    assert_error(client.request(method, finetunes_url(path, "other"), headers=AUTH), 404, 7003)


def test_finetunes_survive_a_restart(
    make_client: ClientFactory, adapters_dir: Path, tmp_path: Path
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    complete(first, tmp_path, "whole")
    half = created_id(first, "half", public=True)
    files = adapter_files(tmp_path / "half")
    upload(first, half, CONFIG, files[CONFIG])
    before = first.get(finetunes_url(), headers=AUTH).json()

    second = make_client(models=lora_models(), adapters_dir=adapters_dir)

    assert second.get(finetunes_url(), headers=AUTH).json() == before
    assert names(second.get(finetunes_url("/public"), headers=AUTH)) == ["half"]
    assert upload(second, "half", WEIGHTS, files[WEIGHTS]).status_code == 200
    assert published(adapters_dir, "half").is_dir()


def test_an_unreadable_record_is_skipped(client: TestClient, adapters_dir: Path) -> None:
    broken = created_id(client, "broken")
    created_id(client, "fine")
    (adapters_dir / ".finetunes" / broken / "finetune.json").write_text("{", encoding="utf-8")

    assert names(client.get(finetunes_url(), headers=AUTH)) == ["fine"]


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
@pytest.mark.parametrize("by", ["name", "id"])
def test_an_uploaded_finetune_reaches_the_engine(
    client: TestClient,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    tmp_path: Path,
    model: str,
    by: str,
) -> None:
    finetune_id = complete(client, tmp_path, "pirate", model)
    lora = "pirate" if by == "name" else finetune_id

    response = client.post(run_url(model), json={**CHAT, "lora": lora}, headers=AUTH)

    assert response.status_code == 200, response.text
    adapter = engines[model].calls[0].params.adapter
    assert adapter is not None
    assert adapter.name == lora
    assert adapter.path.resolve() == published(adapters_dir, "pirate", model).resolve()
