"""The `lora` request field over the fake engine: from the request body to the engine."""

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.config import EngineConfig
from engine.errors import EngineRequestError
from engine.lora.store import model_slug
from server.settings import ModelSettings, load_settings
from tests.support.app import AUTH, QWQ, R1, ClientFactory, lora_models, run_url
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine
from tests.support.lora_factory import write_adapter
from tests.support.paths import REPO

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    return tmp_path / "adapters"


@pytest.fixture
def client(make_client: ClientFactory, adapters_dir: Path) -> TestClient:
    return make_client(models=lora_models(), adapters_dir=adapters_dir)


def add(adapters_dir: Path, model: str, name: str, **options: Any) -> Path:
    base = options.pop("base_model", model)
    return write_adapter(adapters_dir / model_slug(model) / name, base_model=base, **options)


def post(client: TestClient, model: str, body: dict[str, Any]) -> Any:
    return client.post(run_url(model), json=body, headers=AUTH)


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_lora_is_loaded_then_passed_to_the_generation(
    client: TestClient,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    model: str,
    stream: bool,
) -> None:
    folder = add(adapters_dir, model, "pirate")

    response = post(client, model, {**CHAT, "lora": "pirate", "stream": stream})

    assert response.status_code == 200
    (adapter,) = engines[model].loaded_adapters
    assert (adapter.name, adapter.path) == ("pirate", folder)
    assert engines[model].calls[0].params.adapter == adapter


def test_lora_also_works_with_a_prompt(
    client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path
) -> None:
    add(adapters_dir, QWQ, "pirate")

    response = post(client, QWQ, {"prompt": "Hi", "raw": True, "lora": "pirate"})

    assert response.status_code == 200
    assert engines[QWQ].calls[0].params.adapter is not None


def test_lora_by_id(client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path) -> None:
    add(adapters_dir, QWQ, "pirate")
    post(client, QWQ, {**CHAT, "lora": "pirate"})
    adapter = engines[QWQ].calls[0].params.adapter
    assert adapter is not None

    response = post(client, QWQ, {**CHAT, "lora": str(adapter.id)})

    assert response.status_code == 200
    assert engines[QWQ].calls[1].params.adapter == adapter


def test_without_lora_no_adapter_is_used(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    post(client, QWQ, CHAT)

    assert engines[QWQ].calls[0].params.adapter is None
    assert engines[QWQ].loaded_adapters == []


def test_adapters_belong_to_one_model(
    client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path
) -> None:
    add(adapters_dir, QWQ, "pirate")

    response = post(client, R1, {**CHAT, "lora": "pirate"})

    assert_error(response, 404, 3037, "Finetune pirate not found")


def test_a_model_without_lora_refuses_it(make_client: ClientFactory, adapters_dir: Path) -> None:
    add(adapters_dir, QWQ, "pirate")
    client = make_client(adapters_dir=adapters_dir)  # LoRA is off by default

    response = post(client, QWQ, {**CHAT, "lora": "pirate"})

    assert_error(response, 405, 5005, "The model @cf/qwen/qwq-32b does not support LoRa inference")


def test_an_unknown_adapter_is_not_found(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    response = post(client, QWQ, {**CHAT, "lora": "nobody"})

    assert_error(response, 404, 3037, "AiError: Finetune nobody not found")
    assert engines[QWQ].calls == []


@pytest.mark.parametrize("name", ["../pirate", "/etc", "pi\0rate", ".."])
def test_names_that_are_not_folder_names_are_bad_input(
    client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path, name: str
) -> None:
    add(adapters_dir, QWQ, "pirate")

    response = post(client, QWQ, {**CHAT, "lora": name})

    assert_error(response, 400, 5006, "AiError: Bad input: Error: lora: ", "not a valid adapter")
    assert engines[QWQ].loaded_adapters == []


def test_missing_files_are_reported_with_code_3039(
    client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path
) -> None:
    folder = add(adapters_dir, QWQ, "pirate")
    (folder / "adapter_model.safetensors").unlink()

    response = post(client, QWQ, {**CHAT, "lora": "pirate"})

    assert_error(
        response,
        400,
        3039,
        "Finetune is missing required files (adapter_model.safetensors and adapter_config.json)",
        "pirate has no adapter_model.safetensors",
    )
    assert engines[QWQ].loaded_adapters == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"rank": 64}, "rank 64 is above the largest rank served (32)"),
        ({"base_model": R1}, f"trained for '{R1}', not for {QWQ}"),
    ],
    ids=["rank-64", "other-base"],
)
def test_unusable_adapters_are_bad_input(
    client: TestClient,
    engines: dict[str, FakeEngine],
    adapters_dir: Path,
    options: dict[str, Any],
    fragment: str,
) -> None:
    add(adapters_dir, QWQ, "bad", **options)

    response = post(client, QWQ, {**CHAT, "lora": "bad"})

    assert_error(
        response, 400, 5006, "AiError: Bad input: Error: Finetune bad cannot be used: ", fragment
    )
    assert engines[QWQ].loaded_adapters == []


def test_the_max_lora_rank_of_the_engine_is_the_limit(
    make_client: ClientFactory, adapters_dir: Path
) -> None:
    models = [
        ModelSettings(
            name=QWQ,
            engine=EngineConfig(
                builtin="tiny-qwq-32b", max_model_len=24000, enable_lora=True, max_lora_rank=8
            ),
        )
    ]
    client = make_client(models=models, adapters_dir=adapters_dir)
    add(adapters_dir, QWQ, "r16", rank=16)

    response = post(client, QWQ, {**CHAT, "lora": "r16"})

    assert_error(response, 400, 5006, "rank 16 is above the largest rank served (8)")


def test_an_adapter_the_engine_refuses_is_bad_input(
    client: TestClient, engines: dict[str, FakeEngine], adapters_dir: Path
) -> None:
    add(adapters_dir, QWQ, "pirate")
    engines[QWQ].adapter_failure = EngineRequestError("the engine could not load 'pirate'")

    response = post(client, QWQ, {**CHAT, "lora": "pirate"})

    assert_error(response, 400, 5006, "the engine could not load 'pirate'")
    assert engines[QWQ].calls == []


@pytest.mark.parametrize(
    ("profile", "enabled"),
    [("cpu-tiny", True), ("cpu-demo", False), ("gpu-2x80gb", True), ("gpu-1x141gb-fp8", True)],
)
def test_profiles_serve_lora_up_to_rank_32(profile: str, enabled: bool) -> None:
    settings = load_settings(REPO / "configs" / f"{profile}.yaml")

    for model in settings.models:
        assert model.local_engine.enable_lora is enabled
        assert model.local_engine.max_lora_rank == 32
