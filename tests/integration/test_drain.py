"""SIGTERM on a real server: a graceful drain, then a clean exit.

At the signal `/health` turns 503 `draining` and new requests get 503/3040 at once, on the same
listening socket; a request in flight that ends within the grace period (here 3 s) ends
normally; requests that cannot end are ended when it is over: a stream with an in-band error
and `[DONE]`, a non-streamed request with the 503 envelope. Then the engines shut down: the
process exits 0, no EngineCore process is left, and vLLM reports no leaked shared memory.

One scenario, run once by the module's fixture; each test checks one of its outcomes."""

import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from tests.support.envelopes import assert_error
from tests.support.live import ENDLESS, R1, wait_for
from tests.support.live_server import TOKEN, RunningServer, running_server
from tests.support.sse import parse_events

DRAIN_TIMEOUT_S = 3
ONE_MODEL = f"""
models:
  - name: "{R1}"
    engine:
      builtin: tiny-deepseek-r1-distill-qwen-32b
      max_model_len: 16384
      enforce_eager: true
      cpu_kv_cache_gib: 1
      max_num_seqs: 4
"""
RUN = f"/client/v4/accounts/a/ai/run/{R1}"
SHUTTING_DOWN = "The server is shutting down"
# Generation that cannot end on its own within the grace period.
ENDLESS_BODY = {
    "prompt": "Count",
    "max_tokens": 16000,
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": ENDLESS},
}
# Generation that ends on its own well within it: exactly this many booleans, then the end.
BOUNDED = {"type": "array", "minItems": 24, "maxItems": 24, "items": {"type": "boolean"}}
SHORT_BODY = {
    **ENDLESS_BODY,
    "max_tokens": 2000,
    "response_format": {"type": "json_schema", "json_schema": BOUNDED},
}


@dataclass
class Drained:
    """What the clients and the process saw, from SIGTERM to exit."""

    health: httpx.Response
    refused: httpx.Response
    running_at_signal: int
    short_stream: bytes
    endless_stream: bytes
    endless_whole: httpx.Response
    exit_code: int
    engine_cores: list[psutil.Process]
    log: str


def engine_cores(server: RunningServer) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [
        child for child in children if "EngineCore" in " ".join([*child.cmdline(), child.name()])
    ]


def first_event(streams: ExitStack, api: httpx.Client, body: dict[str, Any]) -> Iterator[bytes]:
    response = streams.enter_context(api.stream("POST", RUN, json={**body, "stream": True}))
    assert response.status_code == 200
    reader = response.iter_bytes()
    assert next(reader).startswith(b"data: ")
    return reader


def health_once_draining(api: httpx.Client) -> httpx.Response:
    """The first /health answer after the signal reached the server (it is handled
    asynchronously: answers sent before it are 200)."""
    for _ in range(200):
        response = api.get("/health")
        if response.status_code != 200:
            return response
    raise AssertionError("/health never left 200 after SIGTERM")


@pytest.fixture(scope="module")
def drained(tmp_path_factory: pytest.TempPathFactory) -> Drained:
    folder = tmp_path_factory.mktemp("drain")
    config = folder / "one-model.yaml"
    config.write_text(ONE_MODEL)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    environment = {"WORKERS_AI_LOCAL_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)}
    with (
        running_server(config, folder / "server.log", **environment) as server,
        httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as api,
        ExitStack() as streams,
    ):
        assert api.post(RUN, json={"prompt": "Hi", "max_tokens": 2}).status_code == 200
        cores = engine_cores(server)
        assert cores, "no EngineCore process found"
        endless = first_event(streams, api, ENDLESS_BODY)
        whole: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: whole.append(api.post(RUN, json=ENDLESS_BODY)), daemon=True
        )
        waiting.start()
        wait_for(api, R1, 2)
        short = first_event(streams, api, SHORT_BODY)

        server.process.send_signal(signal.SIGTERM)
        health = health_once_draining(api)
        refused = api.post(RUN, json={"prompt": "Hi", "max_tokens": 2})
        running_at_signal = health.json()["models"][R1]["running_requests"]
        short_rest = b"".join(short)
        endless_rest = b"".join(endless)
        waiting.join(timeout=60)
        exit_code = server.process.wait(timeout=120)
    return Drained(
        health=health,
        refused=refused,
        running_at_signal=running_at_signal,
        short_stream=short_rest,
        endless_stream=endless_rest,
        endless_whole=whole[0],
        exit_code=exit_code,
        engine_cores=cores,
        log=server.log.read_text(errors="replace"),
    )


def test_health_turns_503_draining_at_once(drained: Drained) -> None:
    assert drained.health.status_code == 503
    assert drained.health.json()["status"] == "draining"
    # Answered during the drain, with the three requests still running in the engine.
    assert drained.running_at_signal == 3


def test_a_new_request_gets_the_503_envelope_with_retry_after(drained: Drained) -> None:
    assert_error(drained.refused, 503, 3040, SHUTTING_DOWN)
    assert drained.refused.headers["retry-after"] == "5"


def test_a_request_in_flight_that_ends_within_the_grace_period_ends_normally(
    drained: Drained,
) -> None:
    events, done = parse_events(drained.short_stream.decode())

    assert done
    assert all("errors" not in event for event in events)
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_a_stream_still_running_at_the_end_gets_an_in_band_error_then_done(
    drained: Drained,
) -> None:
    events, done = parse_events(drained.endless_stream.decode())

    assert done
    assert events[-1]["errors"][0]["code"] == 3040
    assert SHUTTING_DOWN in events[-1]["errors"][0]["message"]


def test_a_whole_request_still_running_at_the_end_gets_the_503_envelope(
    drained: Drained,
) -> None:
    assert_error(drained.endless_whole, 503, 3040, SHUTTING_DOWN)


def test_the_process_exits_0_after_the_drain(drained: Drained) -> None:
    assert drained.exit_code == 0, drained.log[-4000:]
    assert "draining for up to 3 s" in drained.log
    assert "drain over" in drained.log


def test_the_engines_shut_down_cleanly(drained: Drained) -> None:
    assert [core.pid for core in drained.engine_cores if core.is_running()] == []
    assert "leaked shared_memory" not in drained.log
    assert "force killing" not in drained.log  # vLLM's last resort, mid-teardown
