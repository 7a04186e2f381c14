"""A real, pinned `wrangler dev` under `workers-ai-local wrangler-dev`, its env.AI on the session
server (configs/cpu-tiny.yaml, with an API token), all on this machine.

The Worker (tests/support/workers/ai/worker.js) makes one env.AI call per request and answers
what it saw. wrangler runs as a developer runs it, from the Worker's folder; the edge listens
on 127.0.0.1:443 (the tests run as root; docs/wrangler-dev.md says how to allow it otherwise).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.wrangler_dev.command import TESTED_VERSION
from tests.support import npm
from tests.support.app import QWQ, R1
from tests.support.live_server import TOKEN, RunningServer, free_port
from tests.support.paths import REPO

WORKER = REPO / "tests" / "support" / "workers" / "ai"
READY_TIMEOUT_S = 180
SHORT = {"max_tokens": 8, "seed": 1}


class WranglerDev:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def call(self, body: dict[str, Any]) -> dict[str, Any]:
        """What the Worker saw of one env.AI call (worker.js's answer)."""
        response = httpx.post(self.url, json=body, timeout=300)
        assert response.status_code == 200, self.log.read_text(errors="replace")[-3000:]
        seen: dict[str, Any] = response.json()
        return seen


@pytest.fixture(scope="module")
def wrangler_dev(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WranglerDev]:
    wrangler = npm.installed() / "node_modules" / ".bin" / "wrangler"
    project = tmp_path_factory.mktemp("worker")
    for name in ("worker.js", "wrangler.toml"):
        shutil.copy(WORKER / name, project / name)
    log = project / "wrangler-dev.log"
    port = free_port()
    command = [
        sys.executable, "-m", "server.cli", "wrangler-dev",
        "--server", server.base_url, "--token", TOKEN, "--",
        str(wrangler), "dev", "--ip", "127.0.0.1", "--port", str(port),
        "--inspector-port", str(free_port()),
    ]  # fmt: skip
    env = {
        **os.environ,
        "WORKERS_AI_LOCAL_CACHE_DIR": str(project / "cache"),
        "XDG_CONFIG_HOME": str(project / "config"),  # wrangler's own config and logs
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: wrangler and workerd in it
        )
    try:
        _wait_ready(process, log, port)
        yield WranglerDev(f"http://127.0.0.1:{port}/", log)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], log: Path, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if f"Ready on http://127.0.0.1:{port}" in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"wrangler dev not ready:\n{log.read_text(errors='replace')[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to wrangler-dev, which passes it on; the group by its id if anything stays."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workerd, if wrangler left it behind


def test_the_wrangler_the_tests_install_is_the_one_wrangler_dev_supports() -> None:
    assert npm.WRANGLER == TESTED_VERSION


def test_a_run_returns_the_result_object(wrangler_dev: WranglerDev) -> None:
    seen = wrangler_dev.call({"model": QWQ, "inputs": {"prompt": "Hello", **SHORT}})

    assert seen["ok"] is True, seen
    assert seen["type"] == "object"
    assert isinstance(seen["value"]["response"], str)
    assert seen["value"]["usage"]["completion_tokens"] > 0
    assert re.fullmatch(r"[0-9a-f]{32}", seen["lastRequestId"])


def test_messages_run_on_the_other_model(wrangler_dev: WranglerDev) -> None:
    messages = [{"role": "user", "content": "Hello"}]

    seen = wrangler_dev.call({"model": R1, "inputs": {"messages": messages, **SHORT}})

    assert seen["ok"] is True, seen
    assert isinstance(seen["value"]["response"], str)


def test_a_stream_reaches_the_worker_as_workers_ais_sse(wrangler_dev: WranglerDev) -> None:
    inputs = {"prompt": "Hello", "stream": True, **SHORT}

    seen = wrangler_dev.call({"model": QWQ, "inputs": inputs})

    assert seen["ok"] is True, seen
    assert seen["type"] == "stream"
    assert seen["value"].startswith("data: {")
    assert seen["value"].endswith("data: [DONE]\n\n")


def test_bad_input_throws_ai_error_5006_in_the_worker(wrangler_dev: WranglerDev) -> None:
    inputs = {"prompt": "Hello", "temperature": 9}

    seen = wrangler_dev.call({"model": QWQ, "inputs": inputs})

    assert seen["ok"] is False
    assert seen["name"] == "AiError"
    assert re.match(r"5006: Bad input: Error: .*temperature", seen["message"]), seen


def test_models_lists_the_served_models(wrangler_dev: WranglerDev) -> None:
    seen = wrangler_dev.call({"models": {}})

    assert seen["ok"] is True, seen
    assert sorted(model["name"] for model in seen["value"]) == sorted([QWQ, R1])
