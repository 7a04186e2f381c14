"""`engine.lora.store`: finding adapters by name or id, safely, with stable ids (ids that follow
from the model's and the adapter's folder names, and never stand for a name: test_store_ids)."""

import os
import threading
import time
from pathlib import Path

import pytest

from engine.lora.format import AdapterInvalid, AdapterLimits, AdapterMissingFiles
from engine.lora.store import (
    AdapterIds,
    AdapterNameInvalid,
    AdapterNotFound,
    AdapterStore,
    model_slug,
)
from tests.support.lora_factory import QWQ, tiny_base, write_adapter

BASE = tiny_base(QWQ)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "adapters" / "cf-qwen-qwq-32b"


@pytest.fixture
def store(root: Path) -> AdapterStore:
    return AdapterStore(root, BASE, AdapterLimits(max_rank=32))


def add(root: Path, name: str, seed: int = 1, rank: int = 8) -> Path:
    return write_adapter(root / name, base_model=QWQ, seed=seed, rank=rank)


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("@cf/qwen/qwq-32b", "cf-qwen-qwq-32b"),
        (
            "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
            "cf-deepseek-ai-deepseek-r1-distill-qwen-32b",
        ),
    ],
)
def test_each_model_has_a_folder_named_by_its_slug(model: str, slug: str) -> None:
    assert model_slug(model) == slug


def test_an_adapter_is_found_by_its_folder_name(root: Path, store: AdapterStore) -> None:
    folder = add(root, "pirate")

    adapter = store.resolve("pirate")

    assert (adapter.name, adapter.path) == ("pirate", folder.resolve())
    assert adapter.id >= 1


def test_ids_are_stable_and_distinct(root: Path, store: AdapterStore) -> None:
    add(root, "pirate", seed=1)
    add(root, "poet", seed=2)

    first = [store.resolve("pirate").id, store.resolve("poet").id]
    again = [store.resolve("pirate").id, store.resolve("poet").id]

    assert first == again
    assert len(set(first)) == 2
    assert min(first) >= 1


def test_an_adapter_is_found_by_its_id(root: Path, store: AdapterStore) -> None:
    add(root, "pirate")
    adapter = store.resolve("pirate")

    assert store.resolve(str(adapter.id)) == adapter


def test_changed_files_get_a_new_id(root: Path, store: AdapterStore) -> None:
    folder = add(root, "pirate", seed=1)
    before = store.resolve("pirate")
    weights = folder / "adapter_model.safetensors"
    add(root, "pirate", seed=2)
    # Same size, so make sure the change shows in the modification time too.
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    after = store.resolve("pirate")

    assert after.id != before.id
    assert store.resolve(str(before.id)) == after


def test_names_of_one_folder_share_its_id(root: Path, store: AdapterStore) -> None:
    folder = add(root, "pirate")
    (root / "0b3e6a52-finetune-id").symlink_to("pirate")

    alias = store.resolve("0b3e6a52-finetune-id")

    assert (alias.id, alias.path) == (store.resolve("pirate").id, folder.resolve())


def test_models_sharing_an_engine_share_ids(tmp_path: Path) -> None:
    ids = AdapterIds()
    stores = [
        AdapterStore(tmp_path / slug, BASE, AdapterLimits(), ids) for slug in ("first", "second")
    ]
    for store in stores:
        add(store.root, "same-name")

    assert len({store.resolve("same-name").id for store in stores}) == 2


def test_unknown_names_and_ids_are_not_found(root: Path, store: AdapterStore) -> None:
    add(root, "pirate")

    for name in ("poet", "12345"):
        with pytest.raises(AdapterNotFound):
            store.resolve(name)


def test_nothing_is_found_before_the_folder_exists(store: AdapterStore) -> None:
    with pytest.raises(AdapterNotFound):
        store.resolve("pirate")


def test_a_file_is_not_an_adapter(root: Path, store: AdapterStore) -> None:
    root.mkdir(parents=True)
    (root / "pirate").write_text("not a folder")

    with pytest.raises(AdapterNotFound):
        store.resolve("pirate")


@pytest.mark.parametrize(
    "name",
    [
        "../outside",
        "..",
        ".",
        "a/b",
        "a\\b",
        "/etc/passwd",
        "~",
        "pirate\0",
        ".hidden",
        "",
        " pirate",
        "pirate\n",
        "x" * 129,
        "пират",
    ],
)
def test_names_that_are_not_plain_folder_names_are_refused(
    tmp_path: Path, root: Path, store: AdapterStore, name: str
) -> None:
    add(root, "pirate")
    add(tmp_path / "adapters", "outside")  # what "../outside" would reach

    with pytest.raises(AdapterNameInvalid):
        store.resolve(name)


@pytest.mark.parametrize("name", ["pirate", "Pirate_2", "v1.2-final", "x" * 128, "7b", "v1", "1.0"])
def test_plain_folder_names_are_accepted(root: Path, store: AdapterStore, name: str) -> None:
    add(root, name)

    assert store.resolve(name).name == name


def test_a_refused_adapter_is_refused_on_every_request(root: Path, store: AdapterStore) -> None:
    add(root, "big", rank=64)

    for _ in range(2):
        with pytest.raises(AdapterInvalid, match="rank 64"):
            store.resolve("big")


def test_a_fixed_adapter_is_served(root: Path, store: AdapterStore) -> None:
    folder = add(root, "pirate")
    (folder / "adapter_config.json").rename(root / "config.json.bak")
    with pytest.raises(AdapterMissingFiles):
        store.resolve("pirate")

    (root / "config.json.bak").rename(folder / "adapter_config.json")

    assert store.resolve("pirate").name == "pirate"


def test_a_deleted_adapter_is_no_longer_found(root: Path, store: AdapterStore) -> None:
    folder = add(root, "pirate")
    store.resolve("pirate")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()

    with pytest.raises(AdapterNotFound):
        store.resolve("pirate")


def test_uploads_are_placed_in_the_store_by_name(root: Path, store: AdapterStore) -> None:
    assert store.folder("pirate") == root / "pirate"
    with pytest.raises(AdapterNameInvalid):
        store.folder("../pirate")


class SlowSet(set[int]):
    """A set whose membership test yields the GIL: a race between it and `add` shows."""

    def __contains__(self, value: object) -> bool:
        found = super().__contains__(value)
        time.sleep(0.002)
        return found


def test_adapters_resolved_on_several_threads_never_share_an_id(tmp_path: Path) -> None:
    ids = AdapterIds()
    ids._taken = SlowSet()
    results: list[int] = []
    folders = [tmp_path / f"adapter-{index}" for index in range(8)]

    def take(folder: Path) -> None:
        results.append(ids.id_for(folder, (("adapter_model.safetensors", 1, 1),), preferred=7))

    threads = [threading.Thread(target=take, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(results)) == len(folders)
