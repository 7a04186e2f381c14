"""`engine.vllm.lora` over a scripted stand-in for vLLM's `AsyncLLM` (no vLLM import)."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import engine.vllm.lora
from engine.config import EngineConfig
from engine.errors import EngineDeadError, EngineRequestError
from engine.lora.format import AdapterLimits, validate_adapter
from engine.types import Adapter
from engine.vllm.engine import engine_args
from engine.vllm.lora import ZERO_ADAPTER_ID, VllmAdapters, write_zero_adapter
from tests.support.lora_factory import QWQ, TINY_CHECKPOINT, tiny_base

PIRATE = Adapter(name="pirate", id=1, path=Path("/adapters/pirate"))
POET = Adapter(name="poet", id=2, path=Path("/adapters/poet"))


@dataclass
class ScriptedLLM:
    """Holds adapters by id as vLLM does; `add_lora` takes a while, as loading from disk does."""

    refuse: set[int] = field(default_factory=set)
    dies: bool = False
    resident: set[int] = field(default_factory=set)
    added: list[int] = field(default_factory=list)
    errored: bool = False

    async def list_loras(self) -> set[int]:
        await asyncio.sleep(0)
        return set(self.resident)

    async def add_lora(self, request: Adapter) -> bool:
        self.added.append(request.id)
        await asyncio.sleep(0.01)
        if self.dies:
            self.errored = True
            raise RuntimeError("EngineCore encountered an issue")
        if request.id in self.refuse:
            raise Exception("Call to add_lora method failed: Worker failed with error '...'")
        self.resident.add(request.id)
        return True


def adapters(llm: ScriptedLLM, zero_adapter: Path | None = None) -> VllmAdapters:
    return VllmAdapters(llm, QWQ, zero_adapter, make_request=lambda adapter: adapter)


def test_concurrent_first_requests_load_an_adapter_once() -> None:
    llm = ScriptedLLM()
    loader = adapters(llm)

    async def main() -> None:
        await asyncio.gather(*[loader.load(PIRATE) for _ in range(5)], loader.load(POET))

    asyncio.run(main())

    assert sorted(llm.added) == [1, 2]


def test_a_resident_adapter_is_not_loaded_again() -> None:
    llm = ScriptedLLM(resident={1})

    asyncio.run(adapters(llm).load(PIRATE))

    assert llm.added == []


def test_an_evicted_adapter_is_loaded_again() -> None:
    llm = ScriptedLLM()
    loader = adapters(llm)
    asyncio.run(loader.load(PIRATE))
    llm.resident.clear()  # vLLM's LRU dropped it

    asyncio.run(loader.load(PIRATE))

    assert llm.added == [1, 1]


def test_a_refused_adapter_is_a_request_error_and_others_still_load() -> None:
    llm = ScriptedLLM(refuse={1})
    loader = adapters(llm)

    with pytest.raises(EngineRequestError) as caught:
        asyncio.run(loader.load(PIRATE))
    asyncio.run(loader.load(POET))

    assert str(caught.value) == "the engine could not load LoRA adapter 'pirate'"
    assert llm.resident == {2}


def test_a_dead_engine_is_reported_as_dead() -> None:
    with pytest.raises(EngineDeadError):
        asyncio.run(adapters(ScriptedLLM(dies=True)).load(PIRATE))


def test_requests_without_an_adapter_use_the_zero_adapter_when_there_is_one() -> None:
    zero = adapters(ScriptedLLM(), zero_adapter=Path("/tmp/zero")).request_for(None)

    assert isinstance(zero, Adapter)
    assert zero.id == ZERO_ADAPTER_ID
    assert adapters(ScriptedLLM()).request_for(None) is None
    assert adapters(ScriptedLLM()).request_for(PIRATE) == PIRATE


def test_the_zero_adapter_is_a_valid_adapter_that_changes_nothing(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    write_zero_adapter(tmp_path, TINY_CHECKPOINT)

    validate_adapter(tmp_path, tiny_base(QWQ), AdapterLimits(max_rank=8))
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert all(not tensor.any() for tensor in tensors.values())


def test_the_zero_adapter_is_loaded_at_start_on_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.vllm.lora, "lora_request", lambda adapter: adapter)
    cpu, gpu = ScriptedLLM(), ScriptedLLM()

    async def main() -> list[VllmAdapters]:
        return [
            await VllmAdapters.start(llm, QWQ, TINY_CHECKPOINT, cpu=on_cpu)
            for llm, on_cpu in ((cpu, True), (gpu, False))
        ]

    for loader in asyncio.run(main()):
        loader.close()

    assert (cpu.added, gpu.added) == ([ZERO_ADAPTER_ID], [])


@pytest.mark.parametrize(("cpu", "extra"), [(True, 1), (False, 0)], ids=["cpu", "gpu"])
def test_the_cpu_build_gets_one_more_adapter_slot(cpu: bool, extra: int) -> None:
    config = EngineConfig(
        checkpoint="x", max_model_len=64, enable_lora=True, max_loras=2, max_cpu_loras=4
    )

    args = engine_args(config, "x", cpu=cpu)

    assert (args["max_loras"], args["max_cpu_loras"]) == (2 + extra, 4 + extra)
    assert args["max_lora_rank"] == 32
