"""vLLM's own Prometheus metrics (`vllm:*`), one registry per engine, exposed process-wide.

vLLM's `PrometheusStatLogger` registers its metrics in prometheus_client's global REGISTRY, and
unregisters every `vllm:*` collector there first: with two engines in one process only the last
one's would remain. So each engine gets a subclass of it whose metrics live in a registry of the
engine's own (`stat_logger`), labelled `model_name=<Workers AI name>` (the engine's
`served_model_name`). One collector in the global REGISTRY (`live_engine_metrics`) yields the
metrics of every running engine, each family once with every engine's samples.

The numbers come from the engine core's scheduler and iteration stats, which the frontend
(`AsyncLLM`, in this process) records: no multiprocess mode (PROMETHEUS_MULTIPROC_DIR) is
needed. The same stats tell the adapter how many requests the scheduler last reported waiting.
"""

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

HELPERS = ("_spec_decoding_cls", "_kv_connector_cls", "_ec_connector_cls", "_perf_metrics_cls")


class SchedulerCounts:
    """What the engine's scheduler last reported: requests running and waiting."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0


class LiveEngineMetrics:
    """A collector of every running engine's `vllm:*` metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registries: list[CollectorRegistry] = []

    def add(self, registry: CollectorRegistry) -> None:
        with self._lock:
            self._registries.append(registry)

    def remove(self, registry: CollectorRegistry) -> None:
        with self._lock:
            if registry in self._registries:
                self._registries.remove(registry)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            registries = list(self._registries)
        families: dict[str, Metric] = {}
        for registry in registries:
            for family in registry.collect():
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()


_live: LiveEngineMetrics | None = None
_live_lock = threading.Lock()


def live_engine_metrics() -> LiveEngineMetrics:
    """The process-wide collector, registered in the global REGISTRY on first use."""
    global _live
    with _live_lock:
        if _live is None:
            _live = LiveEngineMetrics()
            REGISTRY.register(_live)
        return _live


def stat_logger(registry: CollectorRegistry, counts: SchedulerCounts) -> type:
    """A `PrometheusStatLogger` factory for `AsyncLLM(stat_loggers=[...])`: its metrics are
    registered in `registry`, and the scheduler's running and waiting counts go to `counts`.

    Given as a custom stat logger (with `disable_log_stats=True`), it replaces vLLM's default
    Prometheus logger and adds none of vLLM's periodic log lines."""
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    bound = {
        "_gauge_cls": partial(Gauge, registry=registry),
        "_counter_cls": partial(Counter, registry=registry),
        "_histogram_cls": partial(Histogram, registry=registry),
    }
    # Its helpers (speculative decoding, KV and EC connectors, performance estimates) create
    # metrics of their own, through the same class attributes.
    helpers = {
        name: _bound_to(getattr(PrometheusStatLogger, name), bound)
        for name in HELPERS
        if hasattr(PrometheusStatLogger, name)
    }

    class EngineStatLogger(PrometheusStatLogger):  # type: ignore[misc]
        def record(self, scheduler_stats: Any, *args: Any, **kwargs: Any) -> None:
            if scheduler_stats is not None:
                counts.running = scheduler_stats.num_running_reqs
                counts.waiting = (
                    scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs
                )
            super().record(scheduler_stats, *args, **kwargs)

    for name, value in {**bound, **helpers}.items():
        setattr(EngineStatLogger, name, value)
    return EngineStatLogger


def _bound_to(helper: type, bound: dict[str, Any]) -> type:
    overrides = {name: value for name, value in bound.items() if hasattr(helper, name)}
    return type(helper.__name__, (helper,), overrides)
