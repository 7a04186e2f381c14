"""The remote engine: generation by a vLLM server or router over HTTP (see `engine.remote`).

The request. Every generation is one streamed `POST {url}/v1/completions` whose `prompt` is
the token ids (`engine.remote.wire.completion_body`), even when the client asked for a whole
response: closing that stream is how an abort reaches the replica through any router, and
closing or cancelling `generate` closes it at once. vLLM's `request_id` and `X-Request-Id` carry
the request id; a session (Workers AI's `x-session-affinity`) goes out as that header and as
`X-Session-ID`, which vllm-router's consistent hashing and vLLM itself read.

Where a grammar starts (`reasoning_ended`). In-process, JSON mode passes `reasoning_ended=True`
to `AsyncLLM.generate`: the grammar constrains the first token although the prompt ends inside
`<think>`. vLLM 0.32's `/v1/completions` has no such field: `CompletionRequest` has none, and
its serving code passes neither `reasoning_ended` nor `reasoning_parser_kwargs` to the engine
(only the `--enable-scale-out` endpoint `/inference/v1/generate` takes it, and routers do not
route that). A replica started with `--reasoning-parser` then decides by the prompt
(`is_reasoning_end`: is its last think token `</think>`?) and, for our prompts, holds the
grammar back until the model writes `</think>`, so JSON mode gets free text (seen on a real
replica). A replica without a reasoning parser (or with `enable_in_reasoning`) constrains from
the first token, which is `reasoning_ended=True` exactly: replicas run that way.
`after_reasoning` (in-process `reasoning_ended=None`: reason, then the grammar after
`</think>`) is then done here in two requests. The first generates freely and stops at
`</think>` (`stop_token_ids`, kept in the output); the second continues from the prompt plus
those tokens, which now close the reasoning, with the grammar and the tokens left. Its prompt
ends the reasoning, so it is constrained from its first token with or without a reasoning
parser. The reasoning is the one a single request produces (checked: identical text on a real
replica, seeded); what differs is that a seeded request samples its answer from a restarted
generator, and that the continuation is prefilled again (cheap with prefix caching on one
replica). A prompt that already closed its reasoning gets the grammar in one request.

Sampling fields a request leaves unset are not sent, so the replica applies its checkpoint's
generation_config.json (`--generation-config auto`, vLLM's default), as the in-process engine
does itself; `--generation-config vllm` on the replicas turns those defaults off.

`params.reject_if_busy` is best effort: this server cannot see the replicas' free slots. It
refuses at `max_concurrent_requests` (where every request is refused), and a replica whose
queue is full answers 503 (busy) to both kinds of request alike.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from engine.encoding import prompt_encoder
from engine.errors import (
    EngineBusyError,
    EngineDeadError,
    EngineError,
    EngineRequestError,
)
from engine.remote.checkpoint import Checkpoint, load_checkpoint
from engine.remote.config import RemoteConfig
from engine.remote.health import HealthProbe
from engine.remote.lora import AdapterPublisher
from engine.remote.upstream import UpstreamClient, auth_headers, served_length, wait_for_model
from engine.remote.wire import (
    Chunk,
    completion_body,
    data_events,
    error_message,
    read_chunk,
    status_error,
    transport_error,
)
from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    FinishReason,
    GenerationParams,
)

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "abort",
    "repetition": "stop",  # vLLM's repetition detection, which this server never asks for
}


@dataclass
class _Counted:
    """Tokens of one upstream request so far."""

    tokens: int = 0
    token_ids: list[int] | None = None  # kept only when a continuation needs them


class RemoteEngine:
    """An `engine.protocol.Engine` whose generation happens upstream, over HTTP."""

    def __init__(
        self,
        config: RemoteConfig,
        name: str,
        checkpoint: Checkpoint,
        client: UpstreamClient,
        max_model_len: int,
        publisher: AdapterPublisher | None = None,
        zero_adapter: bool = False,
    ) -> None:
        self._config = config
        self._name = name
        self._checkpoint = checkpoint
        self._client = client
        self._max_model_len = max_model_len
        self._publisher = publisher
        self._zero_adapter = zero_adapter
        self._health = HealthProbe(client, config.health_path)
        self._encode = prompt_encoder(checkpoint.tokenizer)
        self._in_flight = 0

    @classmethod
    async def start(cls, config: RemoteConfig, name: str, cache_dir: Path) -> "RemoteEngine":
        """Load the tokenizer, wait (up to `start_timeout_s`) for the upstream to list
        `served_model_name`, learn its max_model_len; raises EngineStartError."""
        headers = auth_headers(config, name)
        checkpoint = await asyncio.to_thread(load_checkpoint, config.tokenizer, cache_dir)
        client = UpstreamClient(config, headers)
        try:
            card = await wait_for_model(client, config, name)
            max_model_len = served_length(config, card, name)
            publisher = None
            if config.lora_dir is not None and config.enable_lora:
                root = card.get("root")
                base = config.base_model or (root if isinstance(root, str) else None)
                publisher = AdapterPublisher(
                    config.lora_dir.expanduser(),
                    base or config.served_model_name,
                    keep_s=config.lora_keep_days * 86400,
                )
                await asyncio.to_thread(publisher.sweep)
                if config.zero_adapter:
                    await publisher.publish_zero_adapter(checkpoint.info)
                logger.info(
                    "%s: LoRA adapters are published in %s for replicas whose --model is %r",
                    name,
                    publisher.lora_dir,
                    publisher.base_model,
                )
        except BaseException:
            await client.close()
            raise
        logger.info(
            "%s: generating at %s (model %r, max_model_len %d)",
            name,
            config.url,
            config.served_model_name,
            max_model_len,
        )
        zero_adapter = publisher is not None and config.zero_adapter
        return cls(config, name, checkpoint, client, max_model_len, publisher, zero_adapter)

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def fewest_tokens(self, text: str) -> int:
        return self._checkpoint.floor.fewest_tokens(text)

    def checkpoint_template(self) -> CheckpointTemplate | None:
        return self._checkpoint.template()

    def checkpoint_info(self) -> CheckpointInfo:
        return self._checkpoint.info

    def max_model_len(self) -> int:
        return self._max_model_len

    async def load_adapter(self, adapter: Adapter) -> None:
        await self._upstream_model(adapter)

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        cap = self._config.max_concurrent_requests
        if cap is not None and self._in_flight >= cap:
            raise EngineBusyError(f"{cap} requests of {self._name} are upstream already")
        model = await self._upstream_model(params.adapter)
        adapter = None if params.adapter is None else params.adapter.name
        headers = _request_headers(request_id, getattr(params, "session_id", None))
        structured = params.structured
        think_close = self._checkpoint.think_close
        reason_first = (
            structured is not None
            and structured.after_reasoning
            and think_close is not None
            and not self._checkpoint.reasoning_ended(prompt_token_ids)
        )
        body = completion_body(
            model=model,
            prompt_token_ids=prompt_token_ids,
            params=params,
            request_id=request_id,
            structured=None if reason_first else structured,
            stop_token_ids=[think_close] if reason_first and think_close is not None else None,
        )
        self._in_flight += 1
        try:
            counted = _Counted(token_ids=[] if reason_first else None)
            last: Chunk | None = None
            async with aclosing(self._stream(body, headers, adapter, counted)) as stream:
                async for chunk, tokens in stream:
                    last = chunk
                    finish = None if reason_first else _finish_reason(chunk.finish_reason)
                    yield Delta(chunk.text, tokens, finish)
            if not reason_first:
                return
            assert last is not None  # _stream ends with a finished chunk, or raises
            assert last.finish_reason is not None
            closed = last.finish_reason == "stop" and last.stop_reason == think_close
            left = params.max_tokens - counted.tokens
            if not closed or left <= 0:
                # The reasoning never ended, or it used the last token (in-process: "length").
                yield Delta("", 0, "length" if closed else _finish(last.finish_reason))
                return
            assert counted.token_ids is not None
            body = completion_body(
                model=model,
                prompt_token_ids=prompt_token_ids + counted.token_ids,
                params=params,
                request_id=request_id,
                structured=structured,
                max_tokens=left,
            )
            async with aclosing(self._stream(body, headers, adapter, _Counted())) as stream:
                async for chunk, tokens in stream:
                    yield Delta(chunk.text, tokens, _finish_reason(chunk.finish_reason))
        finally:
            self._in_flight -= 1

    async def _stream(
        self, body: dict[str, Any], headers: dict[str, str], adapter: str | None, counted: _Counted
    ) -> AsyncGenerator[tuple[Chunk, int], None]:
        """Each chunk of one streamed completion with the tokens behind it, to the one that
        finishes it. Closing this closes the connection, which aborts the request upstream."""
        finished = False
        try:
            async with self._client.stream("/v1/completions", body, headers) as response:
                if response.status != 200:
                    if response.status == 404 and self._publisher is not None:
                        self._publisher.forget(body["model"])  # its folder may be gone
                    message = await error_message(response)
                    raise status_error(response.status, message, adapter)
                async for payload in data_events(response.content.iter_any()):
                    chunk = read_chunk(payload, adapter)
                    if chunk is not None and not finished:
                        finished = chunk.finish_reason is not None
                        yield chunk, _count(chunk, counted)
                if finished:
                    # The rest of the body (its end, after `[DONE]`), so that the connection
                    # is kept for the next request rather than closed unread.
                    async for _ in response.content.iter_any():
                        pass
        except aiohttp.ClientError as error:
            raise transport_error(error, self._config.url) from None
        if not finished:
            raise EngineDeadError("the upstream ended the stream before the output finished")

    async def _upstream_model(self, adapter: Adapter | None) -> str:
        """The upstream `model` of a request: the base model (or the zero adapter), or the
        adapter's published name, publishing it first."""
        if adapter is None:
            if self._zero_adapter and self._publisher is not None:
                return await self._publisher.zero_adapter()
            return self._config.served_model_name
        if self._publisher is None:
            raise EngineRequestError(f"LoRA is not enabled for {self._name}")
        try:
            return await self._publisher.upstream_name(adapter)
        except OSError as error:
            logger.error("could not publish LoRA adapter %r: %s", adapter.name, error)
            raise EngineError(f"could not publish LoRA adapter '{adapter.name}'") from None

    def load(self) -> EngineLoad:
        """This server's requests upstream now. The upstream is not asked: a request's
        admission never waits for, nor starts, a health probe."""
        return EngineLoad(
            running_requests=self._in_flight, capacity=self._config.max_concurrent_requests
        )

    async def status(self) -> EngineStatus:
        """Healthy while the upstream's /health answered 200 within the last second."""
        healthy, detail = await self._health.check()
        load = self.load()
        return EngineStatus(
            healthy=healthy,
            running_requests=load.running_requests,
            detail=detail,
            capacity=load.capacity,
        )

    async def close(self) -> None:
        self._health.close()
        await self._client.close()


