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
user). Old versions are left in place: a replica may still be using them.
"""

import asyncio
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from engine.durable import fsync_path
from engine.errors import EngineRequestError
from engine.lora.format import CONFIG_FILE, WEIGHTS_FILE
from engine.types import Adapter, CheckpointInfo

logger = logging.getLogger(__name__)

PREFIX = "adapter-"
# Temp folders older than this are leftovers of a publisher that died.
STALE_PARTIAL_S = 3600.0
_CHUNK = 1 << 20


class AdapterPublisher:
    """Publishes the adapters of one remote engine, once each per server process."""

    def __init__(self, lora_dir: Path, base_model: str) -> None:
        self.lora_dir = lora_dir
        self.base_model = base_model
        self._names: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def upstream_name(self, adapter: Adapter) -> str:
        """The upstream `model` of `adapter`, published first if this process has not yet.
        `Adapter.id` names one version of an adapter for the life of this process."""
        name = self._names.get(adapter.id)
        if name is not None:
            return name
        async with self._locks.setdefault(adapter.id, asyncio.Lock()):
            if adapter.id not in self._names:
                name = await asyncio.to_thread(
                    publish, adapter.path, self.lora_dir, self.base_model
                )
                logger.info("published LoRA adapter %r as %s/%s", adapter.name, self.lora_dir, name)
                self._names[adapter.id] = name
        return self._names[adapter.id]

    async def publish_zero_adapter(self, checkpoint: CheckpointInfo) -> str:
        """Publish an adapter whose weights are all zero (see `engine.vllm.lora`)."""
        from engine.vllm.lora import write_zero_adapter

        def write_and_publish() -> str:
            with tempfile.TemporaryDirectory(prefix="workers-ai-local-zero-lora-") as folder:
                write_zero_adapter(Path(folder), checkpoint)
                return publish(Path(folder), self.lora_dir, self.base_model)

        return await asyncio.to_thread(write_and_publish)

    def sweep(self) -> None:
        """Remove temp folders that publishers which died left behind."""
        sweep_partials(self.lora_dir)


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
