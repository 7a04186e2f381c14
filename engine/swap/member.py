"""One member of a swap group: its `Engine`, which takes a turn in the group for every request
(see `engine.swap.group`)."""

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from engine.errors import EngineDeadError, EngineStartError
from engine.protocol import Engine
from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    GenerationParams,
)

if TYPE_CHECKING:
    from engine.swap.group import SwapGroup

logger = logging.getLogger(__name__)

SwapMethod = Literal["sleep", "restart"]


@runtime_checkable
class Sleeper(Protocol):
    """An engine with vLLM's sleep mode (see `engine.vllm.engine.VllmEngine`)."""

    async def sleep(self) -> None: ...

    async def wake_up(self) -> None: ...


@dataclass
class _Turns:
    """Requests of one member inside the group: running on its engine, or waiting for it."""

    running: int = 0
    waiting: int = 0
    first_waiting_since: float | None = None


class SwapMember:
    """The `Engine` of one member: requests take a turn in the group, then reach its engine.

    Tokenizer, template and checkpoint come from the engine's first start and stay valid while
    it is down. Adapters are loaded inside the turn, on the engine that runs the request (a
    restarted engine has none loaded).
    """

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[Engine]],
        max_running: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._max_running = max_running
        self._max_waiting = max_waiting
        self._group: SwapGroup | None = None
        self._engine: Engine | None = None  # up (awake, or asleep in sleep mode)
        self._first: Engine | None = None  # for tokenizer, template and checkpoint
        self.turns = _Turns()
        self.capacity: int | None = None  # requests held at once, running and waiting
        self.failed = False

    # The parts of Engine that need no running engine.

    def encode(self, text: str) -> list[int]:
        return self._first_engine().encode(text)

    def fewest_tokens(self, text: str) -> int:
        return self._first_engine().fewest_tokens(text)

    def checkpoint_template(self) -> CheckpointTemplate | None:
        return self._first_engine().checkpoint_template()

    def checkpoint_info(self) -> CheckpointInfo:
        return self._first_engine().checkpoint_info()

    def max_model_len(self) -> int:
        return self._first_engine().max_model_len()

    async def load_adapter(self, adapter: Adapter) -> None:
        """Adapters load inside the request's turn (see `generate`)."""

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        async with self._group_().turn(self, reject_if_busy=params.reject_if_busy) as engine:
            if params.adapter is not None:
                await engine.load_adapter(params.adapter)
            async with aclosing(engine.generate(prompt_token_ids, params, request_id)) as deltas:
                async for delta in deltas:
                    yield delta

    def load(self) -> EngineLoad:
        return self._group_().load_of(self)

    async def status(self) -> EngineStatus:
        return await self._group_().status_of(self)

    async def close(self) -> None:
        """The group closes its members' engines (`SwapGroup.close`)."""

    # Used by the group.

    async def bring_up(self, method: SwapMethod) -> None:
        if self._engine is None:
            self._engine = await self._start()
            if self._first is None:
                self._first = self._engine
                self.capacity = self._engine.load().capacity
        elif method == "sleep":
            assert isinstance(self._engine, Sleeper)
            await self._engine.wake_up()

    async def put_down(self, method: SwapMethod) -> None:
        engine = self.engine
        if method == "sleep":
            if not isinstance(engine, Sleeper):
                raise EngineStartError(f"the engine of {self.name} has no sleep mode")
            await engine.sleep()
        else:
            self._engine = None
            await engine.close()

    async def shut_down(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise EngineDeadError(f"the engine of {self.name} is not running")
        return self._engine

    def waiting_limit(self) -> int | None:
        """Requests that may wait for this member: all it would hold at once when awake."""
        if self.capacity is not None:
            return self.capacity
        if self._max_running is not None:
            return self._max_running + (self._max_waiting or self._max_running)
        return None

    def _first_engine(self) -> Engine:
        if self._first is None:
            raise EngineDeadError(f"the engine of {self.name} has not started")
        return self._first

    def _group_(self) -> "SwapGroup":
        if self._group is None:
            raise EngineDeadError(f"{self.name} is not in a running swap group")
        return self._group
