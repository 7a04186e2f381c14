"""Remote mode for real: our server in front of `vllm serve` replicas, over real HTTP.

    client -> workers-ai-local -> vllm-router -> vllm serve (QwQ) x 2
                               -> vllm serve (R1), directly

The in-process suite's checks, then what only remote mode has: requests spread over both QwQ
replicas, one uploaded LoRA adapter served by both, aborts and a full queue seen in the replicas'
metrics, a replica killed mid-run, the R1 replica killed last. Tests run in file order.
"""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cloudflare import Cloudflare

from tests.integration.test_forced_output import TOOL
from tests.integration.test_json_mode import (
    SCHEMAS,
    json_mode,
    test_reasoning_already_closed_in_a_raw_prompt,  # noqa: F401  (collected here, see below)
)
from tests.integration.test_run import (
    test_messages_form,  # noqa: F401  (collected here, see below)
    test_penalties_reach_the_engine,  # noqa: F401
    test_stream_matches_the_non_streamed_answer,  # noqa: F401
)
from tests.support.envelopes import assert_error
from tests.support.live import ENDLESS, LONG_R1, MESSAGES, QWQ, R1, result, run
from tests.support.live_server import TOKEN
from tests.support.lora_factory import write_adapter
from tests.support.upstream import RemoteStack, ReplicaSpec, remote_stack, total, wait_until

BOTH = pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
QWQ_SPEC = ReplicaSpec("tiny-qwq-32b", "tiny-qwq", max_model_len=24000)
# Small on purpose: 2 running + 1 waiting fill it. 32768 tokens, not Workers AI's 80000: less
# memory, and the context check is QwQ's.
R1_SPEC = ReplicaSpec(
    "tiny-deepseek-r1-distill-qwen-32b", "tiny-r1", max_model_len=32768, max_num_seqs=2,
    max_queued=3,
)  # fmt: skip
CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"
CAPACITY = "Capacity temporarily exceeded, please try again."
# The imported test_* checks of the in-process suite are collected in this module too, and run
# against its `api`: the server in remote mode.
UNAVAILABLE = "The model is not available right now"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteStack]:
    from server.settings import DEFAULT_CACHE_DIR

    work = tmp_path_factory.mktemp("remote")
    with remote_stack(work, QWQ_SPEC, R1_SPEC, DEFAULT_CACHE_DIR.expanduser()) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: RemoteStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def test_health_names_both_models_remote(api: httpx.Client) -> None:
    report = api.get("/health")

    assert report.status_code == 200
    models = report.json()["models"]
    assert set(models) == {QWQ, R1}
    assert all(model["healthy"] and model["remote"] for model in models.values())
    assert models[QWQ]["context_window"] == 24000
    assert models[R1]["context_window"] == 32768  # learned from the replica's /v1/models


@BOTH
def test_openai_chat_completion_streams_what_it_answers(api: httpx.Client, model: str) -> None:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 16, "temperature": 0}
    completion = api.post(CHAT, json=body).json()

    streamed = api.post(
        CHAT, json={**body, "stream": True, "stream_options": {"include_usage": True}}
    )

    assert completion["object"] == "chat.completion"
    assert streamed.status_code == 200, streamed.text
    lines = [line for line in streamed.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[-1]["usage"] == completion["usage"]
    message = completion["choices"][0]["message"]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    for field in ("reasoning_content", "content"):
        assert "".join(delta.get(field) or "" for delta in deltas) == (message.get(field) or "")


@pytest.mark.parametrize("schema_name", ["nested", "enum"])
@BOTH
def test_json_mode_output_validates(api: httpx.Client, model: str, schema_name: str) -> None:
    schema = SCHEMAS[schema_name]
    body = {"prompt": "Give me JSON", "max_tokens": 256, "temperature": 1.0, "seed": 1}

    answer = result(api, model, **body, **json_mode(model, schema))

    jsonschema.validate(answer["response"], schema)


def test_json_after_reasoning_waits_for_the_reasoning_to_end(api: httpx.Client) -> None:
    # The random model never writes </think>: with the grammar after it, no JSON ever comes.
    body = {"prompt": "JSON", "max_tokens": 24, "temperature": 0, **json_mode(QWQ, SCHEMAS["enum"])}

    deferred = run(api, QWQ, **body, json_after_reasoning=True)

    assert_error(deferred, 400, 5006, "JSON Mode couldn't be met")


@pytest.mark.parametrize(
    ("model", "rendered"), [(QWQ, True), (R1, False)], ids=["qwq", "r1-template-has-no-tools"]
)
def test_tools_reach_the_template(api: httpx.Client, model: str, rendered: bool) -> None:
    # A random-weight model never writes a tool call (tests/integration/test_forced_output
    # forces one in-process); here: the request is served, and QwQ's prompt holds the tools.
    body = {"messages": MESSAGES, "max_tokens": 8, "temperature": 0}
    plain = result(api, model, **body)["usage"]["prompt_tokens"]

    with_tools = result(api, model, **body, tools=[TOOL])

    assert with_tools["tool_calls"] == []
    assert (with_tools["usage"]["prompt_tokens"] > plain) is rendered


@BOTH
def test_same_seed_same_answer(api: httpx.Client, model: str) -> None:
    body = {"prompt": "Surprise me", "max_tokens": 24, "temperature": 1.0}
    first = result(api, model, seed=1234, **body)["response"]
    again = result(api, model, seed=1234, **body)["response"]
    other = result(api, model, seed=4321, **body)["response"]

    assert first == again
    assert first != other


@BOTH
def test_max_tokens_is_counted(api: httpx.Client, model: str) -> None:
    answer = result(api, model, prompt="Count to ten", max_tokens=5, temperature=1.0, seed=7)

    assert answer["usage"]["completion_tokens"] == 5


@BOTH
def test_a_long_prompt_echoed_in_the_first_chunk_is_read(api: httpx.Client, model: str) -> None:
    """vLLM's first chunk echoes the prompt's ids (`return_token_ids`); at some 3000 tokens it
    is long enough to be cut out before parsing (`engine.remote.wire.without_prompt_ids`)."""
    answer = result(api, model, prompt="word " * 3000, max_tokens=3, temperature=0)

    assert answer["usage"]["prompt_tokens"] > 3000
    assert answer["usage"]["completion_tokens"] == 3
    assert isinstance(answer["response"], str)  # three tokens of a random model may print none


def test_prompt_over_the_window_is_5021(api: httpx.Client, tokenizers: dict[str, Any]) -> None:
    prompt_tokens = len(tokenizers[QWQ].encode("Hello there", add_special_tokens=False))

    response = run(api, QWQ, prompt="Hello there", raw=True, max_tokens=24000)

    assert_error(
        response,
        413,
        5021,
        f"({prompt_tokens + 24000}) exceeded this model context window limit (24000).",
    )


def unrelated(count: int, **extra: Any) -> list[dict[str, Any]]:
    """Raw prompts that share no prefix. vllm-router's cache_aware policy sends a prompt to the
    replica that holds its prefix (identical prompts all to one), others to the replica with
    the fewest requests in flight: requests sent together then spread."""
    return [
        {"prompt": f"{uuid.uuid4().hex} and so on", "raw": True, "max_tokens": 16, **extra}
        for _ in range(count)
    ]


def concurrently(stack: RemoteStack, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send `bodies` to QwQ all at once, each on its own connection; the results, in order."""

    def one(body: dict[str, Any]) -> dict[str, Any]:
        with stack.client() as client:
            return result(client, QWQ, **body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def test_requests_reach_both_qwq_replicas(stack: RemoteStack) -> None:
    before = stack.qwq_metric("vllm:request_success_total")

    answers = concurrently(stack, unrelated(8))

    after = stack.qwq_metric("vllm:request_success_total")
    assert all(now > then for now, then in zip(after, before, strict=True)), (before, after)
    # Each generated (the random model may end at once, on EOS: the text can be empty).
    assert all(answer["usage"]["completion_tokens"] >= 1 for answer in answers), answers


@pytest.fixture(scope="module")
def sdk(stack: RemoteStack) -> Iterator[Cloudflare]:
    with Cloudflare(api_token=TOKEN, base_url=stack.server.url("/client/v4")) as client:
        yield client


def upload(sdk: Cloudflare, model: str, name: str, folder: Path) -> None:
    """Create the finetune `name` and upload its two files, as wrangler does."""
    finetune = sdk.ai.finetunes.create(account_id="acct", model=model, name=name)
    for file_name in ("adapter_config.json", "adapter_model.safetensors"):
        asset = sdk.ai.finetunes.assets.create(
            finetune.id, account_id="acct", file=folder / file_name, file_name=file_name
        )
        assert asset.success


def test_an_uploaded_adapter_is_served_by_both_qwq_replicas(
    api: httpx.Client, stack: RemoteStack, sdk: Cloudflare, tmp_path: Path
) -> None:
    upload(sdk, QWQ, "pirate", write_adapter(tmp_path / "pirate", base_model=QWQ, seed=1))
    body = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0}
    plain = result(api, QWQ, **body)["response"]
    before = set(stack.lora_dir.glob("adapter-*"))

    tuned = result(api, QWQ, **body, lora="pirate")["response"]

    assert tuned != plain
    (copy,) = set(stack.lora_dir.glob("adapter-*")) - before  # in the replicas' resolver folder
    name = copy.name
    # Requests sent together spread over both replicas; each loads the adapter on first use.
    for _ in range(5):
        answers = concurrently(stack, unrelated(6, lora="pirate"))
        assert all(answer["usage"]["completion_tokens"] >= 1 for answer in answers), answers
        if all(name in replica.model_ids() for replica in stack.qwq):
            break
    assert [name in replica.model_ids() for replica in stack.qwq] == [True, True]


def test_an_adapter_for_the_direct_replica(
    api: httpx.Client, stack: RemoteStack, sdk: Cloudflare, tmp_path: Path
) -> None:
    upload(sdk, R1, "poet", write_adapter(tmp_path / "poet", base_model=R1, seed=2))
    body = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0}

    tuned = result(api, R1, **body, lora="poet")["response"]

    assert tuned != result(api, R1, **body)["response"]
    assert result(api, R1, **body, lora="poet")["response"] == tuned
    assert_error(run(api, R1, **body, lora="nobody"), 404, 3037, "Finetune nobody not found")


def test_a_client_that_leaves_aborts_the_replica_request(
    api: httpx.Client, stack: RemoteStack
) -> None:
    url = f"/client/v4/accounts/a/ai/run/{QWQ}"
    long = {"prompt": "Tell me everything", "max_tokens": 20000, "guided_json": ENDLESS}
    with api.stream("POST", url, json={**long, "stream": True}) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"data: ")
        wait_until(lambda: sum(stack.qwq_metric("vllm:num_requests_running")) == 1)
    # Leaving the block closed the connection mid-stream: through our server and the router,
    # the replica stops generating.

    wait_until(lambda: sum(stack.qwq_metric("vllm:num_requests_running")) == 0)
    generated = sum(stack.qwq_metric("vllm:generation_tokens_total"))
    time.sleep(1)
    assert sum(stack.qwq_metric("vllm:generation_tokens_total")) == generated


def test_a_full_replica_queue_answers_429(api: httpx.Client, stack: RemoteStack) -> None:
    url = f"/client/v4/accounts/a/ai/run/{R1}"

    def held() -> tuple[float, float]:
        metrics = stack.r1.metrics()
        return total(metrics, "vllm:num_requests_running"), total(
            metrics, "vllm:num_requests_waiting"
        )

    wait_until(lambda: held() == (0, 0), within_s=60)  # earlier tests' requests are gone
    rejected_before = total(stack.r1.metrics(), "vllm:admission_rejections_total")
    waiting = threading.Thread(target=lambda: api.post(url, json={**LONG_R1, "max_tokens": 1}))
    with ExitStack() as streams:
        readers = []
        for _ in range(R1_SPEC.max_num_seqs):  # fill every running slot
            response = streams.enter_context(
                api.stream("POST", url, json={**LONG_R1, "stream": True})
            )
            assert response.status_code == 200
            reader = response.iter_bytes()
            assert next(reader).startswith(b"data: ")
            readers.append(reader)
        waiting.start()  # the last place in the replica's queue
        wait_until(lambda: held() == (R1_SPEC.max_num_seqs, 1), within_s=60)

        refused = run(api, R1, prompt="Hi", max_tokens=2)
        refused_openai = api.post(
            CHAT, json={"model": R1, "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert len(readers) == R1_SPEC.max_num_seqs  # still open

    assert_error(refused, 429, 3040, CAPACITY)
    assert_error(refused_openai, 429, 3040, CAPACITY)
    assert total(stack.r1.metrics(), "vllm:admission_rejections_total") == rejected_before + 2
    waiting.join(timeout=60)
    wait_until(lambda: total(stack.r1.metrics(), "vllm:num_requests_running") == 0)
    assert result(api, R1, prompt="Hi", max_tokens=2)["usage"]["completion_tokens"] == 2


def test_a_killed_qwq_replica_loses_no_request_sent_after(
    api: httpx.Client, stack: RemoteStack
) -> None:
    served_before = stack.qwq_metric("vllm:request_success_total")
    outcomes: list[tuple[float, httpx.Response]] = []  # (sent at, answer)
    stop = threading.Event()

    def client_loop() -> None:
        with stack.client() as client:
            while not stop.is_set():
                (body,) = unrelated(1)
                started = time.monotonic()
                outcomes.append((started, run(client, QWQ, **body)))

    threads = [threading.Thread(target=client_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(outcomes) >= 6)
        wait_until(lambda: sum(stack.qwq_metric("vllm:request_success_total")) > sum(served_before))
        # The victim is the replica that has served the most of them (the router may have sent
        # every one to the same replica): it is busy when it dies.
        served = [
            now - then
            for now, then in zip(
                stack.qwq_metric("vllm:request_success_total"), served_before, strict=True
            )
        ]
        (victim, victim_served, _), (survivor, _, survivor_before) = sorted(
            zip(stack.qwq, served, served_before, strict=True), key=lambda item: -item[1]
        )
        victim.kill()
        killed = time.monotonic()
        # The clients go on until enough requests sent after the kill have their answers (a fixed
        # number each could all be sent before it, on a machine that stood still meanwhile).
        wait_until(lambda: sum(sent > killed for sent, _ in list(outcomes)) >= 6, within_s=120)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert victim_served > 0, "the victim was idle when it was killed: this proves nothing"
    after = [response for sent, response in outcomes if sent > killed]
    assert [response.status_code for response in after] == [200] * len(after)
    for _, response in outcomes:  # requests that were on the victim: a clean 503, never a 500
        if response.status_code != 200:
            assert_error(response, 503, 3040, UNAVAILABLE)
    assert total(survivor.metrics(), "vllm:request_success_total") >= survivor_before + len(after)


def test_one_replica_left_is_healthy(api: httpx.Client) -> None:
    assert api.get("/health").json()["models"][QWQ]["healthy"] is True


def test_a_dead_upstream_shows_in_health_and_the_server_stays_up(
    api: httpx.Client, stack: RemoteStack
) -> None:
    stack.r1.kill()

    wait_until(lambda: api.get("/health").json()["models"][R1]["healthy"] is False)
    assert api.get("/health").status_code == 503
    assert_error(run(api, R1, prompt="Hi", max_tokens=2), 503, 3040, UNAVAILABLE)
    assert result(api, QWQ, prompt="Hi", max_tokens=2)["usage"]["completion_tokens"] == 2
    assert stack.server.process.poll() is None
