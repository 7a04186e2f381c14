"""Text generation: request -> template -> tokens -> engine -> result. No HTTP here."""

import asyncio
import contextvars
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, assert_never

from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineRequestError
from engine.types import Adapter, FinishReason, GenerationParams, StructuredOutput
from server.errors import (
    BadInput,
    CapacityExceeded,
    ContextWindowExceeded,
    EngineUnavailable,
    InternalError,
    NoSuchModel,
    NotSupportedYet,
    RequestTimeout,
)
from server.generation.interruptible import Interruptible
from server.generation.json_mode import RawJson, parse_json_output, structured_output
from server.generation.lora import resolve_lora
from server.generation.output import (
    Finished,
    OutputPlan,
    OutputShaper,
    ReasoningChunk,
    StreamEvent,
    TextChunk,
    ToolCallChunk,
)
from server.generation.prompts import opens_reasoning, render_prompt
from server.generation.registry import ServedModel
from server.generation.schemas import (
    MessagesInput,
    PromptInput,
    TextGenerationResult,
    ToolCall,
    Usage,
)
from server.generation.specs import ModelSpec
from server.generation.validation import parse_input
from server.request_context import note_model

logger = logging.getLogger(__name__)

# Parameters of the wire schemas this server does not serve yet.
NOT_YET_SERVED = ("functions",)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    model: ServedModel
    prompt_token_ids: list[int]
    params: GenerationParams
    plan: OutputPlan
    stream: bool
    timeout_s: float
    include_reasoning: bool = False

    @property
    def json_mode(self) -> bool:
        return self.params.structured is not None


MAX_UTF8_BYTES = 4  # of one character

# Bodies holding more text than this are prepared on the long lane.
LONG_BODY_CHARS = 64 * 1024
# Bodies holding at most this much text, and no LoRA adapter, are prepared on the event loop
# itself: about 1 ms of templating and tokenizing, less than what a thread's two hops cost once
# the cores are busy (each hop waits for the GIL, up to its 5 ms switch interval, then for a
# core; measured: 51 ms on average at concurrency 8 in `bench.remote`).
INLINE_BODY_CHARS = 2 * 1024
# The long lane's nice value, over the process's own (Linux: per thread).
LONG_LANE_NICENESS = 10


def _lower_priority() -> None:
    """Tokenizing a long prompt takes a core for ~0.3 s (the tokenizer releases the GIL): where
    cores are short, it would take them from the event loop and the engines, and every live
    stream would stall. At a lower priority it takes what they leave; on idle cores it runs as
    fast as ever. (Threads the lane's thread starts, as a tokenizer's, inherit it.)"""
    if sys.platform == "linux":
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LONG_LANE_NICENESS)


def is_long(body: Any, limit: int = LONG_BODY_CHARS) -> bool:
    """Whether the strings in a parsed JSON body hold more than `limit` characters."""
    total = 0
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            total += len(value)
            if total > limit:
                return True
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def is_short(body: Any) -> bool:
    """Whether a body is prepared on the event loop: a JSON object of little text that names
    no LoRA adapter (resolving one reads its files)."""
    return isinstance(body, dict) and not body.get("lora") and not is_long(body, INLINE_BODY_CHARS)


