"""LoRA adapters for remote replicas: published into the folder their filesystem resolver reads.

    <lora_dir>/adapter-<digest>/adapter_config.json        base_model_name_or_path = base_model
                                adapter_model.safetensors   a copy of the adapter's weights

vLLM's filesystem resolver (`vllm/plugins/lora_resolvers/filesystem_resolver.py`) serves a
request whose `model` is an unknown name by loading `<VLLM_LORA_RESOLVER_CACHE_DIR>/<model>/`,
if its adapter_config.json says `peft_type: LORA` and names the replica's `--model` value as
`base_model_name_or_path`. So this module rewrites that field, and a request names the folder.

The folder's name is a digest of what is published (the rewritten config and the weights),
not the adapter's engine id: ids of later versions of an adapter depend on what each server
process has seen (`engine.lora.store.AdapterIds`), while replicas, shared by many processes,
cache an adapter by name for their whole life. A digest names one version the same in every
process, and a new version gets a new name, so a replica never serves stale weights.

Publishing is atomic and idempotent: each publisher writes a hidden temp folder beside the
target and renames it into place; when several processes publish one adapter at once, one
rename wins and the others find the target there. The weights are copied, not hard-linked:
a link would change with the source if the source were rewritten in place, under a replica
that already loaded it, and it would keep the source's permissions (replicas may run as another
user).

Unused adapters are removed. Every version of every adapter gets a folder of its own, so
`lora_dir` would only grow. A server process marks the folder of each adapter it names upstream
as used (its mtime, at most once every MARK_INTERVAL_S per folder), and `prune_unused` removes
the folders no process has marked for `keep_s` (RemoteConfig.lora_keep_days): at startup and
after each publish, the only way the folder grows. A removed adapter that a request names again
is published again: a process checks the folder is still there when it marks it, and forgets
its mark when a replica answers 404 for the name. A replica that had loaded an adapter keeps
serving it from memory; the files matter only to a replica that loads it.
"""

import asyncio
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.durable import fsync_path
from engine.errors import EngineRequestError
from engine.lora.format import CONFIG_FILE, WEIGHTS_FILE
from engine.types import Adapter, CheckpointInfo

logger = logging.getLogger(__name__)

PREFIX = "adapter-"
# Temp folders older than this are leftovers of a publisher that died.
STALE_PARTIAL_S = 3600.0
# How often a process marks the folder of an adapter it keeps naming as used (see above).
MARK_INTERVAL_S = 60.0
DEFAULT_KEEP_S = 7 * 24 * 3600.0
_CHUNK = 1 << 20


class AdapterPublisher:
    """Publishes the adapters of one remote engine, once each per server process, and marks
    the ones it names as used."""

    def __init__(
        self,
        lora_dir: Path,
        base_model: str,
        keep_s: float = DEFAULT_KEEP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lora_dir = lora_dir
        self.base_model = base_model
        self.keep_s = keep_s
        self._clock = clock
        self._names: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._marked: dict[str, float] = {}  # folder name -> clock() when last marked
        self._zero: tuple[CheckpointInfo, str] | None = None
        self._zero_lock = asyncio.Lock()

    async def upstream_name(self, adapter: Adapter) -> str:
        """The upstream `model` of `adapter`, published first if this process has not yet, or
        if its folder was removed since. `Adapter.id` names one version of an adapter for the
        life of this process."""
        name = self._names.get(adapter.id)
        if name is not None and self._in_place(name):
            return name
        async with self._locks.setdefault(adapter.id, asyncio.Lock()):
            name = self._names.get(adapter.id)
            if name is None or not self._in_place(name):
                name = await asyncio.to_thread(self._publish, adapter.path)
                logger.info("published LoRA adapter %r as %s/%s", adapter.name, self.lora_dir, name)
                self._names[adapter.id] = name
        return name

    async def publish_zero_adapter(self, checkpoint: CheckpointInfo) -> str:
        """Publish an adapter whose weights are all zero (see `engine.vllm.lora`); requests
        without an adapter then name it (`zero_adapter`)."""
        from engine.vllm.lora import write_zero_adapter

        def write_and_publish() -> str:
            with tempfile.TemporaryDirectory(prefix="workers-ai-local-zero-lora-") as folder:
                write_zero_adapter(Path(folder), checkpoint)
                return self._publish(Path(folder))

        async with self._zero_lock:
            if self._zero is None or not self._in_place(self._zero[1]):
                self._zero = checkpoint, await asyncio.to_thread(write_and_publish)
            return self._zero[1]

    async def zero_adapter(self) -> str:
        """The upstream `model` of a request without an adapter: the zero adapter, published
        again if its folder was removed since."""
        if self._zero is None:
            raise RuntimeError("the zero adapter was never published")
        checkpoint, name = self._zero
        if self._in_place(name):
            return name
        return await self.publish_zero_adapter(checkpoint)

    def forget(self, name: str) -> None:
        """A replica did not find `name`: check its folder before naming it again."""
        self._marked.pop(name, None)

    def sweep(self) -> None:
        """Remove temp folders that publishers which died left behind, and unused adapters."""
        sweep_partials(self.lora_dir)
        prune_unused(self.lora_dir, self.keep_s)

    def _publish(self, folder: Path) -> str:
        """Publish (blocking), mark it used, and prune what is unused: the folder grows here."""
        name = publish(folder, self.lora_dir, self.base_model)
        self._marked.pop(name, None)
        self._in_place(name)
        prune_unused(self.lora_dir, self.keep_s)
        return name

    def _in_place(self, name: str) -> bool:
        """Whether the folder `name` is still published; marks it used if not marked lately."""
        now = self._clock()
        last = self._marked.get(name)
        if last is not None and now - last < MARK_INTERVAL_S:
            return True
        try:
            os.utime(self.lora_dir / name)
        except FileNotFoundError:
            self._marked.pop(name, None)
            return False
        except OSError as error:
            # Unmarked, it may be pruned while used; it is then published again.
            log = logger.debug if name in self._marked else logger.warning
            log("could not mark %s/%s as used: %s", self.lora_dir, name, error)
        self._marked[name] = now
        return True


def publish(folder: Path, lora_dir: Path, base_model: str) -> str:
    """Publish the adapter in `folder` (validated already) for replicas whose `--model` is
    `base_model`; return its name under `lora_dir`. Blocking: reads and copies the weights."""
    config_bytes = _published_config(folder, base_model)
    weights = folder / WEIGHTS_FILE
    name = PREFIX + _digest(config_bytes, weights)
    target = lora_dir / name
    if (target / CONFIG_FILE).is_file():
        return name
    lora_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=lora_dir))
    try:
        copied = _copy_hashing(weights, partial / WEIGHTS_FILE, config_bytes)
        if PREFIX + copied != name:
            raise EngineRequestError(
                f"the files of LoRA adapter {folder.name!r} changed while it was published; "
                "try again"
            )
        (partial / CONFIG_FILE).write_bytes(config_bytes)
        for path in (partial / WEIGHTS_FILE, partial / CONFIG_FILE):
            path.chmod(0o644)
            fsync_path(path)
        partial.chmod(0o755)
        fsync_path(partial)
        try:
            os.rename(partial, target)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(partial, ignore_errors=True)  # another process published it first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    fsync_path(lora_dir)
    return name


