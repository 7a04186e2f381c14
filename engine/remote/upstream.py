"""Reaching the upstream: one HTTP client per remote engine, and waiting for it at startup.

    UpstreamClient(config, headers)        every call to the upstream, on one aiohttp session
    await wait_for_model(client, config)   its /v1/models entry for served_model_name

aiohttp rather than httpx: a streamed completion costs this server CPU for every token it
relays, and aiohttp's C HTTP parser and plain asyncio streams take about 40 % less of it per
token than httpx's pure-Python stack (`bench.remote` prints the gateway's CPU per token).
"""

import asyncio
import json
import logging
import os
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson

from engine.errors import EngineStartError
from engine.remote.config import RemoteConfig

logger = logging.getLogger(__name__)

# vLLM's uvicorn closes idle connections after 5 s: reuse them for less, so that a request is
# never sent on a connection the upstream is closing.
KEEPALIVE_EXPIRY_S = 4.0
# Bytes read of an answer that is not a stream (/v1/models, /health, an error).
MAX_ANSWER_BYTES = 1 << 20
RETRY_INTERVAL_S = 1.0
LOG_EVERY_S = 10.0

# What a failed call raises: a connection refused, reset, cut short or timed out. (A GET's own
# timeout is asyncio's TimeoutError, which aiohttp does not wrap.)
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)


class UpstreamClient:
    """Calls to one upstream, on connections it keeps open between calls.

    No read timeout on a stream: a generation streams for as long as it needs, and the server's
    request deadline ends it. No limit on connections: each running request holds one (streams
    cannot share one), `max_concurrent_requests` bounds them if set, and the health probe never
    waits behind them."""

    def __init__(self, config: RemoteConfig, headers: dict[str, str]) -> None:
        self.url = config.url
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_EXPIRY_S),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_s),
            proxy=proxy_for(config.url),
        )

    def stream(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """`POST path` with a JSON body; the answer's body is read as it arrives. Leaving the
        block before the body ended closes the connection, which the upstream sees at once.
        The body is written by orjson: 0.4 ms of the event loop for an 80k-token prompt's ids,
        where the standard library's `json` takes 8 ms."""
        headers = {**headers, "Content-Type": "application/json"}
        return self._session.post(self.url + path, data=orjson.dumps(body), headers=headers)

    async def get(self, path: str, timeout_s: float) -> tuple[int, bytes]:
        """The status and (the start of) the body of `GET path`; raises TRANSPORT_ERRORS."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.get(self.url + path, timeout=timeout) as response:
            return response.status, await read_some(response, MAX_ANSWER_BYTES)

    async def close(self) -> None:
        await self._session.close()


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, read as
    Python's urllib reads them); None for none. Read once: aiohttp's `trust_env` would read the
    environment (and ~/.netrc) again for every request."""
    parts = urlsplit(url)
    if parts.hostname is None or proxy_bypass(parts.netloc):
        return None
    return getproxies().get(parts.scheme)


async def read_some(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of an answer, up to `limit` bytes."""
    body = b""
    while len(body) < limit:
        piece = await response.content.read(limit - len(body))
        if not piece:
            break
        body += piece
    return body


def auth_headers(config: RemoteConfig, name: str) -> dict[str, str]:
    """`Authorization` for every call, from the variable `api_key_env` names."""
    if config.api_key_env is None:
        return {}
    key = os.environ.get(config.api_key_env)
    if not key:
        raise EngineStartError(
            f"{name}: the environment variable {config.api_key_env} (api_key_env) holding the "
            "upstream's API key is not set"
        )
    return {"Authorization": f"Bearer {key}"}


async def wait_for_model(client: UpstreamClient, config: RemoteConfig, name: str) -> dict[str, Any]:
    """The upstream's `/v1/models` entry whose id is `served_model_name`. Upstreams start
    slowly (a 32B model loads for minutes; a router lists models once a worker is up), so
    this asks again every second until `start_timeout_s`; refused credentials fail at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.start_timeout_s
    next_log = loop.time() + LOG_EVERY_S
    while True:
        card, problem = await _find_model(client, config)
        if card is not None:
            return card
        now = loop.time()
        if now >= deadline:
            raise EngineStartError(
                f"{name}: the upstream at {config.url} {problem} (waited "
                f"{config.start_timeout_s:.0f} s)"
            )
        if now >= next_log:
            logger.info("%s: waiting for the upstream at %s, which %s", name, config.url, problem)
            next_log = now + LOG_EVERY_S
        await asyncio.sleep(min(RETRY_INTERVAL_S, deadline - now))


async def _find_model(
    client: UpstreamClient, config: RemoteConfig
) -> tuple[dict[str, Any] | None, str]:
    """(the model's entry, None) or (None, what is wrong)."""
    try:
        status, body = await client.get("/v1/models", config.connect_timeout_s + 5)
    except TRANSPORT_ERRORS as error:
        return None, f"cannot be reached ({error!r})"
    if status in (401, 403):
        raise EngineStartError(
            f"the upstream at {config.url} refused this server's credentials "
            f"({status}); check api_key_env"
        )
    if status != 200:
        return None, f"answered {status} to GET /v1/models"
    try:
        cards = json.loads(body)["data"]
        ids = [card["id"] for card in cards]
    except (ValueError, KeyError, TypeError):
        return None, "answered GET /v1/models with something other than a model list"
    for card in cards:
        if card["id"] == config.served_model_name and isinstance(card, dict):
            return card, ""
    listed = ", ".join(repr(model) for model in ids) or "nothing"
    return None, f"does not serve {config.served_model_name!r} (it lists {listed})"


def served_length(config: RemoteConfig, card: dict[str, Any], name: str) -> int:
    """The configured max_model_len, at most the upstream's; the upstream's if none is set."""
    upstream = card.get("max_model_len")
    upstream = upstream if isinstance(upstream, int) and upstream > 0 else None
    if config.max_model_len is None:
        if upstream is None:
            raise EngineStartError(
                f"{name}: the upstream does not report max_model_len in /v1/models; set "
                "max_model_len in the remote settings"
            )
        return upstream
    if upstream is not None and upstream < config.max_model_len:
        logger.warning(
            "%s: max_model_len is %d but the upstream serves %d; using %d",
            name,
            config.max_model_len,
            upstream,
            upstream,
        )
        return upstream
    return config.max_model_len
