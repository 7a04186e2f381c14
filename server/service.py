"""Text generation: request -> template -> tokens -> engine -> result. No HTTP here."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from chat_templates import ChatTemplate, ChatTemplateError
from engine.errors import EngineDeadError, EngineError, EngineRequestError
from engine.protocol import Engine
from engine.types import GenerationParams
from server.catalog import ModelSpec
from server.errors import (
    BadInput,
    ContextWindowExceeded,
    InternalError,
    NoSuchModel,
    NotSupportedYet,
    RequestTimeout,
)
from server.schemas import (
    ImagePart,
    MessagesInput,
    PromptInput,
    QwqMessage,
    TextGenerationResult,
    TextPart,
    Usage,
)
from server.validation import parse_input

logger = logging.getLogger(__name__)

# Parameters of the wire schemas this server does not serve yet.
NOT_YET_SERVED = ("guided_json", "response_format", "tools", "functions", "lora")


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A Workers AI model name bound to a running engine."""

    spec: ModelSpec
    engine: Engine
    template: ChatTemplate
    context_window: int
    stand_in: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    model: ServedModel
    prompt_token_ids: list[int]
    params: GenerationParams
    stream: bool
    timeout_s: float


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    usage: Usage


StreamEvent = TextChunk | Finished


class TextGeneration:
    """Runs text-generation requests against the served models."""

    def __init__(self, models: Mapping[str, ServedModel], timeout_s: float) -> None:
        self._models = models
        self._timeout_s = timeout_s

    def prepare(
        self, model_name: str, body: Any, timeout_s: float | None = None
    ) -> PreparedRequest:
        """Validate, template and tokenize a request; raises WorkersAIError subclasses."""
        model = self._models.get(model_name)
        if model is None:
            raise NoSuchModel(model_name)
        request = parse_input(model.spec, body)
        for field in NOT_YET_SERVED:
            if getattr(request, field, None):
                raise NotSupportedYet(field)
        prompt = render_prompt(model.template, request)
        prompt_token_ids = model.engine.encode(prompt)
        estimated = len(prompt_token_ids) + request.max_tokens
        if estimated > model.context_window:
            raise ContextWindowExceeded(estimated, model.context_window)
        budget = self._timeout_s if timeout_s is None else min(timeout_s, self._timeout_s)
        return PreparedRequest(
            model=model,
            prompt_token_ids=prompt_token_ids,
            params=generation_params(request),
            stream=request.stream,
            timeout_s=budget,
        )

    async def complete(self, request: PreparedRequest, request_id: str) -> TextGenerationResult:
        """Generate the whole response."""
        pieces: list[str] = []
        async for event in self.events(request, request_id):
            if isinstance(event, TextChunk):
                pieces.append(event.text)
            else:
                return TextGenerationResult(response="".join(pieces), usage=event.usage)
        raise InternalError()  # events() always ends with Finished

    async def events(
        self, request: PreparedRequest, request_id: str
    ) -> AsyncGenerator[StreamEvent, None]:
        """Text chunks as the engine produces them, then one Finished with usage.

        Engine failures and the request deadline surface as WorkersAIError. Closing the
        iterator (client gone) aborts the engine request.
        """
        completion_tokens = 0
        deadline = asyncio.get_running_loop().time() + request.timeout_s
        deltas = request.model.engine.generate(request.prompt_token_ids, request.params, request_id)
        try:
            async with aclosing(deltas):
                while True:
                    # The deadline guards each step, never a `yield`: a timeout must cancel the
                    # engine request, not whatever the consumer is awaiting.
                    async with asyncio.timeout_at(deadline):
                        delta = await anext(deltas, None)
                    if delta is None:
                        break
                    completion_tokens += delta.token_count
                    if delta.text:
                        yield TextChunk(delta.text)
        except TimeoutError:
            raise RequestTimeout() from None
        except EngineRequestError as error:
            raise BadInput(str(error)) from None
        except EngineDeadError:
            logger.error("engine of %s is dead", request.model.spec.name)
            raise InternalError() from None
        except EngineError:
            raise InternalError() from None
        prompt_tokens = len(request.prompt_token_ids)
        yield Finished(
            Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
        )


def render_prompt(template: ChatTemplate, request: PromptInput | MessagesInput) -> str:
    """The text the model sees: the raw prompt, or the conversation through the chat template."""
    if isinstance(request, PromptInput):
        if request.raw:
            return request.prompt
        messages: list[dict[str, Any]] = [{"role": "user", "content": request.prompt}]
    else:
        messages = [_message_dict(message, index) for index, message in enumerate(request.messages)]
    try:
        return template.render(messages, add_generation_prompt=True)
    except ChatTemplateError as error:
        raise BadInput(str(error)) from None


def _message_dict(message: Any, index: int) -> dict[str, Any]:
    content = message.content
    if isinstance(message, QwqMessage):
        content = _flatten_parts(content, index)
    result: dict[str, Any] = {"role": message.role, "content": content}
    if message.tool_calls is not None:
        result["tool_calls"] = message.tool_calls
    if message.tool_call_id is not None:
        result["tool_call_id"] = message.tool_call_id
    return result


def _flatten_parts(content: Any, index: int) -> str | None:
    if content is None or isinstance(content, str):
        return content
    parts = [content] if isinstance(content, TextPart | ImagePart) else content
    texts: list[str] = []
    for position, part in enumerate(parts):
        if isinstance(part, ImagePart):
            raise BadInput(
                f"'/messages/{index}/content/{position}' is an image; this model takes text only"
            )
        texts.append(part.text)
    return "\n".join(texts)


def generation_params(request: PromptInput | MessagesInput) -> GenerationParams:
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
    )
