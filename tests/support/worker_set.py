"""A `serve --workers` set for tests: started on a profile whose one model is remote (a
`tests.support.fake_upstream`), every worker listening, killed at the end."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from prometheus_client.multiprocess import MultiProcessCollector

from server.http.metrics_multiprocess import ENV
from tests.support.fake_upstream import MODEL, FakeUpstream
from tests.support.live_server import RunningServer, free_port, wait_healthy
from tests.support.paths import REPO

QWQ = "@cf/qwen/qwq-32b"
WORKERS = 2
RUN = f"/client/v4/accounts/a/ai/run/{QWQ}"
RUNNING = "workers_ai_local_requests_running"


def start(
    upstream: FakeUpstream, tmp_path: Path, remote_extra: str = ""
) -> tuple[subprocess.Popen[bytes], str, Path]:
    config = tmp_path / "remote.yaml"
    config.write_text(
        f"""
models:
  - name: "{QWQ}"
    remote:
      url: {upstream.url}
      served_model_name: {MODEL}
      tokenizer: tiny-qwq-32b
      {remote_extra}
# Streams the tests hold open must outlive a drain they watch.
drain_timeout_s: 300
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
    wait_healthy(RunningServer(base, process, log), timeout_s=180)
    return process, base, log


@contextmanager
def running_set(
    upstream: FakeUpstream, tmp_path: Path, remote_extra: str = ""
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A `serve --workers` set with every worker listening; killed at the end if it still runs."""
    process, base, log = start(upstream, tmp_path, remote_extra)
    try:
        wait_all_up(process, base)
        yield process, base, log
    finally:
        kill_set(process)


def kill_set(process: subprocess.Popen[bytes]) -> None:
    """After a failed test: the workers first (the parent's SIGKILL would leave them running),
    then the parent, if it did not exit by itself once they had (removing its temporary files)."""
    if process.poll() is None:
        for worker in workers_of(process):
            worker.kill()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def metrics_dir_of(process: subprocess.Popen[bytes]) -> Path:
    """The directory the workers keep their metrics in: one, the same for all of them."""
    (directory,) = {worker.environ()[ENV] for worker in workers_of(process)}
    return Path(directory)


def per_worker(metrics_dir: Path, kind: str, name: str, **labels: str) -> dict[int, float]:
    """The samples `name{labels}` as each worker last wrote them in its own file (`kind`:
    `counter`, `gauge_livesum`), summed: what each worker did, told apart from the others."""
    values: dict[int, float] = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        values[pid] = sum(
            sample.value
            for metric in merged
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )
    return values


def until(condition: Callable[[], bool], what: str) -> None:
    """Waits for `condition`; the deadline only stops a hang (the machine is shared)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
