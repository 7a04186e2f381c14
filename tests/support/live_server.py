"""Start the real `workers-ai-local serve` in a subprocess and wait until it is healthy."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.paths import REPO

TOKEN = "integration-token"
STARTUP_TIMEOUT_S = 600


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(config: Path, log: Path, **env: str) -> Iterator[RunningServer]:
    """Run the CLI exactly as a user would, on a free loopback port."""
    port = free_port()
    command = [
        sys.executable, "-m", "server.cli", "serve",
        "--config", str(config), "--port", str(port),
    ]  # fmt: skip
    environment = {**os.environ, "WORKERS_AI_LOCAL_API_TOKENS": TOKEN, **env}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(server: RunningServer, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Until `/health` answers 200; raises, with the log's tail, if the server exits first or
    is not healthy within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log_tail()}")
        try:
            if httpx.get(server.url("/health"), timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise RuntimeError(f"server not healthy after {timeout_s:g} s:\n{server.log_tail()}")
