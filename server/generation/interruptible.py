"""The waits of one generation, which its deadline or the server's drain can end.

    steps = Interruptible()
    delta = await steps.step(anext(deltas))     the engine's next output, or the error that ended
    steps.end(RequestTimeout())                 from a timer or another task: the step under way
                                                is cancelled and raises it, as does every later one

Only a step is ever cancelled, never whatever the task awaits between two (a write to the
client): the engine request under the step is aborted, and the caller can still answer. That is
what an `asyncio.timeout` around each step does, but a stream relays a token per step, and
entering and leaving a timeout (and scheduling its timer) for each cost more CPU than the rest
of the step's bookkeeping: here a step only sets two fields.
"""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Interruptible:
    """The steps of one task, which `end` interrupts with an error."""

    def __init__(self) -> None:
        self._task: asyncio.Task[object] | None = None  # the task inside a step, if any
        self._cancelling = 0  # its pending cancellations when the step began
        self._cancelled = False  # `end` cancelled the step under way
        self._error: Exception | None = None

    @property
    def ended(self) -> bool:
        return self._error is not None

    def end(self, error: Exception) -> None:
        """Interrupt the step under way with `error` (the first error given wins), or the next
        one. Called from outside the task: a timer, another task."""
        if self._error is None:
            self._error = error
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    async def step(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, unless `end` interrupts it: then its error is raised."""
        if self._error is not None:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never awaited: no warning about it
            raise self._error
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        try:
            result = await awaitable
        except asyncio.CancelledError:
            error = self._interruption(task)
            if error is not None:
                raise error from None
            raise
        finally:
            self._task = None
        error = self._interruption(task)
        if error is not None:
            raise error  # the awaitable swallowed the cancellation; the step is over
        return result

    def _interruption(self, task: "asyncio.Task[object]") -> Exception | None:
        """The error when `end` cancelled this step, taking that cancellation back; None when
        it did not, or when another one is pending too (the task itself is being cancelled)."""
        if not self._cancelled:
            return None
        self._cancelled = False
        if task.uncancel() > self._cancelling:
            return None
        return self._error
