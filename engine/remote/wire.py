"""vLLM's `/v1/completions` as the remote engine speaks it (vLLM 0.32): the request body, the
streamed chunks, and the upstream's errors translated into `engine.errors` here and nowhere else.

    completion_body(...)        the JSON body of one streamed completion
    data_events(chunks)         the `data:` payloads of a server-sent event stream, to [DONE]
    read_chunk(payload)         one streamed chunk (or an in-band error, raised), without the
                                prompt's ids that the first one echoes
    status_error(...)           an HTTP error answer -> EngineError
    transport_error(...)        a failed connection -> EngineError

    upstream says                         raised                 the client gets
    503 (vLLM's queue is full), 429       EngineBusyError        429, code 3040
    400, 413, 422                         EngineRequestError     400 with upstream's message
    404 for a LoRA adapter                EngineRequestError     400 naming the adapter
    404 otherwise, any other 5xx,         EngineDeadError        503 "unavailable"
      unreachable, reset, cut short
    401/403, malformed stream, other      EngineError            500
"""

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from engine.errors import (
    EngineBusyError,
    EngineDeadError,
    EngineError,
    EngineRequestError,
)
from engine.remote.upstream import read_some
from engine.sampling import sampling_kwargs
from engine.types import GenerationParams, StructuredOutput

logger = logging.getLogger(__name__)

# Bytes of an error answer read to find its message; vLLM's are a few hundred.
MAX_ERROR_BYTES = 64 * 1024


def completion_body(
    *,
    model: str,
    prompt_token_ids: list[int],
    params: GenerationParams,
    request_id: str,
    structured: StructuredOutput | None,
    max_tokens: int | None = None,
    stop_token_ids: list[int] | None = None,
) -> dict[str, Any]:
    """The body of a streamed `POST /v1/completions` for a token-id prompt.

    Sampling fields the request leaves unset are left out, so that the upstream applies its
    checkpoint's generation_config.json defaults (`vllm serve --generation-config auto`, its
    default), as the in-process engine applies them itself. `max_tokens` is always sent: vLLM's
    default for completions is 16. `stop_token_ids` stop at (and keep) those tokens.

    The tokens behind each chunk are counted from its ids (`return_token_ids`). The running
    usage (`continuous_usage_stats`) counts them only where nothing drops it: through
    vllm-router 0.1.17 the chunks arrive without it (seen in `tests/integration/test_remote.py`
    with `return_token_ids` left out: every count was 0). With the ids, vLLM also sends the
    whole prompt's ids back in the first chunk, which `read_chunk` skips unparsed.
    """
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt_token_ids,
        **sampling_kwargs(params, {}),
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "return_token_ids": True,
        "skip_special_tokens": True,
        "request_id": request_id,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if structured is not None:
        body["structured_outputs"] = structured_outputs(structured)
    if stop_token_ids:
        body["stop_token_ids"] = stop_token_ids
        body["include_stop_str_in_output"] = True
    return body