class TextGeneration:
    """Runs text-generation requests against the served models."""

    def __init__(self, models: Mapping[str, ServedModel], timeout_s: float) -> None:
        self._models = models
        self._timeout_s = timeout_s
        # Templating, tokenizing (~0.3 s for an 80k-token prompt) and reading adapter files
        # run on two lanes of one thread each, off the event loop, so that live streams never
        # stall: long bodies on a lane of their own, at a lower CPU priority, so that neither
        # the streams nor the short requests queued behind them wait for their tokenizing.
        # Short bodies are prepared on the event loop (`is_short`): quicker than any hop.
        # (Fast tokenizers encode concurrently; the adapter ids are handed out under a lock.)
        self._preparing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
        self._preparing_long = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="prepare-long", initializer=_lower_priority
        )
        self._in_preparation: Counter[str] = Counter()

    async def prepare(
        self,
        model_name: str,
        body: Any,
        timeout_s: float | None = None,
        *,
        separate_reasoning: bool = False,
        session_id: str | None = None,
    ) -> PreparedRequest:
        """Validate, template and tokenize a request (a short one on the event loop, others on
        a preparing lane); raises WorkersAIError subclasses. `session_id` is the client's
        `x-session-affinity`.

        `separate_reasoning` keeps the reasoning out of the response text and emits it as
        ReasoningChunk events (the OpenAI-compatible routes' `reasoning_content`).
        """
        model = self._models.get(model_name)
        if model is not None:
            self._admit(model)
        work = partial(
            self._prepare,
            model_name,
            body,
            timeout_s,
            separate_reasoning=separate_reasoning,
            session_id=session_id,
        )
        if is_short(body):
            return work()
        # In a copy of this context, as asyncio.to_thread does: the request's id and record
        # reach the thread's log lines.
        context = contextvars.copy_context()
        self._in_preparation[model_name] += 1
        try:
            lane = self._preparing_long if is_long(body) else self._preparing
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(lane, context.run, work)
        finally:
            self._in_preparation[model_name] -= 1

    def _admit(self, model: ServedModel) -> None:
        """Refuse at once (CapacityExceeded) when the engine is full: the requests it holds and
        those being prepared for it reach its capacity. Preparing first would make a request
        that is then refused wait behind every other one being prepared. (Its load, not its
        status: a remote engine's status may ask the upstream for its health.)"""
        load = model.engine.load()
        if load.capacity is None:
            return
        held = load.running_requests + load.waiting_requests
        if held + self._in_preparation[model.spec.name] >= load.capacity:
            raise CapacityExceeded()

    def close(self) -> None:
        for lane in (self._preparing, self._preparing_long):
            lane.shutdown(wait=False, cancel_futures=True)

    def _prepare(
        self,
        model_name: str,
        body: Any,
        timeout_s: float | None,
        *,
        separate_reasoning: bool,
        session_id: str | None,
    ) -> PreparedRequest:
        note_model(model_name)
        model = self._models.get(model_name)
        if model is None:
            raise NoSuchModel(model_name)
        request = parse_input(model.spec, body)
        for field in NOT_YET_SERVED:
            if getattr(request, field, None):
                raise NotSupportedYet(field)
        adapter = resolve_lora(model.spec.name, model.adapters, request.lora)
        prompt = render_prompt(model.template, request)
        # A prompt that alone cannot fit is refused before tokenizing it (~0.3 s for 80k
        # tokens): its token floor, never over the true count, exceeds the window. One that
        # may fit is counted, so that a refusal near the limit states the exact estimate.
        # The floor never passes the prompt's UTF-8 bytes (4 a character at most): a prompt
        # shorter than that needs none.
        if MAX_UTF8_BYTES * len(prompt) > model.context_window:
            floor = model.engine.fewest_tokens(prompt)
            if floor > model.context_window:
                raise ContextWindowExceeded(floor + request.max_tokens, model.context_window)
        prompt_token_ids = model.engine.encode(prompt)
        estimated = len(prompt_token_ids) + request.max_tokens
        if estimated > model.context_window:
            raise ContextWindowExceeded(estimated, model.context_window)
        structured = structured_output(request, default_after_reasoning=model.json_after_reasoning)
        reasoning_in_output = opens_reasoning(prompt) and (
            structured is None or structured.after_reasoning
        )
        budget = self._timeout_s if timeout_s is None else min(timeout_s, self._timeout_s)
        return PreparedRequest(
            model=model,
            prompt_token_ids=prompt_token_ids,
            params=generation_params(request, structured, adapter, session_id),
            plan=OutputPlan(
                in_reasoning=reasoning_in_output,
                hide_reasoning=structured is not None or separate_reasoning,
                parse_tools=bool(getattr(request, "tools", None)),
            ),
            stream=request.stream,
            timeout_s=budget,
            include_reasoning=request.include_reasoning or separate_reasoning,
        )

    @property
    def models(self) -> Mapping[str, ServedModel]:
        return self._models

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def spec(self, model_name: str) -> ModelSpec:
        """The published facts of a served model; raises NoSuchModel."""
        model = self._models.get(model_name)
        if model is None:
            raise NoSuchModel(model_name)
        return model.spec

    async def events(
        self, request: PreparedRequest, request_id: str, steps: Interruptible | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Shaped output as the engine produces it, then one Finished with usage.

        Engine failures, the request deadline and unmet JSON mode surface as WorkersAIError.
        Closing the iterator (client gone) aborts the engine request. `steps` ends the waits
        for the engine (the deadline ends them with RequestTimeout); a caller may end them too.
        """
        steps = Interruptible() if steps is None else steps
        shaper = OutputShaper(request.plan)
        json_text: list[str] = []
        completion_tokens = 0
        finish_reason = None
        loop = asyncio.get_running_loop()
        # One timer for the whole request; it ends the step under way, never a `yield`: a
        # timeout must cancel the engine request, not whatever the consumer is awaiting.
        deadline = loop.call_at(loop.time() + request.timeout_s, steps.end, RequestTimeout())
        deltas = request.model.engine.generate(request.prompt_token_ids, request.params, request_id)
        try:
            async with aclosing(deltas):
                if request.params.adapter is not None:
                    await steps.step(request.model.engine.load_adapter(request.params.adapter))
                while (delta := await steps.step(anext(deltas, None))) is not None:
                    completion_tokens += delta.token_count
                    finish_reason = delta.finish_reason or finish_reason
                    for event in shaper.feed(delta.text):
                        if isinstance(event, TextChunk):
                            json_text.append(event.text)
                        yield event
        except EngineRequestError as error:
            raise BadInput(str(error)) from None
        except EngineBusyError:
            raise CapacityExceeded() from None
        except EngineDeadError as error:
            logger.error("engine of %s is dead: %s", request.model.spec.name, error)
            raise EngineUnavailable() from None
        except EngineError:
            raise InternalError() from None
        finally:
            deadline.cancel()
        for event in shaper.finish():
            if isinstance(event, TextChunk):
                json_text.append(event.text)
            yield event
        if request.json_mode:
            parse_json_output("".join(json_text), finish_reason, request.params.max_tokens)
        prompt_tokens = len(request.prompt_token_ids)
        yield Finished(
            Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            finish_reason,
        )


@dataclass(frozen=True, slots=True)
class Collected:
    """A whole generation, gathered from its events."""

    text: str
    reasoning: str
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: FinishReason | None


def workers_ai_result(request: PreparedRequest, output: Collected) -> TextGenerationResult:
    """A whole generation in Workers AI's `result` shape: in JSON mode `response` is the JSON
    value itself, as the model wrote it (`events()` has checked that it parses)."""
    response: Any = RawJson(output.text) if request.json_mode else output.text
    return TextGenerationResult(
        response=response,
        tool_calls=output.tool_calls,
        usage=output.usage,
        reasoning=output.reasoning if request.include_reasoning else None,
    )


async def collect(events: AsyncGenerator[StreamEvent, None]) -> Collected:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextChunk):
                text.append(event.text)
            elif isinstance(event, ReasoningChunk):
                reasoning.append(event.text)
            elif isinstance(event, ToolCallChunk):
                calls.append(event.call)
            elif isinstance(event, Finished):
                return Collected(
                    "".join(text), "".join(reasoning), calls, event.usage, event.finish_reason
                )
            else:
                assert_never(event)
    raise InternalError()  # events() always ends with Finished


def generation_params(
    request: PromptInput | MessagesInput,
    structured: StructuredOutput | None,
    adapter: Adapter | None = None,
    session_id: str | None = None,
) -> GenerationParams:
    """Engine sampling parameters from a validated request."""
    return GenerationParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        seed=request.seed,
        repetition_penalty=request.repetition_penalty,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        structured=structured,
        adapter=adapter,
        reject_if_busy=request.options.reject_if_busy,
        session_id=session_id,
    )
