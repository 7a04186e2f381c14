"""Models that take turns: the members of a swap group share one GPU, one awake at a time.

The awake member serves; the others wait, asleep. A request for a sleeping member waits (it
counts against its request timeout and its model's waiting limit, 429 past it) while the group
swaps: the awake member stops taking new requests, its running ones finish, it is put down,
the requested one is brought up and answers a one-token probe, and only then are its waiting
requests let in. No request fails because of a swap.

Two ways to put a member down and bring it up:
- `sleep` (GPU): vLLM sleep mode level 1. The weights move to host memory (about 65 GB of host
  RAM per sleeping bf16 32B model), the KV cache is dropped; waking takes seconds.
- `restart` (the CPU build, which has no sleep mode, or any GPU where it misbehaves): the engine
  is stopped and started again, as Ollama does. Same orchestration, slower swaps.

Against thrash: a member brought up for waiting requests stays awake at least
`min_residency_s` while its own requests keep arriving, and every request that waits for the
awake member is let in before the group swaps back. When the awake member has nothing running
and nothing waiting, the group swaps at once.

Members start strictly one after the other (vLLM's memory profiling would count a neighbour that
starts or sleeps meanwhile as its own), each put down before the next starts. The LAST member
started is awake when serving begins.
"""

import asyncio
import logging
import time
from contextlib import aclosing, suppress
from typing import Literal

from engine.config import SwapGroupConfig
from engine.errors import EngineBusyError, EngineDeadError, EngineError, EngineStartError
from engine.protocol import Engine
from engine.swap.member import SwapMember, SwapMethod
from engine.types import EngineLoad, EngineStatus, GenerationParams, SwapState

logger = logging.getLogger(__name__)


