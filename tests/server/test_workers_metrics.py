"""`serve --workers N`: whichever worker answers `/metrics` reports the whole set."""

import signal
import stat
import subprocess
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import Endless, FakeUpstream
from tests.support.worker_set import (
    QWQ,
    RUN,
    RUNNING,
    metrics_dir_of,
    per_worker,
    running_set,
    until,
    workers_of,
)

REQUESTS = "workers_ai_local_requests_total"
ANSWERED = {"model": QWQ, "api": "workers_ai", "status": "200", "error_code": ""}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


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
