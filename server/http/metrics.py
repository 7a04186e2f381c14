"""`GET /metrics`: the server's Prometheus metrics, then the engines' own (`vllm:*`).

What each request did is observed once it has been answered in full (`RequestLog`, from its
`RequestRecord`); the engines' running and waiting requests are read when scraped. Models are
labelled with their Workers AI names; a request naming no served model has `model=""`, so that
clients cannot grow the label set. Each app owns its registry (several apps may live in one
process, as in tests); the engines' metrics, and the process's, are in prometheus_client's global
REGISTRY (see `engine.vllm.metrics`), and both are exposed here.

Under `serve --workers N` (`server.workers`; every engine remote) prometheus-client runs in
multiprocess mode (`server.http.metrics_multiprocess`): a scrape, whichever worker answers it,
merges every worker's values, and exposes nothing else. Metric by metric:

- `requests`, `prompt_tokens`, `completion_tokens` (counters) and the three histograms: each
  worker counts the requests it answered, so the set's are the sum, which is what the mode does
  for counters and histograms.
- `requests_running`, `requests_waiting` (gauges, `livesum`): a remote engine's are this
  process's own requests upstream, so the set's are the sum over the workers alive. A worker that
  exited is taken out of the sum by the parent (`mark_process_dead`). A worker writes its gauges
  when it reads its engines, and a scrape makes only the worker answering it read them: each
  worker therefore also reads its engines every `REFRESH_S` while it runs (`_refresh_lifespan`),
  and the others' share in a scrape is at most that old.
- `model_awake` (gauge, `livemostrecent`) and the swap counters (`_SwapCounters`, a collector
  reading live state): a swap group's state is one value for the whole server, not a per-process
  share, so it must not be summed: the gauge takes the last value set; the collector reports the
  answering process's view. Only in-process engines swap, so under `--workers` both stay empty.
- `vllm:*` (in-process engines only, so never under `--workers`), `process_*` and `python_*`
  (each describes the one process answering) live in the global REGISTRY, which the mode leaves
  out.

With one process (the default, and whenever an engine runs in-process) none of this applies: the
mode is off, the gauges' `multiprocess_mode` is ignored, and the output is the app's registry
then the global one, as described above.
"""

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from engine.protocol import Engine
from engine.types import SwapState
from server.http.metrics_multiprocess import multiprocess_mode, shared_registry
from server.http.state import Authenticated, Served, Serving
from server.request_context import RequestRecord

# The classic text format, which `generate_latest` writes and every Prometheus reads
# (prometheus-client's CONTENT_TYPE_LATEST names 1.0.0 since 0.22).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Generations take from milliseconds (a short answer) to the request timeout (600 s by default).
SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

# In multiprocess mode, how often each worker writes its engines' running and waiting requests
# (a remote engine's status is cheap: a count, and the upstream's /health at most once a second).
REFRESH_S = 1.0

# The API a path belongs to, first match wins: (label, pattern searched in the path).
ROUTE_FAMILIES = (
    ("openai", re.compile(r"/ai/v1/|/workers-ai/v1/")),
    ("workers_ai", re.compile(r"/ai/run(/|$)|^/v1/[^/]+/[^/]+/workers-ai/")),
    ("catalog", re.compile(r"/ai/models/")),
    ("finetunes", re.compile(r"/ai/finetunes(/|$)")),
    ("health", re.compile(r"^/health$")),
    ("binding", re.compile(r"^/binding/|^/$")),  # env.AI of Miniflare and wrangler dev
)


def route_family(path: str) -> str:
    """`workers_ai`, `openai`, `catalog`, `finetunes`, `health`, `binding`, else `other`
    (`/metrics`, unknown paths)."""
    for family, pattern in ROUTE_FAMILIES:
        if pattern.search(path):
            return family
    return "other"


