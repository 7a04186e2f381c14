"""Start the real engines a settings tree asks for, and bind them to Workers AI model names."""

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from chat_templates import ChatTemplate
from engine.lora.format import AdapterLimits, LoraBase
from engine.lora.store import AdapterIds, AdapterStore, model_slug
from engine.protocol import Engine
from server.generation.specs import MODELS, ModelSpec
from server.settings import ConfigError, ModelSettings, Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A Workers AI model name bound to a running engine."""

    spec: ModelSpec
    engine: Engine
    template: ChatTemplate
    context_window: int
    stand_in: str | None = None
    json_after_reasoning: bool = False
    adapters: AdapterStore | None = None  # None: served without LoRA


async def start_engines(settings: Settings, stack: AsyncExitStack) -> dict[str, Engine]:
    """Start one vLLM engine per distinct engine config; `stack` closes them.

    Model names whose engine settings are identical share one engine.
    """
    from engine.builtin.checkpoints import prepare_checkpoint
    from engine.vllm.engine import VllmEngine

    started: dict[str, Engine] = {}
    engines: dict[str, Engine] = {}
    for model in settings.models:
        key = model.engine.model_dump_json()
        if key not in started:
            config = model.engine
            checkpoint: Path | str
            if config.builtin is not None:
                checkpoint = await asyncio.to_thread(
                    prepare_checkpoint, config.builtin, settings.resolved_cache_dir()
                )
            else:
                assert config.checkpoint is not None
                checkpoint = config.checkpoint
            logger.info("starting the engine for %s from %s", model.name, checkpoint)
            engine = await VllmEngine.start(config, checkpoint, model.name)
            stack.push_async_callback(engine.close)
            started[key] = engine
        engines[model.name] = started[key]
    return engines


async def watch_engines(
    models: Mapping[str, ServedModel], on_failure: Callable[[str], None], interval_s: float = 1.0
) -> None:
    """Check every engine each `interval_s`; on the first that is no longer healthy, call
    `on_failure` with a model name it serves, and return. Engines never come back by
    themselves: a dead vLLM engine stays dead until the process restarts."""
    while True:
        for name, model in models.items():
            if not (await model.engine.status()).healthy:
                on_failure(name)
                return
        await asyncio.sleep(interval_s)


def bind_models(settings: Settings, engines: Mapping[str, Engine]) -> dict[str, ServedModel]:
    """Pair each configured model name with its engine, template, served window and adapters."""
    served: dict[str, ServedModel] = {}
    adapter_ids: dict[int, AdapterIds] = {}  # one per engine: models sharing one share its ids
    for model in settings.models:
        spec = MODELS[model.name]
        engine = engines[model.name]
        window = min(spec.context_window, model.engine.max_model_len)
        served[model.name] = ServedModel(
            spec=spec,
            engine=engine,
            template=_template(model, engine),
            context_window=window,
            stand_in=model.stand_in,
            json_after_reasoning=model.json_after_reasoning,
            adapters=_adapter_store(
                settings, model, engine, adapter_ids.setdefault(id(engine), AdapterIds())
            ),
        )
        _log_model(model, window, spec.context_window)
    return served


def _adapter_store(
    settings: Settings, model: ModelSettings, engine: Engine, ids: AdapterIds
) -> AdapterStore | None:
    """The model's LoRA adapters, or None when its engine serves none.

    An adapter's `base_model_name_or_path` may name the Workers AI model, the checkpoint the
    engine loaded (id or path), or the built-in checkpoint.
    """
    if not model.engine.enable_lora:
        return None
    checkpoint = engine.checkpoint_info()
    names = {model.name, checkpoint.source, model.engine.checkpoint, model.engine.builtin}
    base = LoraBase(
        name=model.name,
        accepted_names=frozenset(name for name in names if name),
        checkpoint=checkpoint,
    )
    root = settings.resolved_adapters_dir() / model_slug(model.name)
    logger.info("%s: LoRA adapters are read from %s", model.name, root)
    return AdapterStore(root, base, AdapterLimits(max_rank=model.engine.max_lora_rank), ids)


def _template(model: ModelSettings, engine: Engine) -> ChatTemplate:
    spec = MODELS[model.name]
    if model.chat_template == "official":
        return ChatTemplate.builtin(spec.template)
    shipped = engine.checkpoint_template()
    if shipped is None:
        raise ConfigError(
            f"{model.name}: chat_template is 'checkpoint' but the checkpoint has no chat template"
        )
    return ChatTemplate(shipped.source, bos_token=shipped.bos_token, eos_token=shipped.eos_token)


def _log_model(model: ModelSettings, window: int, workers_ai_window: int) -> None:
    if window < workers_ai_window:
        logger.warning(
            "%s: serving a context window of %d tokens; Workers AI serves %d "
            "(max_model_len of this engine is smaller)",
            model.name,
            window,
            workers_ai_window,
        )
    else:
        logger.info("%s: serving the full context window of %d tokens", model.name, window)
    if model.stand_in:
        logger.warning(
            "%s is answered by a STAND-IN model: %s (responses carry the header "
            "X-Workers-AI-Local-Stand-In)",
            model.name,
            model.stand_in,
        )
