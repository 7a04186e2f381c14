"""Reaching the upstream: one HTTP client per remote engine, and waiting for it at startup.

make_client(config, headers)           httpx.AsyncClient for every call to the upstream
await wait_for_model(client, config)   its /v1/models entry for served_model_name
"""

import asyncio
import logging
import os
from typing import Any

import httpx

from engine.errors import EngineStartError
from engine.remote.config import RemoteConfig

logger = logging.getLogger(__name__)

# vLLM's uvicorn closes idle connections after 5 s: reuse them for less, so that a request is
# never sent on a connection the upstream is closing.
KEEPALIVE_EXPIRY_S = 4.0
KEEPALIVE_CONNECTIONS = 64
WRITE_TIMEOUT_S = 60.0
RETRY_INTERVAL_S = 1.0
LOG_EVERY_S = 10.0


def make_client(config: RemoteConfig, headers: dict[str, str]) -> httpx.AsyncClient:
    """No read timeout: a generation streams for as long as it needs, and the server's request
    deadline ends it. No pool limit or pool timeout: each running request holds one connection
    (streams cannot share one), `max_concurrent_requests` bounds them if set, and the health
    probe never waits behind them."""
    return httpx.AsyncClient(
        base_url=config.url,
        headers=headers,
        timeout=httpx.Timeout(
            connect=config.connect_timeout_s, read=None, write=WRITE_TIMEOUT_S, pool=None
        ),
        limits=httpx.Limits(
            max_connections=None,
            max_keepalive_connections=KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
    )


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


async def wait_for_model(
    client: httpx.AsyncClient, config: RemoteConfig, name: str
) -> dict[str, Any]:
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
    client: httpx.AsyncClient, config: RemoteConfig
) -> tuple[dict[str, Any] | None, str]:
    """(the model's entry, None) or (None, what is wrong)."""
    try:
        response = await client.get("/v1/models", timeout=config.connect_timeout_s + 5)
    except httpx.HTTPError as error:
        return None, f"cannot be reached ({error!r})"
    if response.status_code in (401, 403):
        raise EngineStartError(
            f"the upstream at {config.url} refused this server's credentials "
            f"({response.status_code}); check api_key_env"
        )
    if response.status_code != 200:
        return None, f"answered {response.status_code} to GET /v1/models"
    try:
        cards = response.json()["data"]
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
