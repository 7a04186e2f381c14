"""`serve --workers N`: refused with in-process engines; with remote ones, N processes answer on
one port (new connections spread over them), a signal stops them all, a worker that dies takes
the set down (non-zero) so that a supervisor restarts it, and a remote model's
`max_concurrent_requests` holds for the whole set."""

import os
import signal
import socket
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import httpx
import psutil
import pytest

from engine.config import EngineConfig
from engine.remote.config import RemoteConfig
from server.settings import ConfigError, ModelSettings, Settings
from server.workers import bind, check_workers, describe_shares, worker_share
from tests.support.fake_upstream import Endless, FakeUpstream
from tests.support.worker_set import (
    QWQ,
    RUN,
    RUNNING,
    WORKERS,
    metrics_dir_of,
    per_worker,
    running_set,
    until,
    workers_of,
)

R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"


def remote_model(max_concurrent_requests: int | None = None) -> ModelSettings:
    remote = RemoteConfig(
        url="http://127.0.0.1:1",
        served_model_name="m",
        tokenizer="tiny-qwq-32b",
        max_concurrent_requests=max_concurrent_requests,
    )
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
    check_workers(Settings(models=[remote_model(max_concurrent_requests=3)]), 3)
    with pytest.raises(ConfigError, match="max_concurrent_requests 3 cannot be shared by 4"):
        check_workers(Settings(models=[remote_model(max_concurrent_requests=3)]), 4)


def caps(settings: Settings) -> list[int | None]:
    return [m.remote.max_concurrent_requests if m.remote else None for m in settings.models]


def test_each_worker_gets_its_share_of_max_concurrent_requests() -> None:
    limited = remote_model(max_concurrent_requests=10)
    r1 = ModelSettings(name=R1, remote=remote_model().remote)
    settings = Settings(models=[limited, r1])

    assert worker_share(settings, 1) is settings
    shared = worker_share(settings, 4)
    assert caps(shared) == [2, None]
    assert shared.models[0] == remote_model(max_concurrent_requests=2)
    assert caps(worker_share(settings, 3)) == [3, None]  # rounded down: 9 in all
    assert describe_shares(settings, 4) == [
        f"{QWQ}: at most 2 requests upstream per worker, 8 in all (max_concurrent_requests 10)"
    ]


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


def test_the_workers_send_no_more_upstream_than_max_concurrent_requests(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    with (
        running_set(upstream, tmp_path, "max_concurrent_requests: 2") as (process, base, _),
        ExitStack() as streams,
    ):
        statuses = []
        for _ in range(16):  # on new connections, spread over both workers
            upstream.replies.append(Endless(interval_s=0.2))
            client = streams.enter_context(httpx.Client(base_url=base, timeout=60))
            response = streams.enter_context(
                client.stream("POST", RUN, json={"prompt": "Hi", "stream": True})
            )
            statuses.append(response.status_code)
            if response.status_code == 200:
                lines = cast(Generator[str, None, None], response.iter_lines())
                streams.callback(lines.close)
                next(lines)  # generating upstream
            else:
                response.read()
                assert response.json()["errors"][0]["code"] == 3040

        assert statuses.count(200) == 2, statuses  # one a worker (the config's 2 in all)
        assert statuses.count(429) == 14, statuses
        metrics_dir = metrics_dir_of(process)

        def one_each() -> bool:
            return sorted(per_worker(metrics_dir, "gauge_livesum", RUNNING).values()) == [1, 1]

        until(one_each, "each worker runs one request")
