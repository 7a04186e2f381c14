"""LoRA adapters inside one vLLM `AsyncLLM`: part of the vLLM adapter (see `engine.vllm.engine`).

An adapter reaches `generate` only after `await llm.add_lora(...)` succeeded: a bad adapter
passed straight to `generate` kills vLLM's EngineCore, while `add_lora` fails safely. Adapters
load lazily, on their first request, once even when many first requests arrive together (a lock
per adapter), and stay in vLLM's LRU caches (`max_loras` in a batch, `max_cpu_loras` in memory).
vLLM reloads an adapter it evicted from its own files; `engine.lora.store` has validated those.

The CPU build needs one more thing. Its LoRA kernels (`vllm/lora/ops/torch_ops`) index the
stacked adapter weights with each token's adapter slot, and a token without an adapter has
slot -1, which Python indexing turns into the LAST slot: a request without `lora` batched next
to requests with adapters silently gets one of their adapters applied (measured on vLLM 0.32.0;
open upstream as vllm-project/vllm#48421). So on CPU every request without an adapter runs with
an all-zero adapter instead, which adds exactly nothing, and vLLM gets one more adapter slot
for it than configured.
"""

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import EngineDeadError, EngineRequestError
from engine.lora.format import CONFIG_FILE, WEIGHTS_FILE, tensor_name
from engine.types import Adapter, CheckpointInfo

logger = logging.getLogger(__name__)

# Outside the ids `engine.lora.store` hands out (1 to 2**31 - 2); vLLM needs ids >= 1.
ZERO_ADAPTER_ID = 2**31 - 1


class VllmAdapters:
    """Loads adapters into one `AsyncLLM` and names them in its requests."""

    def __init__(
        self,
        llm: Any,
        model_name: str,
        zero_adapter: Path | None,
        make_request: Callable[[Adapter], Any] | None = None,
    ) -> None:
        self._llm = llm
        self._model_name = model_name
        self._zero_adapter = zero_adapter
        self._make_request = make_request or lora_request
        self._locks: dict[int, asyncio.Lock] = {}

    @classmethod
    async def start(
        cls, llm: Any, model_name: str, checkpoint: CheckpointInfo, *, cpu: bool
    ) -> "VllmAdapters":
        """On the CPU build, also write and load the zero adapter (see the module docstring)."""
        if not cpu:
            return cls(llm, model_name, None)
        folder = Path(tempfile.mkdtemp(prefix="workers-ai-local-zero-lora-"))
        adapters = cls(llm, model_name, folder)
        try:
            await asyncio.to_thread(write_zero_adapter, folder, checkpoint)
            await adapters.load(Adapter(name="zero", id=ZERO_ADAPTER_ID, path=folder))
        except BaseException:
            adapters.close()
            raise
        return adapters

    async def load(self, adapter: Adapter) -> None:
        """Make `adapter` resident in the engine; raises EngineRequestError if vLLM refuses it
        (the engine keeps running) and EngineDeadError if the engine is gone."""
        lock = self._locks.setdefault(adapter.id, asyncio.Lock())
        async with lock:
            try:
                if adapter.id in await self._llm.list_loras():
                    return
                await self._llm.add_lora(self.request(adapter))
            except Exception as error:
                if self._llm.errored:
                    raise EngineDeadError(f"the engine of {self._model_name} has stopped") from None
                # add_lora reports every worker-side failure as a bare Exception.
                logger.warning(
                    "the engine of %s refused LoRA adapter %r (%s): %s",
                    self._model_name,
                    adapter.name,
                    adapter.path,
                    error,
                )
                raise EngineRequestError(
                    f"the engine could not load LoRA adapter '{adapter.name}'"
                ) from None
            logger.info(
                "loaded LoRA adapter %r (id %d) from %s into the engine of %s",
                adapter.name,
                adapter.id,
                adapter.path,
                self._model_name,
            )

    def request(self, adapter: Adapter) -> Any:
        return self._make_request(adapter)

    def request_for(self, adapter: Adapter | None) -> Any:
        """The `lora_request` of a generation: its adapter, or on CPU the zero adapter."""
        if adapter is not None:
            return self.request(adapter)
        if self._zero_adapter is not None:
            return self.request(Adapter(name="zero", id=ZERO_ADAPTER_ID, path=self._zero_adapter))
        return None

    def close(self) -> None:
        if self._zero_adapter is not None:
            shutil.rmtree(self._zero_adapter, ignore_errors=True)


def lora_request(adapter: Adapter) -> Any:
    """vLLM's LoRARequest for `adapter`."""
    from vllm.lora.request import LoRARequest

    # vLLM compares and hashes LoRARequests by name, and knows loaded adapters by id: the name
    # must follow from the id alone (two names of one adapter, two versions of one name).
    return LoRARequest(f"adapter-{adapter.id}", adapter.id, str(adapter.path))


def write_zero_adapter(folder: Path, checkpoint: CheckpointInfo) -> None:
    """A rank-1 LoRA on layer 0's q_proj whose weights are all zero."""
    import numpy as np
    from safetensors.numpy import save_file

    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": checkpoint.source,
        "r": 1,
        "lora_alpha": 1,
        "target_modules": ["q_proj"],
        "bias": "none",
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    hidden, q_size = checkpoint.linear_shapes()["q_proj"]
    tensors = {
        tensor_name(0, "q_proj", "A"): np.zeros((1, hidden), dtype=np.float16),
        tensor_name(0, "q_proj", "B"): np.zeros((q_size, 1), dtype=np.float16),
    }
    save_file(tensors, str(folder / WEIGHTS_FILE))
