"""`serve --workers N`: refused with in-process engines; with remote ones, N processes answer on
one port (new connections spread over them), a signal stops them all, and a worker that dies
takes the set down (non-zero) so that a supervisor restarts it. Whichever worker answers
`/metrics` reports the whole set."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import cast

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from engine.config import EngineConfig
from engine.remote.config import RemoteConfig
from server.http.metrics_multiprocess import ENV
from server.settings import ConfigError, ModelSettings, Settings
from server.workers import bind, check_workers
from tests.support.fake_upstream import MODEL, Endless, FakeUpstream
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


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_each_worker_gets_a_socket_of_its_own_on_the_port() -> None:
    listeners = bind("127.0.0.1", 0, 3)
    try:
        assert len({listener.fileno() for listener in listeners}) == 3
        assert len({listener.getsockname() for listener in listeners}) == 1
    finally:
        for listener in listeners:
            listener.close()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_a_port_in_use_is_refused_even_by_a_listener_that_would_share_it() -> None:
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(ConfigError, match="cannot listen on"):
            bind("127.0.0.1", other.getsockname()[1], 2)
    finally:
        other.close()


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


@contextmanager
def running_set(
    upstream: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A `serve --workers` set with every worker listening; killed at the end if it still runs."""
    process, base, log = start(upstream, tmp_path)
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


def test_workers_share_one_port_and_stop_together_on_sigterm(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with running_set(upstream, tmp_path) as (process, base, log):
        assert len(workers_of(process)) == WORKERS
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


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_a_burst_of_new_connections_is_spread_over_the_workers(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """On one shared socket the first worker to wake accepted all of them (seen: 8 of 8)."""
    with running_set(upstream, tmp_path) as (process, base, _log):
        port = int(base.rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        try:
            deadline = time.monotonic() + 60
            while True:
                held = [_established(worker, port) for worker in workers_of(process)]
                if sum(held) == len(clients) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert sum(held) == len(clients), held
            assert all(held), held
        finally:
            for client in clients:
                client.close()


def _established(worker: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in worker.net_connections(kind="tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
    )


def test_a_dead_worker_stops_the_set_with_a_failure(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_set(upstream, tmp_path) as (process, _base, log):
        first, second = workers_of(process)
        os.kill(first.pid, signal.SIGKILL)
        assert process.wait(timeout=60) != 0, log.read_text()
        second.wait(timeout=60)
        assert "stopping the others" in log.read_text()


RUN = f"/client/v4/accounts/a/ai/run/{QWQ}"
REQUESTS = "workers_ai_local_requests_total"
ANSWERED = {"model": QWQ, "api": "workers_ai", "status": "200", "error_code": ""}
RUNNING = "workers_ai_local_requests_running"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


def scrape(base: str) -> Samples:
    """One `/metrics`, on a new connection: any worker may answer it."""
    response = httpx.get(base + "/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def until(condition: Callable[[], bool], what: str) -> None:
    """Waits for `condition`; the deadline only stops a hang (the machine is shared)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def answer_on_every_worker(process: subprocess.Popen[bytes], base: str) -> int:
    """Sends requests, each on a new connection, until every worker has answered one; how
    many were sent."""
    metrics_dir = metrics_dir_of(process)
    workers = {worker.pid for worker in workers_of(process)}
    for sent in range(1, 101):
        with httpx.Client(base_url=base, timeout=30) as client:
            response = client.post(RUN, json={"prompt": "Hi", "max_tokens": 3})
        assert response.status_code == 200, response.text

        def counted(sent: int = sent) -> bool:  # a worker counts a request once it has answered
            return sum(per_worker(metrics_dir, "counter", REQUESTS, **ANSWERED).values()) == sent

        until(counted, "the worker counts the request it answered")
        answered = per_worker(metrics_dir, "counter", REQUESTS, **ANSWERED)
        if all(answered.get(pid, 0) >= 1 for pid in workers):
            return sent
    raise AssertionError(f"the kernel gave every connection to one worker: {answered}")


def hold_streams_on_every_worker(
    process: subprocess.Popen[bytes], base: str, upstream: FakeUpstream, streams: ExitStack
) -> dict[int, float]:
    """Opens endless streams, each on a new connection, until every worker runs at least one;
    the requests each worker runs."""
    metrics_dir = metrics_dir_of(process)
    workers = {worker.pid for worker in workers_of(process)}
    for opened in range(1, 21):
        upstream.replies.append(Endless(interval_s=0.2))
        client = streams.enter_context(httpx.Client(base_url=base, timeout=60))
        response = streams.enter_context(
            client.stream("POST", RUN, json={"prompt": "Hi", "stream": True})
        )
        assert response.status_code == 200
        # A generator (httpx writes it as one): held while the stream is, for dropping it
        # would hang up.
        lines = cast(Generator[str, None, None], response.iter_lines())
        streams.callback(lines.close)
        next(lines)  # generating: the engine runs it

        def written(opened: int = opened) -> bool:
            return sum(per_worker(metrics_dir, "gauge_livesum", RUNNING).values()) == opened

        # Unasked: no scrape goes to the worker that runs it.
        until(written, "each worker writes its running requests while it runs")
        held = per_worker(metrics_dir, "gauge_livesum", RUNNING)
        if all(held.get(pid, 0) >= 1 for pid in workers):
            return held
    raise AssertionError(f"the kernel gave every stream to one worker: {held}")


def test_one_scrape_counts_the_requests_of_every_worker(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with running_set(upstream, tmp_path) as (process, base, log):
        metrics_dir = metrics_dir_of(process)
        assert stat.S_IMODE(metrics_dir.stat().st_mode) == 0o700

        sent = answer_on_every_worker(process, base)

        for _ in range(4):  # whichever worker answers
            samples = scrape(base)
            assert value(samples, REQUESTS, **ANSWERED) == sent
            assert value(samples, "workers_ai_local_completion_tokens_total", model=QWQ) == 3 * sent
            for histogram in ("request_duration", "time_to_first_token", "queue_wait"):
                name = f"workers_ai_local_{histogram}_seconds_count"
                assert value(samples, name, model=QWQ) == sent, histogram
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert not metrics_dir.exists()


def test_one_scrape_counts_the_running_requests_of_every_worker(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with running_set(upstream, tmp_path) as (process, base, log):
        with ExitStack() as streams:
            held = hold_streams_on_every_worker(process, base, upstream, streams)
            for _ in range(4):  # whichever worker answers
                assert value(scrape(base), RUNNING, model=QWQ) == sum(held.values())
        until(
            lambda: value(scrape(base), RUNNING, model=QWQ) == 0,
            "the streams the clients left end upstream, in every worker",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()


def test_a_dead_workers_running_requests_leave_the_sum(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with running_set(upstream, tmp_path) as (process, base, log):
        metrics_dir = metrics_dir_of(process)
        with ExitStack() as streams:
            held = hold_streams_on_every_worker(process, base, upstream, streams)
            dead, alive = workers_of(process)
            dead.kill()

            until(
                lambda: dead.pid not in per_worker(metrics_dir, "gauge_livesum", RUNNING),
                "the parent takes the dead worker's live gauges out",
            )
            # The other worker drains its streams (ours, held open) and still answers /metrics.
            assert value(scrape(base), RUNNING, model=QWQ) == held[alive.pid]
        assert process.wait(timeout=120) != 0, log.read_text()
        assert not metrics_dir.exists()
