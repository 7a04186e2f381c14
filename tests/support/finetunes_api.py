"""Calls of the finetunes API as its clients make them, and adapter files to upload."""

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from engine.lora.store import model_slug
from tests.support.app import AUTH, QWQ, run_url
from tests.support.lora_factory import write_adapter

ACCOUNT = "acct"
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
FILES = (CONFIG, WEIGHTS)
CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def finetunes_url(path: str = "", account: str = ACCOUNT, prefix: str = "/client/v4") -> str:
    return f"{prefix}/accounts/{account}/ai/finetunes{path}"


def create(
    client: TestClient, name: str = "pirate", model: str = QWQ, account: str = ACCOUNT, **extra: Any
) -> Any:
    body = {"model": model, "name": name, **extra}
    return client.post(finetunes_url(account=account), json=body, headers=AUTH)


def created_id(client: TestClient, name: str = "pirate", model: str = QWQ, **extra: Any) -> str:
    response = create(client, name, model, **extra)
    assert response.status_code == 200, response.text
    finetune_id: str = response.json()["result"]["id"]
    return finetune_id


def upload(
    client: TestClient, ref: str, file_name: str, content: bytes, account: str = ACCOUNT
) -> Any:
    """One asset, as multipart `file_name` + `file` (the SDK's and wrangler's form)."""
    return client.post(
        finetunes_url(f"/{ref}/finetune-assets", account=account),
        headers=AUTH,
        data={"file_name": file_name},
        files={"file": (file_name, content)},
    )


def publish(
    client: TestClient, name: str, source: Path, model: str = QWQ, account: str = ACCOUNT
) -> str:
    """Create the finetune `name` and upload both its files (written in `source`); its id."""
    response = create(client, name, model, account=account)
    assert response.status_code == 200, response.text
    finetune_id: str = response.json()["result"]["id"]
    files = adapter_files(source, model)
    for file_name in FILES:
        response = upload(client, finetune_id, file_name, files[file_name], account=account)
        assert response.status_code == 200, response.text
    return finetune_id


def run_with(client: TestClient, lora: str, model: str = QWQ) -> Any:
    """A chat request through the finetune `lora` (a name or an id)."""
    return client.post(run_url(model), json={**CHAT, "lora": lora}, headers=AUTH)


def adapter_files(folder: Path, model: str = QWQ, **options: Any) -> dict[str, bytes]:
    """The two files of a LoRA adapter for `model`'s tiny checkpoint (`write_adapter` options)."""
    options.setdefault("base_model", model)
    written = write_adapter(folder, **options)
    return {name: (written / name).read_bytes() for name in FILES}


def published(adapters_dir: Path, name: str, model: str = QWQ) -> Path:
    """Where a finetune's adapter appears in the model's store once both files are in."""
    return adapters_dir / model_slug(model) / name


def leftovers(adapters_dir: Path) -> list[Path]:
    """Temporary files or folders anywhere under the adapters dir: none may stay behind."""
    prefixes = (".upload-", ".new-", ".candidate-")
    return [
        path
        for path in adapters_dir.rglob("*")
        if path.name.startswith(prefixes) or path.name.endswith(".tmp")
    ]


def staged(adapters_dir: Path, finetune_id: str) -> list[str]:
    """The files received so far by a finetune not yet published."""
    return sorted(
        path.name for path in (adapters_dir / ".finetunes" / finetune_id / "adapter").iterdir()
    )
