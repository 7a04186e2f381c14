"""Requests to the live integration server (`tests.support.live_server`), and what they share."""

import time
from typing import Any

import httpx
import pytest

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
BOTH = pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
MESSAGES = [
    {"role": "system", "content": "You are a friendly assistant"},
    {"role": "user", "content": "Why is pizza so good? 🍕"},
]


def run(api: httpx.Client, model: str, **body: Any) -> httpx.Response:
    return api.post(f"/client/v4/accounts/acct/ai/run/{model}", json=body)


def result(api: httpx.Client, model: str, **body: Any) -> dict[str, Any]:
    response = run(api, model, **body)
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["messages"] == []
    return payload["result"]  # type: ignore[no-any-return]


# A grammar that only a very long answer satisfies: the engine cannot stop early on its own.
ENDLESS = {"type": "array", "minItems": 5000, "items": {"type": "integer"}}
LONG = {"prompt": "Tell me everything", "max_tokens": 20000, "temperature": 0}
LONG_QWQ = {**LONG, "guided_json": ENDLESS}
LONG_R1 = {**LONG, "response_format": {"type": "json_schema", "json_schema": ENDLESS}}


def running_requests(api: httpx.Client, model: str) -> int:
    """The requests the engine holds: running, and admitted ones waiting for a slot."""
    report = api.get("/health").json()["models"][model]
    count: int = report["running_requests"] + report["waiting_requests"]
    return count


def wait_for(api: httpx.Client, model: str, expected: int, within_s: float = 15) -> float:
    """Seconds until the engine holds `expected` requests (fails after `within_s`)."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if running_requests(api, model) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{model} still has {running_requests(api, model)} running requests")
