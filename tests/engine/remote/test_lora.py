"""LoRA for remote replicas: adapters published for vLLM's filesystem resolver, named upstream."""

import asyncio
import json
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import engine.remote.lora
from engine.errors import EngineRequestError
from engine.lora.format import CONFIG_FILE, WEIGHTS_FILE
from engine.remote.engine import RemoteEngine
from engine.remote.lora import (
    MARK_INTERVAL_S,
    AdapterPublisher,
    prune_unused,
    publish,
    sweep_partials,
)
from engine.types import Adapter, GenerationParams
from tests.engine.remote.conftest import remote, run
from tests.engine.remote.test_generate import PLAIN, collect
from tests.support.fake_upstream import Failure, FakeUpstream
from tests.support.lora_factory import QWQ, write_adapter

BASE = "/models/qwq"  # the fake upstream's /v1/models root: the replicas' --model


@pytest.fixture
def pirate(tmp_path: Path) -> Path:
    return write_adapter(tmp_path / "adapters" / "pirate", base_model=QWQ, seed=1)


def config_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / CONFIG_FILE).read_text())
    return loaded


def test_a_published_adapter_names_the_replicas_base_model_and_copies_the_weights(
    pirate: Path, tmp_path: Path
) -> None:
    lora_dir = tmp_path / "lora"

    name = publish(pirate, lora_dir, BASE)

    published = lora_dir / name
    assert name.startswith("adapter-")
    assert sorted(path.name for path in lora_dir.iterdir()) == [name]
    assert config_of(published) == {**config_of(pirate), "base_model_name_or_path": BASE}
    assert (published / WEIGHTS_FILE).read_bytes() == (pirate / WEIGHTS_FILE).read_bytes()
    assert os.stat(published / WEIGHTS_FILE).st_ino != os.stat(pirate / WEIGHTS_FILE).st_ino
    assert stat.S_IMODE(published.stat().st_mode) == 0o755
    assert stat.S_IMODE((published / WEIGHTS_FILE).stat().st_mode) == 0o644


def test_publishing_again_changes_nothing(pirate: Path, tmp_path: Path) -> None:
    lora_dir = tmp_path / "lora"
    name = publish(pirate, lora_dir, BASE)
    before = (lora_dir / name / WEIGHTS_FILE).stat()

    assert publish(pirate, lora_dir, BASE) == name
    assert (lora_dir / name / WEIGHTS_FILE).stat().st_mtime_ns == before.st_mtime_ns
    assert len(list(lora_dir.iterdir())) == 1


def test_names_follow_the_content_not_the_folder(tmp_path: Path) -> None:
    lora_dir = tmp_path / "lora"
    first = write_adapter(tmp_path / "a", base_model=QWQ, seed=1)
    same = write_adapter(tmp_path / "b", base_model=QWQ, seed=1)
    retrained = write_adapter(tmp_path / "c", base_model=QWQ, seed=2)

    names = [publish(folder, lora_dir, BASE) for folder in (first, same, retrained)]

    assert names[0] == names[1]
    assert names[2] != names[0]
    assert publish(first, lora_dir, "/other/base") not in names


def test_many_publishers_at_once_leave_one_complete_folder(pirate: Path, tmp_path: Path) -> None:
    lora_dir = tmp_path / "lora"
    names: list[str] = []
    start = threading.Barrier(6)

    def publisher() -> None:
        start.wait()
        names.append(publish(pirate, lora_dir, BASE))

    threads = [threading.Thread(target=publisher) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(names)) == 1
    assert [path.name for path in lora_dir.iterdir()] == names[:1]
    assert config_of(lora_dir / names[0])["base_model_name_or_path"] == BASE


