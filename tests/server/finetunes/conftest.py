"""The finetunes API over the fake engine: both models served with LoRA, adapters in tmp."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.app import ClientFactory, lora_models
from tests.support.finetunes_api import adapter_files, created_id


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    return tmp_path / "adapters"


@pytest.fixture
def client(make_client: ClientFactory, adapters_dir: Path) -> TestClient:
    return make_client(models=lora_models(), adapters_dir=adapters_dir)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """A good adapter for QwQ's tiny checkpoint: rank 8 on q_proj and v_proj."""
    return adapter_files(tmp_path / "source")


@pytest.fixture
def finetune(client: TestClient) -> str:
    """The id of the finetune "pirate" of QwQ, created without assets."""
    return created_id(client, "pirate")
