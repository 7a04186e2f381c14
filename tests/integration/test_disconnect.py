"""A client that leaves aborts its engine request at once, streaming or not."""

import threading
import time

import httpx

from tests.support.live import ENDLESS, QWQ, R1

LONG = {"prompt": "Tell me everything", "max_tokens": 20000, "temperature": 0}
LONG_QWQ = {**LONG, "guided_json": ENDLESS}
LONG_R1 = {**LONG, "response_format": {"type": "json_schema", "json_schema": ENDLESS}}


def running_requests(api: httpx.Client, model: str) -> int:
    count: int = api.get("/health").json()["models"][model]["running_requests"]
    return count


def wait_for(api: httpx.Client, model: str, expected: int, within_s: float = 15) -> float:
    """Seconds until the engine reports `expected` running requests (fails after `within_s`)."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if running_requests(api, model) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{model} still has {running_requests(api, model)} running requests")


def test_streaming_client_disconnect_aborts(api: httpx.Client) -> None:
    url = f"/client/v4/accounts/a/ai/run/{R1}"
    with api.stream("POST", url, json={**LONG_R1, "stream": True}) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"data: ")
        # Keep reading while the engine reports the request as running: the stream is live.
        deadline = time.monotonic() + 15
        while running_requests(api, R1) != 1:
            assert time.monotonic() < deadline, "the engine never reported the request running"
            assert b"[DONE]" not in next(chunks), "the stream ended on its own"
    # Leaving the block closes the connection mid-stream.

    assert wait_for(api, R1, 0) < 5


def test_non_streaming_client_disconnect_aborts(api: httpx.Client) -> None:
    url = api.base_url.join(f"/client/v4/accounts/a/ai/run/{QWQ}")
    headers = dict(api.headers)
    outcome: list[BaseException] = []

    def impatient_client() -> None:
        try:
            httpx.post(url, json=LONG_QWQ, headers=headers, timeout=httpx.Timeout(60, read=3))
        except httpx.ReadTimeout as error:  # gives up and closes the connection
            outcome.append(error)

    thread = threading.Thread(target=impatient_client)
    thread.start()
    wait_for(api, QWQ, 1)
    thread.join()

    assert outcome, "the request finished before the client gave up"
    assert wait_for(api, QWQ, 0) < 5
