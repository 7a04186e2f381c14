"""A client that leaves aborts its engine request at once, streaming or not."""

import threading
import time

import httpx

from tests.support.live import LONG_QWQ, LONG_R1, QWQ, R1, running_requests, wait_for


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
