"""Servers the benchmarks start: a command in a subprocess, healthy before use, stopped after."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not healthy after {timeout_s} s")


@contextmanager
def started(
    command: list[str], health_url: str, log: Path, env: dict[str, str], cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (its output to `log`) until the block ends; yields the process.

    The server gets a session of its own, as the replicas and the router of `bench.remote` do:
    Linux's scheduler (autogroup) shares the CPU between sessions first, so a server left in
    the benchmark's session would share one session's part with the benchmark's client."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(health_url, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def serve_command(config: Path, port: int, log_level: str = "warning") -> list[str]:
    """`workers-ai-local serve` on `config`, run by this Python from the server's checkout."""
    return [
        sys.executable, "-m", "server.cli", "serve",
        "--config", str(config), "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip
