"""LoRA adapters on the real server: real vLLM engines, real PEFT-format adapters.

The adapters come from `tests.support.lora_factory` and live in the session server's adapters dir
(`WORKERS_AI_LOCAL_ADAPTERS_DIR`), written while the server runs, as an operator would.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.lora.store import model_slug
from tests.support.envelopes import assert_error
from tests.support.live import BOTH, MESSAGES, QWQ, R1, result, run
from tests.support.live_server import TOKEN, RunningServer
from tests.support.lora_factory import QWEN25_32B, write_adapter
from tests.support.sse import parse_events

BODY = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0}
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def folder(adapters_dir: Path, model: str, name: str) -> Path:
    return adapters_dir / model_slug(model) / name


def add(adapters_dir: Path, model: str, name: str, **options: Any) -> Path:
    options.setdefault("base_model", model)
    return write_adapter(folder(adapters_dir, model, name), **options)


def answer(api: httpx.Client, model: str, lora: str | None = None) -> str:
    extra = {} if lora is None else {"lora": lora}
    text: str = result(api, model, **BODY, **extra)["response"]
    return text


def in_parallel(server: RunningServer, model: str, loras: list[str | None]) -> list[str]:
    """One request per entry of `loras`, all sent at the same moment, each on its own
    connection; the answers in the same order."""
    barrier = threading.Barrier(len(loras))

    def call(lora: str | None) -> str:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
            barrier.wait()
            return answer(client, model, lora)

    with ThreadPoolExecutor(len(loras)) as pool:
        return list(pool.map(call, loras))


@pytest.fixture(scope="module")
def adapters(adapters_dir: Path) -> Path:
    """Two good adapters per model: "pirate" (rank 8, q and v) and "poet" (rank 16, all)."""
    for model in (QWQ, R1):
        add(adapters_dir, model, "pirate", seed=1)
        add(adapters_dir, model, "poet", seed=2, rank=16, target_modules=ALL_LINEAR)
    return adapters_dir


@BOTH
def test_an_adapter_changes_the_output(api: httpx.Client, adapters: Path, model: str) -> None:
    plain = answer(api, model)

    with_adapter = answer(api, model, "pirate")

    assert with_adapter != plain
    assert answer(api, model, "pirate") == with_adapter


def test_a_streamed_answer_uses_the_adapter_too(api: httpx.Client, adapters: Path) -> None:
    whole = answer(api, QWQ, "poet")

    response = run(api, QWQ, stream=True, lora="poet", **BODY)

    assert response.status_code == 200, response.text
    events, done = parse_events(response.text)
    assert done
    assert "".join(event.get("response", "") for event in events) == whole


def test_each_request_of_a_mixed_batch_gets_its_own_adapter(
    api: httpx.Client, server: RunningServer, adapters: Path
) -> None:
    loras: list[str | None] = [None, "pirate", "poet"]
    alone = {lora: answer(api, QWQ, lora) for lora in loras}
    assert len(set(alone.values())) == 3, "the adapters must tell apart, or this proves nothing"

    together = in_parallel(server, QWQ, loras * 2)

    assert together == [alone[lora] for lora in loras * 2]


def test_concurrent_first_requests_load_an_adapter_once(
    api: httpx.Client, server: RunningServer, adapters_dir: Path
) -> None:
    add(adapters_dir, QWQ, "fresh", seed=3)

    answers = in_parallel(server, QWQ, ["fresh"] * 4)

    assert len(set(answers)) == 1
    loads = server.log.read_text(errors="replace").count("loaded LoRA adapter 'fresh' (id ")
    assert loads == 1


def test_an_evicted_adapter_is_loaded_again_and_answers_the_same(
    api: httpx.Client, server: RunningServer, adapters_dir: Path
) -> None:
    # cpu-tiny keeps 4 adapters (and the zero adapter) loaded: 5 newer ones evict the first.
    add(adapters_dir, QWQ, "evicted", seed=4)
    first = answer(api, QWQ, "evicted")
    for index in range(5):
        add(adapters_dir, QWQ, f"evictor-{index}", seed=10 + index)
        answer(api, QWQ, f"evictor-{index}")

    assert answer(api, QWQ, "evicted") == first
    loads = server.log.read_text(errors="replace").count("loaded LoRA adapter 'evicted' (id ")
    assert loads == 2


def test_adapters_belong_to_their_model(api: httpx.Client, adapters_dir: Path) -> None:
    add(adapters_dir, QWQ, "qwq-only")

    assert_error(run(api, R1, lora="qwq-only", **BODY), 404, 3037, "Finetune qwq-only not found")


def _no_weights(path: Path) -> None:
    (path / "adapter_model.safetensors").unlink()


def _pickle_beside(path: Path) -> None:
    (path / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")


def _trailing_bytes(path: Path) -> None:
    # Passes the server's own checks; the safetensors reader inside vLLM refuses it.
    with (path / "adapter_model.safetensors").open("ab") as weights:
        weights.write(b"trailing")


BROKEN = [
    pytest.param({}, _no_weights, 400, 3039, "has no adapter_model.safetensors", id="missing-file"),
    pytest.param({"rank": 64}, None, 400, 5006, "rank 64 is above", id="rank-64"),
    pytest.param({}, _pickle_beside, 400, 5006, "pickle-format weight files", id="pickle-bin"),
    pytest.param({"base_model": R1}, None, 400, 5006, f"trained for '{R1}'", id="other-base-name"),
    pytest.param(
        {"dims": replace(QWEN25_32B, layers=2)},
        None,
        400,
        5006,
        "has shape [8, 5120], but @cf/qwen/qwq-32b needs [8, 128]",
        id="other-base-shapes",
    ),
    pytest.param(
        {}, _trailing_bytes, 400, 5006, "the engine could not load LoRA adapter", id="vllm-refuses"
    ),
]


@pytest.mark.parametrize(("options", "damage", "status", "code", "fragment"), BROKEN)
def test_a_broken_adapter_is_refused_and_the_engine_keeps_serving(
    api: httpx.Client,
    server: RunningServer,
    adapters: Path,
    request: pytest.FixtureRequest,
    options: dict[str, Any],
    damage: Callable[[Path], None] | None,
    status: int,
    code: int,
    fragment: str,
) -> None:
    name = f"broken-{request.node.callspec.id}"
    path = add(adapters, QWQ, name, **options)
    if damage is not None:
        damage(path)

    assert_error(run(api, QWQ, lora=name, **BODY), status, code, fragment)

    assert httpx.get(server.url("/health"), timeout=60).status_code == 200
    assert answer(api, QWQ, "pirate")
    assert answer(api, QWQ)


def test_a_path_instead_of_a_name_is_refused(api: httpx.Client, adapters: Path) -> None:
    # From R1's folder this would reach QwQ's "pirate", were paths followed.
    response = run(api, R1, lora="../cf-qwen-qwq-32b/pirate", **BODY)

    assert_error(response, 400, 5006, "is not a valid adapter name")


def test_an_unknown_adapter_is_not_found(api: httpx.Client, adapters: Path) -> None:
    assert_error(run(api, QWQ, lora="nobody", **BODY), 404, 3037, "Finetune nobody not found")
