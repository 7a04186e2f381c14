"""The vLLM adapter's side of `/metrics`, over a scripted stand-in for `AsyncLLM` (no vLLM
import): the engine's labels, and its requests split into running and waiting."""

import asyncio
from types import SimpleNamespace

import pytest

from engine.config import EngineConfig
from engine.vllm.engine import EngineMetrics, VllmEngine, engine_args

QWQ = "@cf/qwen/qwq-32b"


class StandInLLM:
    def __init__(self, unfinished: int) -> None:
        self.unfinished = unfinished
        self.errored = False
        self.model_config = SimpleNamespace(get_diff_sampling_param=dict)
        self.scheduler_config = SimpleNamespace(max_num_seqs=4, max_num_queued_reqs=None)

    def get_tokenizer(self) -> object:
        return object()

    def get_num_unfinished_requests(self) -> int:
        return self.unfinished


def test_vllms_metrics_are_labelled_with_the_workers_ai_name_and_its_stat_logs_stay_off() -> None:
    args = engine_args(EngineConfig(checkpoint="x", max_model_len=64), "x", cpu=True, name=QWQ)

    assert args["served_model_name"] == QWQ
    assert args["disable_log_stats"] is True


@pytest.mark.parametrize(
    ("unfinished", "scheduler_waiting", "running", "waiting"),
    [
        pytest.param(5, 2, 3, 2, id="as-the-scheduler-said"),
        pytest.param(1, 3, 0, 1, id="never-more-waiting-than-in-the-engine"),
        pytest.param(0, 3, 0, 0, id="idle"),
        pytest.param(2, 0, 2, 0, id="none-waiting"),
    ],
)
def test_the_engines_requests_split_as_its_scheduler_last_reported(
    unfinished: int, scheduler_waiting: int, running: int, waiting: int
) -> None:
    metrics = EngineMetrics()
    metrics.counts.waiting = scheduler_waiting
    engine = VllmEngine(StandInLLM(unfinished), QWQ, metrics=metrics)

    status = asyncio.run(engine.status())
    load = engine.load()

    assert (status.running_requests, status.waiting_requests) == (running, waiting)
    assert (load.running_requests, load.waiting_requests) == (running, waiting)
    assert load.capacity == status.capacity