def sweep_partials(lora_dir: Path, older_than_s: float = STALE_PARTIAL_S) -> None:
    if not lora_dir.is_dir():
        return
    cutoff = time.time() - older_than_s
    for leftover in lora_dir.glob(f".{PREFIX}*.partial"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue  # another process swept it


def prune_unused(lora_dir: Path, keep_s: float, now: float | None = None) -> list[str]:
    """Remove the published adapters (`adapter-*` folders) that no process marked as used in
    the last `keep_s` seconds; the names removed. Each is renamed out of the way first (a
    replica finds it whole or not at all) and put back if a process marked it meanwhile; a
    crash before it is deleted leaves a partial folder for `sweep_partials`."""
    if not lora_dir.is_dir():
        return []
    current = time.time() if now is None else now
    cutoff = current - keep_s
    removed: list[str] = []
    for folder in lora_dir.glob(PREFIX + "*"):
        try:
            status = folder.lstat()
            if not stat.S_ISDIR(status.st_mode) or status.st_mtime >= cutoff:
                continue
            doomed = lora_dir / f".{folder.name}.{secrets.token_hex(4)}.removed.partial"
            folder.rename(doomed)
            if doomed.stat().st_mtime >= cutoff:  # marked between lstat and rename
                _put_back(doomed, folder)
                continue
        except FileNotFoundError:
            continue  # another process removed it
        except OSError as error:
            logger.warning("could not remove the unused LoRA adapter %s: %s", folder, error)
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        days = (current - status.st_mtime) / 86400
        logger.info("removed LoRA adapter %s, unused for %.1f days", folder, days)
        removed.append(folder.name)
    return removed


def _put_back(doomed: Path, folder: Path) -> None:
    try:
        doomed.rename(folder)
    except OSError:  # published again meanwhile: that copy is as good
        shutil.rmtree(doomed, ignore_errors=True)


def _published_config(folder: Path, base_model: str) -> bytes:
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    return json.dumps(config, indent=2, sort_keys=True).encode("utf-8")


def _digest(config_bytes: bytes, weights: Path) -> str:
    digest = hashlib.blake2b(config_bytes, digest_size=10)
    with weights.open("rb") as source:
        while block := source.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashing(source_path: Path, target_path: Path, config_bytes: bytes) -> str:
    """Copy the weights and return the digest of what was copied."""
    digest = hashlib.blake2b(config_bytes, digest_size=10)
    with source_path.open("rb") as source, target_path.open("wb") as target:
        while block := source.read(_CHUNK):
            digest.update(block)
            target.write(block)
    return digest.hexdigest()