def structured_outputs(structured: StructuredOutput) -> dict[str, Any]:
    """vLLM's `structured_outputs` (never the `guided_*` fields: 0.32 ignores them silently)."""
    if structured.json_schema is not None:
        return {"json": structured.json_schema}
    if structured.regex is not None:
        return {"regex": structured.regex}
    return {"json_object": True}


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed choice: new text, the tokens behind it (vLLM's `return_token_ids`), the
    completion tokens so far (`continuous_usage_stats`), and how it finished, if it did."""

    text: str
    token_ids: list[int] | None
    completion_tokens: int | None
    finish_reason: str | None
    stop_reason: int | str | None


async def data_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` payload of each server-sent event, until `[DONE]` or the stream's end.
    Comments (vLLM's `: keep-alive`) and other fields are skipped.

    It reads the body's bytes as they arrive and splits lines as the SSE spec says (LF, CRLF
    or CR): no text decoding and no line iterator, since it runs for every token; JSON parses
    the payload's bytes. A long line (the first chunk echoes the prompt's ids: 580 KB for an
    80k-token prompt) is gathered piece by piece and split once it ends, not once per piece."""
    data: list[bytes] = []
    pending: list[bytes] = []  # the start of a line whose end has not arrived
    after_cr = False  # the last chunk ended with CR: an LF starting the next one ends no line
    async for chunk in chunks:
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            if chunk:
                pending.append(chunk)
            after_cr = False
            continue
        buffer = b"".join((*pending, chunk)) if pending else chunk
        after_cr = buffer.endswith(b"\r")
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        rest = lines.pop()
        pending = [rest] if rest else []
        for line in lines:
            if line.startswith(b"data:"):
                data.append(_field_value(line))
            elif not line and data:
                payload = b"\n".join(data)
                data = []
                if payload == b"[DONE]":
                    return
                yield payload
    line = b"".join(pending)
    if line.startswith(b"data:"):
        data.append(_field_value(line))
    if data and (payload := b"\n".join(data)) != b"[DONE]":
        yield payload


def _field_value(line: bytes) -> bytes:
    """What follows `data:`, without the one space the spec lets follow the colon."""
    return line[6:] if line.startswith(b"data: ") else line[5:]


# The field in which vLLM's first chunk (with `return_token_ids`) echoes the prompt's ids. Those
# cannot contain `]`, and in JSON text this key, quotes unescaped, can only be a key.
PROMPT_IDS_FIELD = b'"prompt_token_ids":['
# Payloads shorter than this are parsed as they are.
ECHO_MIN_BYTES = 4096


def without_prompt_ids(payload: bytes) -> bytes:
    """A chunk's payload without the prompt's ids. For an 80k-token prompt they are 580 KB of
    the first chunk, which took 8-11 ms of the event loop (every live stream) to parse here;
    cutting them out takes 0.03 ms."""
    if len(payload) < ECHO_MIN_BYTES:
        return payload
    start = payload.find(PROMPT_IDS_FIELD)
    if start < 0:
        return payload
    end = payload.find(b"]", start + len(PROMPT_IDS_FIELD))
    if end < 0:
        return payload  # malformed: parsing it will say so
    rest = payload[end + 1 :]
    if rest.startswith(b","):
        return payload[:start] + rest[1:]
    # The last field: drop the comma before it instead.
    head = payload[:start].rstrip()
    return (head[:-1] if head.endswith(b",") else head) + rest


def read_chunk(payload: bytes | str, adapter: str | None = None) -> Chunk | None:
    """The choice of one streamed chunk; None for the closing usage-only chunk. An in-band
    error (vLLM sends one when generation fails after the stream began) is raised. The prompt's
    ids that vLLM's first chunk echoes are not parsed (`without_prompt_ids`)."""
    try:
        if isinstance(payload, bytes):
            payload = without_prompt_ids(payload)
        data = orjson.loads(payload)
        if not isinstance(data, dict):
            raise TypeError(type(data).__name__)
        if "error" in data:
            status, message = _error_fields(data)
            raise status_error(status, message, adapter)
        usage = data.get("usage")
        completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        choices = data["choices"]
        if not choices:
            return None
        choice = choices[0]
        token_ids = choice.get("token_ids")
        return Chunk(
            text=str(choice.get("text") or ""),
            token_ids=None if token_ids is None else [int(token) for token in token_ids],
            completion_tokens=None if completion_tokens is None else int(completion_tokens),
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
        )
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
        text = payload if isinstance(payload, str) else payload.decode(errors="replace")
        logger.error("malformed chunk from the upstream (%s): %.300s", error, text)
        raise EngineError("the upstream sent a malformed stream") from None


def status_error(status: int, message: str, adapter: str | None = None) -> EngineError:
    """The engine error for an upstream answer with HTTP `status` (or an in-band error with
    that code). `adapter` names the LoRA adapter of the request, if any."""
    if status in (429, 503):
        return EngineBusyError(f"the upstream is busy: {message}")
    if status == 404 and adapter is not None:
        return EngineRequestError(
            f"the upstream does not serve LoRA adapter '{adapter}' (is its LoRA resolver set "
            f"up?): {message}"
        )
    if status in (400, 413, 422):
        prefix = f"LoRA adapter '{adapter}': " if adapter and "lora" in message.lower() else ""
        return EngineRequestError(prefix + message)
    if status == 404 or status >= 500:
        return EngineDeadError(f"the upstream answered {status}: {message}")
    if status in (401, 403):
        logger.error("the upstream refused this server's credentials (%d): %s", status, message)
        return EngineError("the upstream refused this server's credentials")
    logger.error("unexpected answer %d from the upstream: %s", status, message)
    return EngineError(f"unexpected answer {status} from the upstream")


def transport_error(error: aiohttp.ClientError, url: str) -> EngineDeadError:
    """A connection that failed: refused, reset, timed out, or closed mid-answer."""
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return EngineDeadError(f"cannot reach the upstream at {url}: {error}")
    return EngineDeadError(f"the connection to the upstream at {url} failed: {error!r}")


async def error_message(response: aiohttp.ClientResponse) -> str:
    """The message of an error answer: vLLM's `{"error": {"message"}}`, FastAPI's `detail`,
    or the start of the text."""
    body = await read_some(response, MAX_ERROR_BYTES)
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500] or response.reason or str(response.status)
    if isinstance(data, dict):
        return _error_fields(data)[1]
    return text.strip()[:500]


def _error_fields(data: dict[str, Any]) -> tuple[int, str]:
    error = data.get("error", data)
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or json.dumps(error)[:500]
        code = error.get("code")
        status = code if isinstance(code, int) else 500
        return status, str(message)
    return 500, str(error)