def _request_headers(request_id: str, session_id: str | None) -> dict[str, str]:
    """vLLM takes the request id from X-Request-Id; vllm-router's consistent hashing reads
    X-Session-ID (vLLM too, as the request's session), gateways Workers AI's own header."""
    headers = {"X-Request-Id": request_id}
    if session_id:
        headers["x-session-affinity"] = session_id
        headers["X-Session-ID"] = session_id
    return headers


def _count(chunk: Chunk, counted: _Counted) -> int:
    """Tokens behind a chunk: its token ids, else the growth of the usage count."""
    if chunk.token_ids is not None:
        tokens = len(chunk.token_ids)
        if counted.token_ids is not None:
            counted.token_ids.extend(chunk.token_ids)
    elif counted.token_ids is not None:
        raise EngineError("the upstream sent no token_ids (return_token_ids)")
    elif chunk.completion_tokens is not None:
        tokens = max(chunk.completion_tokens - counted.tokens, 0)
    else:
        tokens = 0
    counted.tokens += tokens
    return tokens


def _finish_reason(reason: str | None) -> FinishReason | None:
    return None if reason is None else _finish(reason)


def _finish(reason: str) -> FinishReason:
    finish = _FINISH_REASONS.get(reason)
    if finish is None:
        logger.warning("unknown finish_reason %r from the upstream, reported as 'stop'", reason)
        return "stop"
    return finish