class SwapGroup:
    """Decides which member is awake, and swaps when requests wait for another."""

    def __init__(self, config: SwapGroupConfig, method: SwapMethod, members: list[SwapMember]):
        self.config = config
        self.method = method
        self.members = members
        for member in members:
            member._group = self
        self._awake: SwapMember = members[-1]
        self._awake_since = time.monotonic()
        self._closing = False  # the awake member takes no new requests: a swap is due
        self._swapping_to: SwapMember | None = None
        self._changed = asyncio.Condition()
        self._kick = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self.swaps = 0
        self.swap_seconds = 0.0
        self.failure: str | None = None

    @classmethod
    async def start(
        cls, config: SwapGroupConfig, method: SwapMethod, members: list[SwapMember]
    ) -> "SwapGroup":
        """Start every member in order, putting each down before the next starts."""
        group = cls(config, method, members)
        try:
            for index, member in enumerate(members):
                await member.bring_up(method)
                if index < len(members) - 1:
                    started = time.monotonic()
                    await member.put_down(method)
                    logger.info(
                        "swap group %s: %s is %s (%.1f s)",
                        config.name,
                        member.name,
                        "asleep" if method == "sleep" else "stopped",
                        time.monotonic() - started,
                    )
        except BaseException:
            await group.close()
            raise
        group._awake_since = time.monotonic()
        group._scheduler = asyncio.create_task(group._schedule(), name=f"swap-{config.name}")
        logger.info(
            "swap group %s (%s): %s is awake; %s: %s",
            config.name,
            method,
            group._awake.name,
            "asleep" if method == "sleep" else "stopped",
            ", ".join(member.name for member in members[:-1]),
        )
        return group

    def awake(self) -> str:
        return self._awake.name

    def turn(self, member: SwapMember, *, reject_if_busy: bool) -> "_Turn":
        return _Turn(self, member, reject_if_busy)

    def load_of(self, member: SwapMember) -> EngineLoad:
        """The awake member's engine's load, with the turns waiting for it; an asleep or
        waking member's turns."""
        turns = member.turns
        if self.failure is not None:
            return EngineLoad(running_requests=0)
        if self._state_of(member) == "awake":
            inner = member.engine.load()
            return EngineLoad(
                running_requests=inner.running_requests,
                waiting_requests=inner.waiting_requests + turns.waiting,
                capacity=inner.capacity,
            )
        return EngineLoad(
            running_requests=turns.running,
            waiting_requests=turns.waiting,
            capacity=member.waiting_limit(),
        )

    async def status_of(self, member: SwapMember) -> EngineStatus:
        if self.failure is not None:
            return EngineStatus(healthy=False, running_requests=0, detail=self.failure)
        state = self._state_of(member)
        swap = SwapState(
            group=self.config.name,
            state=state,
            swaps=self.swaps,
            swap_seconds=self.swap_seconds,
        )
        load = self.load_of(member)
        inner = await member.engine.status() if state == "awake" else None
        return EngineStatus(
            healthy=True if inner is None else inner.healthy,
            running_requests=load.running_requests,
            waiting_requests=load.waiting_requests,
            detail="" if inner is None else inner.detail,
            capacity=load.capacity,
            swap=swap,
        )

    def _state_of(self, member: SwapMember) -> Literal["awake", "asleep", "waking"]:
        if self._swapping_to is member:
            return "waking"
        if self._awake is member and self._swapping_to is None:
            return "awake"
        return "asleep"

    async def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._scheduler
        for member in self.members:
            await member.shut_down()

    # Turns.

    def _may_run(self, member: SwapMember) -> bool:
        if self.failure is not None:
            return True  # let it in to fail with the engine's error
        return self._awake is member and not self._closing and self._swapping_to is None

    async def _enter(self, member: SwapMember, reject_if_busy: bool) -> Engine:
        turns = member.turns
        if not self._may_run(member):
            if reject_if_busy:
                raise EngineBusyError(f"{member.name} is not awake; the request would wait")
            limit = member.waiting_limit()
            if limit is not None and turns.waiting >= limit:
                raise EngineBusyError(f"too many requests wait for {member.name} to wake")
            turns.waiting += 1
            if turns.first_waiting_since is None:
                turns.first_waiting_since = time.monotonic()
            self._kick.set()
            try:
                async with self._changed:
                    await self._changed.wait_for(lambda: self._may_run(member))
            finally:
                turns.waiting -= 1
                if turns.waiting == 0:
                    turns.first_waiting_since = None
        if self.failure is not None:
            raise EngineDeadError(self.failure)
        turns.running += 1
        return member.engine

    def _leave(self, member: SwapMember) -> None:
        member.turns.running -= 1
        self._kick.set()

    # Scheduling.

    def _next(self) -> SwapMember | None:
        """The member that has waited longest for its turn, other than the awake one."""
        waiting = [
            member
            for member in self.members
            if member is not self._awake and member.turns.first_waiting_since is not None
        ]
        return min(
            waiting, key=lambda member: member.turns.first_waiting_since or 0.0, default=None
        )

    async def _schedule(self) -> None:
        while True:
            target = self._next()
            awake = self._awake
            if target is None:
                await self._wait_for_kick(None)
                continue
            idle = awake.turns.running == 0 and awake.turns.waiting == 0
            resident = time.monotonic() - self._awake_since
            if not idle and resident < self.config.min_residency_s:
                await self._wait_for_kick(self.config.min_residency_s - resident)
                continue
            if not self._closing:
                self._closing = True
                logger.info(
                    "swap group %s: %s waits; %s takes no new requests (%d running)",
                    self.config.name,
                    target.name,
                    awake.name,
                    awake.turns.running,
                )
            if awake.turns.running > 0:
                await self._wait_for_kick(None)
                continue
            try:
                await self._swap(awake, target)
            except Exception as error:
                self.failure = f"swap group {self.config.name} failed to swap: {error}"
                logger.exception(
                    "swap group %s: swapping to %s failed", self.config.name, target.name
                )
                async with self._changed:
                    self._changed.notify_all()
                return

    async def _wait_for_kick(self, within_s: float | None) -> None:
        """Until a request arrives, waits or leaves, or `within_s` passes."""
        with suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._kick.wait()
        self._kick.clear()

    async def _swap(self, awake: SwapMember, target: SwapMember) -> None:
        started = time.monotonic()
        self._swapping_to = target
        waited = started - (target.turns.first_waiting_since or started)
        await awake.put_down(self.method)
        down = time.monotonic()
        await target.bring_up(self.method)
        await _probe(target.engine, f"swap-probe-{self.config.name}-{self.swaps + 1}")
        finished = time.monotonic()
        self.swaps += 1
        self.swap_seconds += finished - started
        logger.info(
            "swap group %s: %s -> %s in %.1f s (put down %.1f s, brought up and probed "
            "%.1f s; %d requests waited, the first for %.1f s)",
            self.config.name,
            awake.name,
            target.name,
            finished - started,
            down - started,
            finished - down,
            target.turns.waiting,
            waited + (finished - started),
        )
        async with self._changed:
            self._awake = target
            self._awake_since = finished
            self._swapping_to = None
            self._closing = False
            self._changed.notify_all()


class _Turn:
    """`async with group.turn(member)`: wait until the member is awake, hold it awake."""

    def __init__(self, group: SwapGroup, member: SwapMember, reject_if_busy: bool) -> None:
        self._group = group
        self._member = member
        self._reject_if_busy = reject_if_busy

    async def __aenter__(self) -> Engine:
        return await self._group._enter(self._member, self._reject_if_busy)

    async def __aexit__(self, *exc_info: object) -> None:
        self._group._leave(self._member)


async def _probe(engine: Engine, request_id: str) -> None:
    """One greedy token: the engine answers before any waiting request is let in."""
    params = GenerationParams(max_tokens=1, temperature=0.0)
    try:
        async with aclosing(engine.generate(engine.encode("Hello"), params, request_id)) as deltas:
            async for _ in deltas:
                pass
    except EngineError as error:
        raise EngineStartError(f"the woken engine failed its probe: {error}") from error
