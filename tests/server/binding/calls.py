"""Binding requests as Miniflare's remote-proxy client sends them (server.binding.protocol)."""

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.support.app import QWQ, TOKEN

RUN_URL = "https://workers-binding.ai/run?version=3"
GATEWAY_URL = "https://workers-binding.ai/ai-gateway/run?version=3"
MODELS_URL = "https://workers-binding.ai/ai-api/models/search"
TOKEN_PATH = f"/binding/{TOKEN}/"


def run_headers(model: str = QWQ, url: str = RUN_URL, **inner: str) -> dict[str, str]:
    """`env.AI.run(model, ...)`'s headers; `inner` are more inner headers (`extraHeaders`)."""
    headers = {
        "MF-Binding": "AI",
        "MF-URL": url,
        "MF-Header-content-type": "application/json",
        "MF-Header-cf-consn-sdk-version": "2.0.0",
        "MF-Header-cf-consn-model-id": model,
    }
    headers.update({f"MF-Header-{name}": value for name, value in inner.items()})
    return headers


def run(
    client: TestClient,
    inputs: Any,
    options: Any = None,
    *,
    model: str = QWQ,
    path: str = TOKEN_PATH,
    url: str = RUN_URL,
    headers: dict[str, str] | None = None,
) -> Any:
    """`env.AI.run(model, inputs, options)` through the binding's connection string `path`."""
    body = json.dumps({"inputs": inputs, "options": options or {}})
    sent = {**run_headers(model, url), **(headers or {})}
    return client.post(path, content=body, headers=sent)


def models(client: TestClient, query: str = "", path: str = TOKEN_PATH) -> Any:
    """`env.AI.models(params)`, its params as `query`."""
    url = MODELS_URL + (f"?{query}" if query else "")
    return client.get(path, headers={"MF-Binding": "AI", "MF-URL": url})
