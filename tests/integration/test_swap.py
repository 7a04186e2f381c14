"""Both tiny models on `configs/cpu-tiny-swap.yaml`: one engine at a time, swapped by stopping
one vLLM engine and starting the other (the CPU build has no sleep mode). Many clients ask for
both models in turn, streams included, and every request succeeds."""

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.envelopes import assert_error
from tests.support.live import QWQ, R1
from tests.support.live_server import TOKEN, RunningServer, running_server
from tests.support.paths import REPO
from tests.support.sse import parse_events

SWAP_CONFIG = REPO / "configs" / "cpu-tiny-swap.yaml"
SWAP_LINE = re.compile(r"swap group cpu: (\S+) -> (\S+) in ([0-9.]+) s")
CLIENTS, REQUESTS_EACH = 4, 2


@pytest.fixture(scope="module")
def swap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("swap") / "server.log"
    with running_server(SWAP_CONFIG, log) as server:
        yield server


@pytest.fixture(scope="module")
def api(swap_server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=swap_server.base_url, headers=headers, timeout=600) as client:
        yield client


def states(api: httpx.Client) -> dict[str, str]:
    report = api.get("/health").json()["models"]
    return {name: model["state"] for name, model in report.items()}


def ask(api: httpx.Client, model: str, *, stream: bool, **extra: Any) -> httpx.Response:
    body = {"prompt": "Hello", "max_tokens": 6, "temperature": 0, "stream": stream, **extra}
    return api.post(f"/client/v4/accounts/acct/ai/run/{model}", json=body)


def test_the_last_model_started_is_awake_and_the_catalog_says_so(api: httpx.Client) -> None:
    assert states(api) == {QWQ: "asleep", R1: "awake"}
    assert api.get("/health").status_code == 200
    catalog = api.get("/client/v4/accounts/acct/ai/models/search").json()["result"]
    swap_states = {
        entry["name"]: next(
            prop["value"] for prop in entry["properties"] if prop["property_id"] == "swap_state"
        )
        for entry in catalog
    }
    assert swap_states == {QWQ: "asleep", R1: "awake"}


def test_reject_if_busy_refuses_at_once_for_the_sleeping_model(api: httpx.Client) -> None:
    response = ask(api, QWQ, stream=False, options={"rejectIfBusy": True})
    assert_error(response, 429, 3040, "Capacity temporarily exceeded")
    assert states(api)[QWQ] == "asleep"


def test_alternating_requests_from_many_clients_all_succeed(
    api: httpx.Client, swap_server: RunningServer
) -> None:
    failures: list[str] = []
    answered: list[str] = []

    def client(index: int) -> None:
        for turn in range(REQUESTS_EACH):
            model = (QWQ, R1)[(index + turn) % 2]
            stream = (index + turn) % 3 == 0
            response = ask(api, model, stream=stream)
            if response.status_code != 200:
                failures.append(f"{model}: {response.status_code} {response.text}")
                continue
            if stream:
                events, done = parse_events(response.text)
                if not done or not events:
                    failures.append(f"{model}: stream without [DONE]: {response.text[:200]}")
                    continue
            else:
                assert isinstance(response.json()["result"]["response"], str)
            answered.append(model)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(answered) == sorted([QWQ, R1] * (CLIENTS * REQUESTS_EACH // 2))

    swaps = SWAP_LINE.findall(swap_server.log.read_text(errors="replace"))
    assert swaps, swap_server.log_tail()
    # Waiting requests are served in batches: far fewer swaps than alternating requests.
    assert len(swaps) < CLIENTS * REQUESTS_EACH // 2
    assert all(float(seconds) > 0 for _, _, seconds in swaps)
    metrics = api.get("/metrics").text
    counted = re.search(r'^workers_ai_local_swaps_total\{group="cpu"\} ([0-9.]+)$', metrics, re.M)
    assert counted is not None, metrics
    assert float(counted.group(1)) == len(swaps)
    awake = set(states(api).values())
    assert awake == {"awake", "asleep"}