class ServerMetrics:
    """This app's metrics, in a registry of its own; in multiprocess mode, exposed merged with
    the other processes' instead."""

    def __init__(self, model_names: Iterable[str]) -> None:
        self.models = frozenset(model_names)
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "workers_ai_local_requests",
            "Requests answered, by model (empty when none served was named), API, HTTP status "
            "and Cloudflare error code (empty on success; also set for in-band stream errors, "
            "3008 when the client left a stream)",
            ["model", "api", "status", "error_code"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "workers_ai_local_time_to_first_token_seconds",
            "Seconds from the request's arrival to its generation's first output event",
            ["model"],
            buckets=SECONDS,
            registry=registry,
        )
        self.request_duration = Histogram(
            "workers_ai_local_request_duration_seconds",
            "Seconds from a request's arrival until its response was sent in full (a stream: "
            "until it ended), for requests naming a served model",
            ["model"],
            buckets=SECONDS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "workers_ai_local_queue_wait_seconds",
            "Seconds from handing the tokenized request to the engine until its first output "
            "event: waiting for a running slot, then prefill (hidden reasoning, as in JSON "
            "mode, adds its own tokens)",
            ["model"],
            buckets=SECONDS,
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "workers_ai_local_prompt_tokens",
            "Prompt tokens of finished generations",
            ["model"],
            registry=registry,
        )
        self.completion_tokens = Counter(
            "workers_ai_local_completion_tokens",
            "Completion tokens of finished generations",
            ["model"],
            registry=registry,
        )
        self.running = Gauge(
            "workers_ai_local_requests_running",
            "Requests the model's engine is running now (vLLM: its unfinished requests but "
            "those its scheduler last reported waiting)",
            ["model"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.waiting = Gauge(
            "workers_ai_local_requests_waiting",
            "Requests admitted to the model's engine that wait for a running slot (vLLM: as "
            "its scheduler last reported, at most its unfinished requests)",
            ["model"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.awake = Gauge(
            "workers_ai_local_model_awake",
            "1 when the model is awake in its swap group, 0 while asleep or waking (only "
            "models in a swap group)",
            ["model", "group"],
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self._swaps: dict[str, SwapState] = {}
        registry.register(_SwapCounters(self._swaps))
        # What a scrape shows: in multiprocess mode, every process's values and this process's
        # view of the swaps (the same in every process); else this registry, then the global one.
        self._exposed: _Collectable = _Chained((registry, REGISTRY))
        if self.multiprocess:
            shared = shared_registry()
            shared.register(_SwapCounters(self._swaps))
            self._exposed = shared
        for model in self.models:  # every served model's series exists from the start
            for metric in (
                self.time_to_first_token,
                self.request_duration,
                self.queue_wait,
                self.prompt_tokens,
                self.completion_tokens,
                self.running,
                self.waiting,
            ):
                metric.labels(model)

    def observe(self, path: str, status: int, record: RequestRecord, elapsed_s: float) -> None:
        """One request, answered in full."""
        model = record.model if record.model in self.models else ""
        error_code = "" if record.error_code is None else str(record.error_code)
        self.requests.labels(model, route_family(path), str(status), error_code).inc()
        if not model:
            return
        self.request_duration.labels(model).observe(elapsed_s)
        if record.first_event_after_s is not None:
            self.time_to_first_token.labels(model).observe(record.first_event_after_s)
        if record.queue_wait_s is not None:
            self.queue_wait.labels(model).observe(record.queue_wait_s)
        if record.prompt_tokens is not None:
            self.prompt_tokens.labels(model).inc(record.prompt_tokens)
        if record.completion_tokens is not None:
            self.completion_tokens.labels(model).inc(record.completion_tokens)

    async def read_engines(self, engines: Mapping[str, Engine]) -> None:
        """Set the gauges from each model's engine, as it reports now."""
        for name, engine in engines.items():
            status = await engine.status()
            self.running.labels(name).set(status.running_requests)
            self.waiting.labels(name).set(status.waiting_requests)
            if status.swap is not None:
                self.awake.labels(name, status.swap.group).set(status.swap.state == "awake")
                self._swaps[status.swap.group] = status.swap

    async def keep_engines_read(self, engines: Mapping[str, Engine]) -> None:
        """Read the engines every REFRESH_S, until cancelled: in multiprocess mode the scrape
        another worker answers reads this process's gauges as last written."""
        while True:
            await self.read_engines(engines)
            await asyncio.sleep(REFRESH_S)

    def exposition(self) -> bytes:
        """This app's metrics, then the global registry's (the engines', the process's); in
        multiprocess mode, every process's metrics."""
        return generate_latest(self._exposed)


class _SwapCounters:
    """Swaps and seconds spent swapping per swap group, as its members last reported them."""

    def __init__(self, swaps: Mapping[str, SwapState]) -> None:
        self._swaps = swaps

    def collect(self) -> Iterator[Metric]:
        swaps = CounterMetricFamily(
            "workers_ai_local_swaps", "Swaps done by the swap group", labels=["group"]
        )
        seconds = CounterMetricFamily(
            "workers_ai_local_swap_seconds",
            "Seconds the swap group spent swapping (put down, bring up, probe)",
            labels=["group"],
        )
        for group, state in sorted(self._swaps.items()):
            swaps.add_metric([group], state.swaps)
            seconds.add_metric([group], state.swap_seconds)
        yield swaps
        yield seconds


class _Collectable(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Chained:
    def __init__(self, registries: Iterable[CollectorRegistry]) -> None:
        self._registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()


def engines_of(serving: Serving) -> dict[str, Engine]:
    return {name: model.engine for name, model in serving.generation.models.items()}


@asynccontextmanager
async def _refresh_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """In multiprocess mode, keeps this process's gauges current while the app runs. Entered
    after the app's own lifespan (FastAPI nests an included router's), so its engines run."""
    server_metrics: ServerMetrics = app.state.metrics
    if not server_metrics.multiprocess:
        yield
        return
    serving: Serving = app.state.serving
    refresh = asyncio.create_task(server_metrics.keep_engines_read(engines_of(serving)))
    try:
        yield
    finally:
        refresh.cancel()
        with suppress(asyncio.CancelledError):
            await refresh


router = APIRouter(lifespan=_refresh_lifespan)


@router.get("/metrics", dependencies=[Authenticated])
async def metrics(request: Request, serving: Served) -> Response:
    server_metrics: ServerMetrics = request.app.state.metrics
    await server_metrics.read_engines(engines_of(serving))
    return Response(server_metrics.exposition(), media_type=CONTENT_TYPE)
