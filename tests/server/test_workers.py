"""`serve --workers N`: refused with in-process engines; with remote ones, N processes answer on
one port, a signal stops them all, and a worker that dies takes the set down (non-zero) so that
a supervisor restarts it."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from engine.config import EngineConfig
from engine.remote.config import RemoteConfig
from server.settings import ConfigError, ModelSettings, Settings
from server.workers import check_workers
from tests.support.fake_upstream import MODEL, FakeUpstream
from tests.support.live_server import free_port
from tests.support.paths import REPO

QWQ = "@cf/qwen/qwq-32b"
WORKERS = 2


def remote_model() -> ModelSettings:
    remote = RemoteConfig(url="http://127.0.0.1:1", served_model_name="m", tokenizer="tiny-qwq-32b")
    return ModelSettings(name=QWQ, remote=remote)


def test_more_than_one_worker_needs_every_model_remote() -> None:
    local = ModelSettings(
        name="@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
        engine=EngineConfig(builtin="tiny-deepseek-r1-distill-qwen-32b", max_model_len=1024),
    )
    check_workers(Settings(models=[remote_model()]), 4)
    check_workers(Settings(models=[remote_model(), local]), 1)
    with pytest.raises(ConfigError, match="deepseek-r1-distill-qwen-32b would start an engine"):
        check_workers(Settings(models=[remote_model(), local]), 2)
    with pytest.raises(ConfigError, match="at least 1"):
        check_workers(Settings(models=[remote_model()]), 0)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def start(upstream: FakeUpstream, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    config = tmp_path / "remote.yaml"
    config.write_text(
        f"""
models:
  - name: "{QWQ}"
    remote:
      url: {upstream.url}
      served_model_name: {MODEL}
      tokenizer: tiny-qwq-32b
"""
    )
    port = free_port()
    log = tmp_path / "server.log"
    command = [
        sys.executable, "-m", "server.cli", "serve", "--config", str(config),
        "--port", str(port), "--workers", str(WORKERS),
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError(log.read_text())
    return process, base, log


def workers_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(process.pid).children()
    return children


def wait_all_up(process: subprocess.Popen[bytes], base: str) -> None:
    """Until every worker listens: each answers /health (the kernel spreads connections)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if all(_listening(worker) for worker in workers_of(process)):
            return
        time.sleep(0.5)
    raise AssertionError("not every worker started")


def _listening(worker: psutil.Process) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in worker.net_connections())
    except psutil.Error:
        return False


def test_workers_share_one_port_and_stop_together_on_sigterm(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    process, base, log = start(upstream, tmp_path)
    try:
        assert len(workers_of(process)) == WORKERS
        wait_all_up(process, base)
        body = {"prompt": "Hi", "max_tokens": 3}
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=30) as client:  # a new connection each
                response = client.post(f"/client/v4/accounts/a/ai/run/{QWQ}", json=body)
                assert response.status_code == 200, response.text
                assert response.json()["result"]["response"] == "Hello, world"
        workers = workers_of(process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert not any(worker.is_running() for worker in workers)
    finally:
        if process.poll() is None:
            process.kill()


def test_a_dead_worker_stops_the_set_with_a_failure(upstream: FakeUpstream, tmp_path: Path) -> None:
    process, base, log = start(upstream, tmp_path)
    try:
        wait_all_up(process, base)
        first, second = workers_of(process)
        os.kill(first.pid, signal.SIGKILL)
        assert process.wait(timeout=60) != 0, log.read_text()
        second.wait(timeout=10)
        assert "stopping the others" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
