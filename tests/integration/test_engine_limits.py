"""One small real engine at its limits: a full queue answers 429/3040 at once, `rejectIfBusy`
refuses instead of waiting, and a dead engine answers 503/3040 and stops the process (non-zero)
so that a supervisor restarts it. The engine is killed last: tests here run in file order."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import psutil
import pytest

from tests.support.envelopes import assert_error
from tests.support.live import ENDLESS, R1, running_requests, wait_for
from tests.support.live_server import TOKEN, RunningServer, running_server

CAPACITY = "Capacity temporarily exceeded, please try again."
RUNNING, WAITING = 2, 1
ONE_MODEL = f"""
models:
  - name: "{R1}"
    engine:
      builtin: tiny-deepseek-r1-distill-qwen-32b
      max_model_len: 16384
      enforce_eager: true
      cpu_kv_cache_gib: 1
      max_num_seqs: {RUNNING}
      max_waiting_requests: {WAITING}
"""
RUN = f"/client/v4/accounts/a/ai/run/{R1}"
# Generation that cannot end on its own within the test (it is aborted when its stream closes).
LONG = {
    "prompt": "Count",
    "max_tokens": 16000,
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": ENDLESS},
}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("small")
    config = folder / "one-model.yaml"
    config.write_text(ONE_MODEL)
    with running_server(config, folder / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def api(small_server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=small_server.base_url, headers=headers, timeout=120) as client:
        yield client


def open_streams(api: httpx.Client, streams: ExitStack, count: int) -> list[Iterator[bytes]]:
    """Start `count` streams that cannot end on their own, each past its first event.

    Keep the returned readers: a reader that is garbage-collected closes its connection,
    which aborts its request."""
    readers = []
    for _ in range(count):
        response = streams.enter_context(api.stream("POST", RUN, json={**LONG, "stream": True}))
        assert response.status_code == 200
        reader = response.iter_bytes()
        assert next(reader).startswith(b"data: ")
        readers.append(reader)
    return readers


def test_a_full_queue_answers_429_at_once(api: httpx.Client) -> None:
    waiting = threading.Thread(
        target=lambda: api.post(RUN, json={**LONG, "max_tokens": 1}), daemon=True
    )
    with ExitStack() as streams:
        readers = open_streams(api, streams, RUNNING)
        waiting.start()  # no running slot is free: it waits in the engine's queue
        wait_for(api, R1, RUNNING + WAITING)

        refused = api.post(RUN, json={"prompt": "Hi", "max_tokens": 2})
        refused_openai = api.post(
            "/client/v4/accounts/a/ai/v1/chat/completions",
            json={"model": R1, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        )
        assert len(readers) == RUNNING  # still open

    assert_error(refused, 429, 3040, CAPACITY)
    assert refused.headers["retry-after"] == "1"
    assert_error(refused_openai, 429, 3040, CAPACITY)
    waiting.join(timeout=60)
    wait_for(api, R1, 0)
    # The engine takes requests again once the queue has drained.
    assert api.post(RUN, json={"prompt": "Hi", "max_tokens": 2}).status_code == 200


def test_reject_if_busy_refuses_instead_of_waiting(api: httpx.Client) -> None:
    busy = {"prompt": "Hi", "max_tokens": 2, "options": {"rejectIfBusy": True}}
    assert api.post(RUN, json=busy).status_code == 200  # a free slot: it runs

    with ExitStack() as streams:
        readers = open_streams(api, streams, RUNNING)
        refused = api.post(RUN, json=busy)
        assert running_requests(api, R1) == RUNNING  # it never entered the queue
        assert len(readers) == RUNNING

    assert_error(refused, 429, 3040, CAPACITY)
    wait_for(api, R1, 0)


def engine_core_processes(server: RunningServer) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [
        child for child in children if "EngineCore" in " ".join([*child.cmdline(), child.name()])
    ]


def test_a_killed_engine_answers_503_and_stops_the_server(
    small_server: RunningServer, api: httpx.Client
) -> None:
    assert api.post(RUN, json={"prompt": "Hi", "max_tokens": 2}).status_code == 200
    cores = engine_core_processes(small_server)
    assert cores, "no EngineCore process found"

    for process in cores:
        process.kill()
    psutil.wait_procs(cores, timeout=10)

    try:
        response = api.post(RUN, json={"prompt": "Hi", "max_tokens": 2}, timeout=30)
    except httpx.TransportError:
        response = None  # already gone: the exit below is what matters
    if response is not None:
        assert_error(response, 503, 3040, "The model is not available right now")
    # Non-zero, within seconds: compose's `restart`, systemd or Kubernetes bring it back.
    assert small_server.process.wait(timeout=60) == 1
    assert "has stopped: exiting" in small_server.log_tail(200)
