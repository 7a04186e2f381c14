"""A LoRA adapter uploaded with the official `cloudflare` SDK, as wrangler's `ai finetune create`
does it (create, then one upload per file), then served by the real engine under its name."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudflare import Cloudflare, Omit, omit

from tests.support.live_server import TOKEN, RunningServer
from tests.support.lora_factory import write_adapter

QWQ = "@cf/qwen/qwq-32b"
ACCOUNT = "acct"
PROMPT = "Why is pizza so good?"  # the SDK types `lora` on the prompt form only


@pytest.fixture(scope="module")
def sdk(server: RunningServer) -> Iterator[Cloudflare]:
    with Cloudflare(api_token=TOKEN, base_url=server.url("/client/v4")) as client:
        yield client


def test_an_adapter_uploaded_with_the_sdk_serves_lora_requests(
    sdk: Cloudflare, tmp_path: Path
) -> None:
    folder = write_adapter(tmp_path / "adapter", base_model=QWQ, seed=7)

    finetune = sdk.ai.finetunes.create(
        account_id=ACCOUNT, model=QWQ, name="sdk-pirate", description="uploaded with the SDK"
    )
    for file_name in ("adapter_config.json", "adapter_model.safetensors"):
        asset = sdk.ai.finetunes.assets.create(
            finetune.id, account_id=ACCOUNT, file=folder / file_name, file_name=file_name
        )
        assert asset.success

    def answer(lora: str | Omit = omit) -> object:
        result = sdk.ai.run(
            QWQ, account_id=ACCOUNT, prompt=PROMPT, max_tokens=24, temperature=0, lora=lora
        )
        assert isinstance(result, dict)
        return result["response"]

    plain, tuned = answer(), answer("sdk-pirate")
    assert tuned != plain
    assert answer(finetune.id) == tuned
    assert (finetune.name, finetune.model, finetune.public) == ("sdk-pirate", QWQ, False)
