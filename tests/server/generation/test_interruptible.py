"""`Interruptible`: `end` interrupts the step under way (or the next) with its error, and never
what the task awaits between two steps."""

import asyncio

import pytest

from server.errors import RequestTimeout, ShuttingDown
from server.generation.interruptible import Interruptible


class Wait:
    """A long wait that records whether it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = False

    async def __call__(self, seconds: float = 10.0) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


def test_end_interrupts_the_step_under_way_with_its_error() -> None:
    wait = Wait()

    async def run() -> None:
        steps = Interruptible()
        asyncio.get_running_loop().call_later(0.01, steps.end, RequestTimeout())
        await steps.step(wait())

    with pytest.raises(RequestTimeout):
        asyncio.run(run())
    assert wait.cancelled


def test_a_step_that_ends_in_time_returns_its_result() -> None:
    async def run() -> str:
        return await Interruptible().step(Wait()(0.0))

    assert asyncio.run(run()) == "done"


def test_end_between_steps_leaves_the_task_alone_and_ends_the_next_step() -> None:
    between = Wait()

    async def run() -> bool:
        steps = Interruptible()
        await steps.step(asyncio.sleep(0))
        asyncio.get_running_loop().call_later(0.01, steps.end, ShuttingDown())
        await between(0.05)  # not a step: a write to the client, say
        coroutine = Wait()()
        with pytest.raises(ShuttingDown):
            await steps.step(coroutine)
        return steps.ended

    assert asyncio.run(run())
    assert not between.cancelled


def test_the_first_error_wins() -> None:
    async def run() -> None:
        steps = Interruptible()
        steps.end(ShuttingDown())
        steps.end(RequestTimeout())
        await steps.step(asyncio.sleep(0))

    with pytest.raises(ShuttingDown):
        asyncio.run(run())


def test_a_task_cancelled_from_elsewhere_too_stays_cancelled() -> None:
    async def run() -> None:
        steps = Interruptible()
        task = asyncio.current_task()
        assert task is not None

        def both() -> None:
            steps.end(RequestTimeout())
            task.cancel()

        asyncio.get_running_loop().call_later(0.01, both)
        await steps.step(asyncio.sleep(10))

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())


def test_an_interrupted_task_can_go_on_awaiting() -> None:
    """The cancellation `end` made is taken back: the task is not left cancelling."""

    async def run() -> int:
        steps = Interruptible()
        asyncio.get_running_loop().call_later(0.01, steps.end, RequestTimeout())
        with pytest.raises(RequestTimeout):
            await steps.step(asyncio.sleep(10))
        await asyncio.sleep(0.01)  # the error event and `[DONE]` are still written
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert asyncio.run(run()) == 0