def test_files_that_change_while_published_are_not_published(
    pirate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = engine.remote.lora._copy_hashing

    def rewritten_meanwhile(source: Path, target: Path, config: bytes) -> str:
        write_adapter(pirate, base_model=QWQ, seed=3)
        return copy(source, target, config)

    monkeypatch.setattr(engine.remote.lora, "_copy_hashing", rewritten_meanwhile)
    lora_dir = tmp_path / "lora"

    with pytest.raises(EngineRequestError, match="changed while it was published"):
        publish(pirate, lora_dir, BASE)
    assert list(lora_dir.iterdir()) == []


def test_the_sweep_removes_old_partial_folders_only(tmp_path: Path) -> None:
    old = tmp_path / ".adapter-abc.x1.partial"
    fresh = tmp_path / ".adapter-abc.x2.partial"
    published = tmp_path / "adapter-abc"
    for folder in (old, fresh, published):
        folder.mkdir()
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(published, (an_hour_ago, an_hour_ago))

    sweep_partials(tmp_path)

    assert sorted(path.name for path in tmp_path.iterdir()) == [fresh.name, published.name]


DAY_S = 86400.0


def aged(path: Path, days: float) -> Path:
    then = time.time() - days * DAY_S
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def test_published_adapters_unused_for_the_time_kept_are_removed(tmp_path: Path) -> None:
    unused = publish(write_adapter(tmp_path / "a", base_model=QWQ, seed=1), tmp_path, BASE)
    used = publish(write_adapter(tmp_path / "b", base_model=QWQ, seed=2), tmp_path, BASE)
    aged(tmp_path / unused, days=8)
    aged(tmp_path / used, days=6)
    others = [tmp_path / "mine", tmp_path / "adapter-file", tmp_path / "adapter-link"]
    others[0].mkdir()
    others[1].write_text("not a folder")
    others[2].symlink_to(tmp_path / "mine")
    for path in others:
        aged(path, days=30)

    assert prune_unused(tmp_path, keep_s=7 * DAY_S) == [unused]

    left = {path.name for path in tmp_path.iterdir()}
    assert left == {"a", "b", used, *(path.name for path in others)}
    assert (tmp_path / "mine").is_dir()


def test_a_folder_marked_while_it_is_pruned_is_put_back(
    pirate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lora_dir = tmp_path / "lora"
    name = publish(pirate, lora_dir, BASE)
    aged(lora_dir / name, days=30)
    rename = Path.rename

    def marked_meanwhile(self: Path, target: Path) -> Path:
        if self.name == name:
            os.utime(self)  # another process names it, between the check and the rename
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", marked_meanwhile)

    assert prune_unused(lora_dir, keep_s=DAY_S) == []
    assert [path.name for path in lora_dir.iterdir()] == [name]
    assert (lora_dir / name / WEIGHTS_FILE).read_bytes() == (pirate / WEIGHTS_FILE).read_bytes()


def test_a_process_marks_what_it_names_and_publishes_again_what_was_removed(
    pirate: Path, tmp_path: Path
) -> None:
    lora_dir = tmp_path / "lora"
    now = [1000.0]
    publisher = AdapterPublisher(lora_dir, BASE, keep_s=DAY_S, clock=lambda: now[0])
    adapter = Adapter(name="pirate", id=7, path=pirate)

    async def scenario() -> None:
        name = await publisher.upstream_name(adapter)
        folder = aged(lora_dir / name, days=2)
        before = folder.stat().st_mtime
        assert await publisher.upstream_name(adapter) == name
        assert folder.stat().st_mtime == before  # marked once a minute at most
        now[0] += MARK_INTERVAL_S
        assert await publisher.upstream_name(adapter) == name
        assert folder.stat().st_mtime > time.time() - 60  # marked as used
        assert prune_unused(lora_dir, keep_s=DAY_S) == []

        aged(folder, days=2)
        assert prune_unused(lora_dir, keep_s=DAY_S) == [name]  # e.g. by another process
        now[0] += MARK_INTERVAL_S
        assert await publisher.upstream_name(adapter) == name
        assert (folder / WEIGHTS_FILE).read_bytes() == (pirate / WEIGHTS_FILE).read_bytes()

    asyncio.run(scenario())


def test_a_folder_that_cannot_be_marked_is_still_named_with_one_warning(
    pirate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    publisher = AdapterPublisher(tmp_path / "lora", BASE, clock=lambda: now[0])
    adapter = Adapter(name="pirate", id=7, path=pirate)

    def refused(path: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    async def scenario() -> list[str]:
        monkeypatch.setattr(os, "utime", refused)
        names = []
        for _ in range(3):
            names.append(await publisher.upstream_name(adapter))
            now[0] += MARK_INTERVAL_S
        return names

    names = asyncio.run(scenario())

    assert len(set(names)) == 1
    assert (tmp_path / "lora" / names[0]).is_dir()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "mark" in r.message]
    assert len(warnings) == 1, warnings


def test_publishing_prunes_what_is_unused(pirate: Path, tmp_path: Path) -> None:
    lora_dir = tmp_path / "lora"
    old = publish(write_adapter(tmp_path / "old", base_model=QWQ, seed=2), lora_dir, BASE)
    aged(lora_dir / old, days=3)
    publisher = AdapterPublisher(lora_dir, BASE, keep_s=DAY_S)

    name = asyncio.run(publisher.upstream_name(Adapter(name="pirate", id=7, path=pirate)))

    assert [path.name for path in lora_dir.iterdir()] == [name]


def test_keeping_adapters_less_than_an_hour_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="lora_keep_days"):
        remote(upstream, enable_lora=True, lora_dir="/tmp/lora", lora_keep_days=0.01)


def lora_settings(tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"enable_lora": True, "lora_dir": tmp_path / "lora", **more}


def test_an_adapter_request_names_the_published_adapter_upstream(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path, tmp_path: Path
) -> None:
    adapter = Adapter(name="pirate", id=7, path=pirate)

    async def scenario(engine: RemoteEngine) -> None:
        await engine.load_adapter(adapter)
        await collect(engine, GenerationParams(8, 0.0, adapter=adapter))
        await collect(engine)

    run(remote(upstream, **lora_settings(tmp_path)), cache_dir, scenario)

    (published,) = (tmp_path / "lora").iterdir()
    models = [call.body["model"] for call in upstream.calls("/v1/completions")]
    assert models == [published.name, "qwq"]
    assert config_of(published)["base_model_name_or_path"] == BASE


def test_a_configured_base_model_wins_over_the_upstreams_root(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path, tmp_path: Path
) -> None:
    async def scenario(engine: RemoteEngine) -> None:
        await engine.load_adapter(Adapter(name="pirate", id=7, path=pirate))

    run(remote(upstream, **lora_settings(tmp_path, base_model="Qwen/QwQ-32B")), cache_dir, scenario)

    (published,) = (tmp_path / "lora").iterdir()
    assert config_of(published)["base_model_name_or_path"] == "Qwen/QwQ-32B"


def test_an_adapter_the_upstream_cannot_find_is_a_request_error_naming_it(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path, tmp_path: Path
) -> None:
    upstream.replies.append(Failure(404, "The model `adapter-x` does not exist."))
    adapter = Adapter(name="pirate", id=7, path=pirate)

    async def scenario(engine: RemoteEngine) -> None:
        await collect(engine, GenerationParams(8, 0.0, adapter=adapter))

    with pytest.raises(EngineRequestError, match="LoRA adapter 'pirate'"):
        run(remote(upstream, **lora_settings(tmp_path)), cache_dir, scenario)


def test_after_a_404_the_adapters_folder_is_checked_again(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path, tmp_path: Path
) -> None:
    adapter = Adapter(name="pirate", id=7, path=pirate)
    upstream.replies.append(Failure(404, "The model does not exist."))

    async def scenario(engine: RemoteEngine) -> None:
        await engine.load_adapter(adapter)
        (published,) = (tmp_path / "lora").iterdir()
        shutil.rmtree(published)  # pruned by another process
        with pytest.raises(EngineRequestError, match="LoRA adapter 'pirate'"):
            await collect(engine, GenerationParams(8, 0.0, adapter=adapter))
        await collect(engine, GenerationParams(8, 0.0, adapter=adapter))

    run(remote(upstream, **lora_settings(tmp_path)), cache_dir, scenario)

    (published,) = (tmp_path / "lora").iterdir()
    models = [call.body["model"] for call in upstream.calls("/v1/completions")]
    assert models == [published.name, published.name]
    assert (published / WEIGHTS_FILE).read_bytes() == (pirate / WEIGHTS_FILE).read_bytes()


def test_the_start_removes_unused_adapters(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path, tmp_path: Path
) -> None:
    lora_dir = tmp_path / "lora"
    old = aged(lora_dir / publish(pirate, lora_dir, BASE), days=8)
    retrained = write_adapter(tmp_path / "b", base_model=QWQ, seed=2)
    young = aged(lora_dir / publish(retrained, lora_dir, BASE), days=6)

    async def scenario(engine: RemoteEngine) -> None:
        pass

    run(remote(upstream, **lora_settings(tmp_path)), cache_dir, scenario)

    assert [path.name for path in lora_dir.iterdir()] == [young.name]
    assert not old.exists()


def test_without_lora_an_adapter_is_refused(
    upstream: FakeUpstream, cache_dir: Path, pirate: Path
) -> None:
    async def scenario(engine: RemoteEngine) -> None:
        await engine.load_adapter(Adapter(name="pirate", id=7, path=pirate))

    with pytest.raises(EngineRequestError, match="LoRA is not enabled"):
        run(remote(upstream), cache_dir, scenario)


def test_with_the_zero_adapter_requests_without_one_run_through_it(
    upstream: FakeUpstream, cache_dir: Path, tmp_path: Path
) -> None:
    async def scenario(engine: RemoteEngine) -> None:
        await collect(engine, PLAIN)

    run(remote(upstream, **lora_settings(tmp_path, zero_adapter=True)), cache_dir, scenario)

    (zero,) = (tmp_path / "lora").iterdir()
    assert upstream.calls("/v1/completions")[-1].body["model"] == zero.name
    assert config_of(zero)["base_model_name_or_path"] == BASE
    assert config_of(zero)["r"] == 1


def test_a_removed_zero_adapter_is_published_again(
    upstream: FakeUpstream, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.remote.lora, "MARK_INTERVAL_S", 0.0)  # checked at every request

    async def scenario(engine: RemoteEngine) -> None:
        (zero,) = (tmp_path / "lora").iterdir()
        shutil.rmtree(zero)
        await collect(engine, PLAIN)

    run(remote(upstream, **lora_settings(tmp_path, zero_adapter=True)), cache_dir, scenario)

    (zero,) = (tmp_path / "lora").iterdir()
    assert upstream.calls("/v1/completions")[-1].body["model"] == zero.name
    assert config_of(zero)["r"] == 1


def test_lora_settings_need_a_folder(upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="lora_dir"):
        remote(upstream, enable_lora=True)
