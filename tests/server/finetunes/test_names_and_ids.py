"""Finetune names against adapter ids, over the fake engine: a name is never all digits, so no
account's finetune can take the place of another's adapter id; ids are the same after a restart;
what an earlier version stored under an all-digit name is never served, with a warning."""

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine.lora.store import adapter_id, model_slug
from engine.types import Adapter
from tests.support.app import QWQ, R1, ClientFactory, lora_models
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.finetunes_api import (
    CONFIG,
    adapter_files,
    create,
    publish,
    published,
    run_with,
    upload,
)
from tests.support.lora_factory import write_adapter

OTHER = "other"


def adapter_used(client: TestClient, engines: dict[str, FakeEngine], lora: str) -> Adapter:
    response = run_with(client, lora)
    assert response.status_code == 200, response.text
    adapter = engines[QWQ].calls[-1].params.adapter
    assert adapter is not None
    return adapter


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("1", id="one"),
        pytest.param("0", id="zero"),
        pytest.param("0001", id="leading-zeros"),
        pytest.param("2147483646", id="largest-id"),
        pytest.param("own-id", id="the-other-accounts-adapter-id"),
    ],
)
def test_no_finetune_can_take_another_accounts_adapter_id(
    client: TestClient, engines: dict[str, FakeEngine], tmp_path: Path, name: str
) -> None:
    publish(client, "pirate", tmp_path / "pirate")
    own_id = str(adapter_used(client, engines, "pirate").id)
    name = own_id if name == "own-id" else name

    response = create(client, name, account=OTHER)

    assert_error(
        response, 400, 5006, f"name: '{name}' is not a valid finetune name", "digits alone"
    )
    assert adapter_used(client, engines, own_id).name == "pirate"
    assert_error(upload(client, name, CONFIG, b"{}", account=OTHER), 404, 3037)


def test_an_adapters_id_follows_from_its_models_and_its_name(
    client: TestClient, engines: dict[str, FakeEngine], tmp_path: Path
) -> None:
    publish(client, "pirate", tmp_path / "pirate")

    assert adapter_used(client, engines, "pirate").id == adapter_id(model_slug(QWQ), "pirate")


def test_ids_are_the_same_after_a_restart(
    make_client: ClientFactory,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    tmp_path: Path,
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    finetune_ids = {name: publish(first, name, tmp_path / name) for name in ("pirate", "poet")}
    write_adapter(published(adapters_dir, "sailor"), base_model=QWQ)  # installed by hand
    ids = {name: adapter_used(first, engines, name).id for name in ("pirate", "poet", "sailor")}

    second = make_client(models=lora_models(), adapters_dir=adapters_dir)

    # By id first, as a client that kept the id would ask, in another order than before.
    for name in ("sailor", "poet", "pirate"):
        adapter = adapter_used(second, engines, str(ids[name]))
        assert (adapter.name, adapter.id) == (name, ids[name])
    for name, finetune_id in finetune_ids.items():
        assert adapter_used(second, engines, finetune_id).id == ids[name]


def test_an_id_two_adapters_share_finds_neither(
    client: TestClient,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("engine.lora.store.adapter_id", lambda namespace, name: 42)
    for seed, name in enumerate(["pirate", "poet"], 1):
        write_adapter(published(adapters_dir, name), base_model=QWQ, seed=seed)

    response = run_with(client, "42")

    assert_error(response, 400, 5006, "belongs to several adapters ('pirate', 'poet')")
    assert engines[QWQ].calls == []
    assert {adapter_used(client, engines, name).name for name in ("pirate", "poet")} == {
        "pirate",
        "poet",
    }


def test_an_id_belongs_to_its_model(
    client: TestClient, engines: dict[str, FakeEngine], tmp_path: Path
) -> None:
    publish(client, "pirate", tmp_path / "qwq")
    publish(client, "pirate-r1", tmp_path / "r1", model=R1)
    qwq_id = adapter_used(client, engines, "pirate").id

    assert_error(run_with(client, str(qwq_id), model=R1), 404, 3037)


def rename_finetune(adapters_dir: Path, finetune_id: str, old: str, new: str) -> None:
    """Rename a finetune as an earlier version would have stored it under the name `new`:
    its record, and once published its adapter folder and the link of its id."""
    record = adapters_dir / ".finetunes" / finetune_id / "finetune.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "name": new}))
    store = adapters_dir / model_slug(QWQ)
    if (store / old).is_dir():
        (store / old).rename(store / new)
        (store / finetune_id).unlink()
        (store / finetune_id).symlink_to(new)


@pytest.mark.parametrize("published_before", [True, False], ids=["published", "without-assets"])
def test_what_was_named_all_digits_before_is_never_served_and_is_warned_of(
    make_client: ClientFactory,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    published_before: bool,
) -> None:
    first = make_client(models=lora_models(), adapters_dir=adapters_dir)
    if published_before:
        finetune_id = publish(first, "legacy", tmp_path / "legacy")
    else:
        response = create(first, "legacy")
        finetune_id = response.json()["result"]["id"]
    rename_finetune(adapters_dir, finetune_id, "legacy", "1")

    with caplog.at_level(logging.WARNING):
        second = make_client(models=lora_models(), adapters_dir=adapters_dir)

    assert f"finetune '1' ({finetune_id}) is never served" in caplog.text
    assert (f"adapter {published(adapters_dir, '1')} is never" in caplog.text) == published_before
    calls = len(engines[QWQ].calls)
    for lora in ("1", finetune_id):
        assert_error(run_with(second, lora), 404, 3037)
    assert len(engines[QWQ].calls) == calls
    files = adapter_files(tmp_path / "again")
    response = upload(second, "1", CONFIG, files[CONFIG])
    assert_error(response, 400, 5006, "Finetune 1 cannot be used: digits alone are an adapter id")


def test_an_adapter_folder_named_all_digits_is_warned_of_at_startup(
    make_client: ClientFactory, adapters_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_adapter(adapters_dir / model_slug(QWQ) / "123", base_model=QWQ)
    write_adapter(adapters_dir / model_slug(QWQ) / "pirate", base_model=QWQ)

    with caplog.at_level(logging.WARNING):
        client = make_client(models=lora_models(), adapters_dir=adapters_dir)

    warnings = [entry.message for entry in caplog.records if "never served" in entry.message]
    assert len(warnings) == 1
    assert str(adapters_dir / model_slug(QWQ) / "123") in warnings[0]
    assert "digits alone are an adapter id" in warnings[0]
    assert_error(run_with(client, "123"), 404, 3037, "Finetune 123 not found")
    assert run_with(client, "pirate").status_code == 200
