"""A dead engine shows in /health (503) and in errors (500, generic), never as a hang."""

from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.support.live_server import TOKEN, RunningServer, running_server

R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"

ONE_MODEL = """
models:
  - name: "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"
    engine:
      builtin: tiny-deepseek-r1-distill-qwen-32b
      max_model_len: 4096
      enforce_eager: true
      cpu_kv_cache_gib: 1
"""


@pytest.fixture(scope="module")
def doomed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("doomed")
    config = folder / "one-model.yaml"
    config.write_text(ONE_MODEL)
    with running_server(config, folder / "server.log") as server:
        yield server


def engine_core_processes(server: RunningServer) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [
        child for child in children if "EngineCore" in " ".join([*child.cmdline(), child.name()])
    ]


def test_killed_engine_is_reported(doomed_server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = doomed_server.url(f"/client/v4/accounts/a/ai/run/{R1}")
    assert (
        httpx.post(url, json={"prompt": "Hi", "max_tokens": 2}, headers=headers).status_code == 200
    )
    cores = engine_core_processes(doomed_server)
    assert cores, "no EngineCore process found"

    for process in cores:
        process.kill()
    psutil.wait_procs(cores, timeout=10)

    response = httpx.post(url, json={"prompt": "Hi", "max_tokens": 2}, headers=headers, timeout=30)
    assert response.status_code == 500
    assert response.json()["errors"] == [{"code": 3043, "message": "Internal server error"}]
    health = httpx.get(doomed_server.url("/health"), timeout=10)
    assert health.status_code == 503
    assert health.json()["models"][R1]["healthy"] is False
