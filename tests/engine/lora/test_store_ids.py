"""`engine.lora.store` ids: they follow from the model's and the adapter's folder names, so they
are the same after a restart; a name is never all digits, and digits are only ever an id."""

import logging
import os
from pathlib import Path

import pytest

from engine.lora.format import AdapterLimits
from engine.lora.store import (
    MAX_ADAPTER_ID,
    AdapterIds,
    AdapterIdShared,
    AdapterNameInvalid,
    AdapterNotFound,
    AdapterStore,
    adapter_id,
    is_id,
    is_plain_name,
)
from tests.support.lora_factory import QWQ, tiny_base, write_adapter

BASE = tiny_base(QWQ)
SLUG = "cf-qwen-qwq-32b"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "adapters" / SLUG


def new_store(root: Path, ids: AdapterIds | None = None) -> AdapterStore:
    """The store as a (re)started server builds it: nothing resolved yet."""
    return AdapterStore(root, BASE, AdapterLimits(max_rank=32), ids)


@pytest.fixture
def store(root: Path) -> AdapterStore:
    return new_store(root)


def add(root: Path, name: str, seed: int = 1) -> Path:
    return write_adapter(root / name, base_model=QWQ, seed=seed)


def touch(folder: Path) -> None:
    """Change an adapter's files as a new upload of the same size would show."""
    weights = folder / "adapter_model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_an_adapters_id_follows_from_its_models_and_its_folders_name(
    root: Path, store: AdapterStore
) -> None:
    add(root, "pirate")

    adapter = store.resolve("pirate")

    assert adapter.id == store.id_of("pirate") == adapter_id(SLUG, "pirate")
    assert 1 <= adapter.id <= MAX_ADAPTER_ID


@pytest.mark.parametrize(
    ("namespace", "name", "expected"),
    [
        ("cf-qwen-qwq-32b", "pirate", 1793533761),  # the README's example
        ("cf-deepseek-ai-deepseek-r1-distill-qwen-32b", "pirate", 2140981976),
        ("cf-qwen-qwq-32b", "0b3e6a52-9f3c-4d5e-8a2b-1c2d3e4f5a6b", 1518986080),
    ],
)
def test_the_id_function_never_changes(namespace: str, name: str, expected: int) -> None:
    # Clients keep ids: a new version of the server must give every adapter the same one.
    assert adapter_id(namespace, name) == expected


def test_ids_are_the_same_after_a_restart(root: Path) -> None:
    for seed, name in enumerate(["pirate", "poet", "sailor"], 1):
        add(root, name, seed)
    first = new_store(root)
    before = {name: first.resolve(name).id for name in ("sailor", "poet", "pirate")}

    again = new_store(root, AdapterIds())

    # Found by id first, before any name was asked for, and in another order.
    assert {name: again.resolve(str(before[name])).name for name in before} == {
        name: name for name in before
    }
    assert {name: again.resolve(name).id for name in ("pirate", "poet", "sailor")} == before


def test_ids_do_not_depend_on_where_the_adapters_folder_is(tmp_path: Path) -> None:
    here, there = tmp_path / "here" / SLUG, tmp_path / "moved" / "elsewhere" / SLUG
    add(here, "pirate")
    add(there, "pirate", seed=2)

    assert new_store(here).resolve("pirate").id == new_store(there).resolve("pirate").id


def test_each_model_has_its_own_ids(tmp_path: Path) -> None:
    first, second = (new_store(tmp_path / slug) for slug in ("first", "second"))

    assert first.id_of("pirate") != second.id_of("pirate")


def test_a_changed_adapter_keeps_its_id_and_gets_a_new_engine_id(
    root: Path, store: AdapterStore
) -> None:
    folder = add(root, "pirate")
    before = store.resolve("pirate")
    touch(folder)

    after = store.resolve("pirate")

    assert after.id != before.id, "the engine must not serve the old weights from its cache"
    assert 1 <= after.id <= MAX_ADAPTER_ID
    assert store.resolve(str(store.id_of("pirate"))) == after
    assert new_store(root).resolve("pirate").id == store.id_of("pirate"), "after a restart"


def test_a_link_to_an_adapter_has_that_adapters_id(root: Path, store: AdapterStore) -> None:
    add(root, "pirate")
    (root / "0b3e6a52-finetune-id").symlink_to("pirate")

    assert store.id_of("0b3e6a52-finetune-id") == store.id_of("pirate")
    assert store.resolve(str(store.id_of("pirate"))).name == "pirate"
    with pytest.raises(AdapterNotFound):
        store.resolve(str(adapter_id(SLUG, "0b3e6a52-finetune-id")))


DIGITS = [
    pytest.param("1", id="one"),
    pytest.param("0", id="zero"),
    pytest.param("007", id="leading-zeros"),
    pytest.param("2147483646", id="largest-id"),
    pytest.param("9" * 200, id="very-long"),
]


@pytest.mark.parametrize("digits", DIGITS)
def test_digits_are_never_a_name(store: AdapterStore, digits: str) -> None:
    assert is_id(digits)
    assert not is_plain_name(digits)
    with pytest.raises(AdapterNameInvalid, match="digits alone are an adapter id"):
        store.folder(digits)


@pytest.mark.parametrize("digits", DIGITS)
def test_a_folder_named_all_digits_is_never_served(
    root: Path, store: AdapterStore, digits: str
) -> None:
    add(root, digits)
    (root / "0b3e6a52-finetune-id").symlink_to(digits)

    for ref in (digits, "0b3e6a52-finetune-id"):
        with pytest.raises(AdapterNotFound):
            store.resolve(ref)
    assert store.misnamed() == [digits]


def test_an_adapters_id_finds_it_and_not_a_folder_named_so(root: Path, store: AdapterStore) -> None:
    add(root, "pirate")
    own_id = str(store.id_of("pirate"))
    add(root, own_id, seed=2)  # planted by hand: an upload could not be named so

    assert store.resolve(own_id).name == "pirate"


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("12345", id="no-such-id"),
        pytest.param(str(MAX_ADAPTER_ID + 1), id="the-zero-adapters-id"),
        pytest.param("99999999999", id="out-of-range"),
        pytest.param("0", id="zero"),
    ],
)
def test_unknown_ids_are_not_found(root: Path, store: AdapterStore, ref: str) -> None:
    add(root, "pirate")

    with pytest.raises(AdapterNotFound):
        store.resolve(ref)


def test_an_id_shared_by_two_adapters_finds_neither(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("engine.lora.store.adapter_id", lambda namespace, name: 42)
    store = new_store(root)
    add(root, "pirate", seed=1)
    add(root, "poet", seed=2)

    with caplog.at_level(logging.WARNING), pytest.raises(AdapterIdShared, match="use the"):
        store.resolve("42")

    assert "share the id 42" in caplog.text
    by_name = {store.resolve("pirate").id, store.resolve("poet").id}
    assert len(by_name) == 2, "engine ids stay distinct"


def test_engine_ids_are_never_handed_out_twice() -> None:
    ids = AdapterIds()

    handed = [
        ids.id_for(Path(f"/adapters/{name}"), ((name, version, 1),), preferred=7)
        for name in ("pirate", "poet")
        for version in (1, 2)
    ]

    assert handed[0] == 7
    assert len(set(handed)) == 4
    assert all(1 <= value <= MAX_ADAPTER_ID for value in handed)
    assert ids.id_for(Path("/adapters/pirate"), (("pirate", 1, 1),), preferred=7) == 7
