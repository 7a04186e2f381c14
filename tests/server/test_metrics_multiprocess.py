"""prometheus-client's multiprocess mode (`serve --workers N`): a scrape of any process shows
every process's counts summed, the live gauges of the processes alive, and nothing that
describes one process only. One process (the default) keeps its own registry, as before.

Multiprocess mode is chosen when prometheus_client is imported, so each "worker" here is a
process of its own, spawned with PROMETHEUS_MULTIPROC_DIR in its environment."""

import asyncio
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.types import EngineStatus
from server.http import metrics as metrics_module
from server.http.metrics import ServerMetrics
from server.http.metrics_multiprocess import ENV, SharedMetricsDir
from server.request_context import RequestRecord
from tests.support.app import QWQ, run_url
from tests.support.fake_engine import FakeEngine

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

REQUESTS = "workers_ai_local_requests_total"


def serve_in_worker(requests: int, running: int) -> tuple[int, str]:
    """In a worker: `requests` generations answered, `running` requests running now; the
    worker's pid and what a scrape it answers shows."""
    metrics = ServerMetrics([QWQ])
    assert metrics.multiprocess
    for _ in range(requests):
        record = RequestRecord(
            "id",
            model=QWQ,
            prompt_tokens=2,
            completion_tokens=4,
            first_event_after_s=0.2,
            queue_wait_s=0.1,
        )
        metrics.observe(run_url(QWQ), 200, record, 0.3)
    asyncio.run(metrics.read_engines({QWQ: FakeEngine(running=running, waiting=1)}))
    return os.getpid(), metrics.exposition().decode()


def in_worker(requests: int, running: int) -> tuple[int, str]:
    """`serve_in_worker` in a new process, which has exited on return."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as executor:
        return executor.submit(serve_in_worker, requests, running).result(timeout=120)


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedMetricsDir]:
    """The directory the workers spawned from now on share (this process stays as it was)."""
    with SharedMetricsDir() as directory:
        monkeypatch.setenv(ENV, str(directory.path))
        yield directory


def samples_of(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def answered(samples: Samples) -> float:
    return value(samples, REQUESTS, model=QWQ, api="workers_ai", status="200", error_code="")


def test_a_scrape_of_one_worker_sums_every_workers_counts(shared: SharedMetricsDir) -> None:
    in_worker(requests=2, running=2)
    _, text = in_worker(requests=1, running=1)

    samples = samples_of(text)
    assert answered(samples) == 3
    assert value(samples, "workers_ai_local_prompt_tokens_total", model=QWQ) == 6
    assert value(samples, "workers_ai_local_completion_tokens_total", model=QWQ) == 12
    ttft = "workers_ai_local_time_to_first_token_seconds"
    assert value(samples, f"{ttft}_count", model=QWQ) == 3
    assert value(samples, f"{ttft}_bucket", model=QWQ, le="0.1") == 0
    assert value(samples, f"{ttft}_bucket", model=QWQ, le="0.25") == 3
    assert value(samples, f"{ttft}_sum", model=QWQ) == pytest.approx(0.6)
    assert value(samples, "workers_ai_local_request_duration_seconds_count", model=QWQ) == 3
    assert value(samples, "workers_ai_local_queue_wait_seconds_count", model=QWQ) == 3
    # A worker that exited without being marked dead still counts: the parent's job.
    assert value(samples, "workers_ai_local_requests_running", model=QWQ) == 3
    assert value(samples, "workers_ai_local_requests_waiting", model=QWQ) == 2


def test_a_worker_marked_dead_leaves_the_live_gauges_and_keeps_its_counts(
    shared: SharedMetricsDir,
) -> None:
    pid, _ = in_worker(requests=2, running=2)
    shared.process_exited(pid)

    _, text = in_worker(requests=1, running=1)

    samples = samples_of(text)
    assert value(samples, "workers_ai_local_requests_running", model=QWQ) == 1
    assert value(samples, "workers_ai_local_requests_waiting", model=QWQ) == 1
    assert answered(samples) == 3


def test_a_scrape_has_each_family_once_and_nothing_of_one_process(
    shared: SharedMetricsDir,
) -> None:
    in_worker(requests=1, running=0)
    _, text = in_worker(requests=1, running=0)

    names = [family.name for family in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), names
    assert "workers_ai_local_requests" in names
    assert "workers_ai_local_swaps" in names  # this process's view, empty: nothing swaps here
    assert not [name for name in names if name.startswith(("process_", "python_"))]


def test_the_shared_directory_is_new_private_and_removed() -> None:
    with SharedMetricsDir() as first, SharedMetricsDir() as second:
        assert first.path != second.path
        assert list(first.path.iterdir()) == []
        assert stat.S_IMODE(first.path.stat().st_mode) == 0o700
        environment = first.environment({"PATH": "/bin", "prometheus_multiproc_dir": "/old"})
        assert environment == {"PATH": "/bin", ENV: str(first.path)}
    assert not first.path.exists()
    assert not second.path.exists()


def test_one_process_keeps_its_own_registry_and_the_global_one() -> None:
    metrics = ServerMetrics([QWQ])
    metrics.observe(run_url(QWQ), 200, RequestRecord("id", model=QWQ), 0.3)

    samples = samples_of(metrics.exposition().decode())

    assert not metrics.multiprocess
    assert answered(samples) == 1
    assert any(name.startswith("process_") for name, _ in samples)


@dataclass
class CountedEngine(FakeEngine):
    """Runs one more request each time its status is read, and says so on `reads`."""

    reads: "asyncio.Queue[int]" = field(default_factory=asyncio.Queue)

    async def status(self) -> EngineStatus:
        self.running += 1
        status = await super().status()
        self.reads.put_nowait(self.running)
        return status


def test_the_engines_are_read_again_and_again_until_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What keeps a worker's gauges current between the scrapes it answers."""
    monkeypatch.setattr(metrics_module, "REFRESH_S", 0.01)
    metrics = ServerMetrics([QWQ])
    engine = CountedEngine()

    async def three_reads() -> None:
        refresh = asyncio.create_task(metrics.keep_engines_read({QWQ: engine}))
        for expected in (1, 2, 3):
            # The timeout stops a hang; it is no performance bar.
            assert await asyncio.wait_for(engine.reads.get(), timeout=60) == expected
        refresh.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refresh

    asyncio.run(three_reads())
    running = metrics.registry.get_sample_value("workers_ai_local_requests_running", {"model": QWQ})
    assert running == 3
