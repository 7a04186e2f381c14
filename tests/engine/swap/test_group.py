"""The swap group's orchestration, on scripted engines that record what happened to them."""

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.config import SwapGroupConfig
from engine.errors import EngineBusyError, EngineDeadError
from engine.protocol import Engine
from engine.swap import SwapGroup, SwapMember, SwapMethod
from engine.types import Adapter, Delta, GenerationParams
from tests.support.fake_engine import FakeEngine

pytestmark = pytest.mark.anyio

QWQ = "@cf/qwen/qwq-32b"
R1 = "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Journal:
    """What happened, in order: ("start"|"close"|"sleep"|"wake"|"run"|"done", model)."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def count(self, kind: str, model: str | None = None) -> int:
        return sum(1 for k, m in self.events if k == kind and (model is None or m == model))


@dataclass
class RecordingEngine(FakeEngine):
    """A FakeEngine that can sleep, writes to a journal, and refuses work while down."""

    name: str = ""
    journal: Journal = field(default_factory=Journal)
    down: bool = False

    async def sleep(self) -> None:
        assert self.running == 0, "put to sleep with requests running"
        self.down = True
        self.journal.events.append(("sleep", self.name))

    async def wake_up(self) -> None:
        self.down = False
        self.journal.events.append(("wake", self.name))

    async def close(self) -> None:
        assert self.running == 0, "stopped with requests running"
        self.down = True
        self.journal.events.append(("close", self.name))

    async def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        assert not self.down, f"{self.name} generated while down"
        probe = request_id.startswith("swap-probe")
        if not probe:
            self.journal.events.append(("run", self.name))
        async for delta in super().generate(prompt_token_ids, params, request_id):
            yield delta
        if not probe:
            self.journal.events.append(("done", self.name))


def starter(
    name: str, journal: Journal, delay: float, engines: list[RecordingEngine], capacity: int = 4
) -> Callable[[], Awaitable[Engine]]:
    async def start() -> Engine:
        await asyncio.sleep(0.01)
        journal.events.append(("start", name))
        engine = RecordingEngine(name=name, journal=journal, delay=delay, capacity=capacity)
        engines.append(engine)
        return engine

    return start


async def make_group(
    method: SwapMethod, min_residency_s: float = 0.0, delay: float = 0.005, capacity: int = 4
) -> tuple[SwapGroup, dict[str, SwapMember], Journal, list[RecordingEngine]]:
    journal = Journal()
    engines: list[RecordingEngine] = []
    members = [
        SwapMember(name, starter(name, journal, delay, engines, capacity)) for name in (QWQ, R1)
    ]
    config = SwapGroupConfig(name="gpu0", models=[QWQ, R1], min_residency_s=min_residency_s)
    group = await SwapGroup.start(config, method, members)
    return group, {member.name: member for member in members}, journal, engines


async def run(member: SwapMember, *, reject_if_busy: bool = False, tokens: int = 3) -> str:
    params = GenerationParams(max_tokens=tokens, temperature=0.0, reject_if_busy=reject_if_busy)
    return "".join([delta.text async for delta in member.generate([1, 2], params, "req")])


@pytest.mark.parametrize("method", ["sleep", "restart"])
async def test_members_start_one_after_the_other_and_the_last_is_awake(method: SwapMethod) -> None:
    group, members, journal, _ = await make_group(method)
    try:
        down = "sleep" if method == "sleep" else "close"
        assert journal.events == [("start", QWQ), (down, QWQ), ("start", R1)]
        assert group.awake() == R1
        assert (await members[R1].status()).swap.state == "awake"  # type: ignore[union-attr]
        assert (await members[QWQ].status()).swap.state == "asleep"  # type: ignore[union-attr]
        # The tokenizer works while the engine is down.
        assert members[QWQ].encode("ab") == [97, 98]
    finally:
        await group.close()


@pytest.mark.parametrize("method", ["sleep", "restart"])
async def test_a_request_for_the_sleeping_model_waits_for_a_swap_then_runs(
    method: SwapMethod,
) -> None:
    group, members, journal, _ = await make_group(method)
    try:
        assert await run(members[QWQ]) == "Hello, world"
        assert group.awake() == QWQ
        assert group.swaps == 1
        up = "wake" if method == "sleep" else "start"
        after_start = journal.events[3:]
        down = "sleep" if method == "sleep" else "close"
        assert after_start[:3] == [(down, R1), (up, QWQ), ("run", QWQ)]
    finally:
        await group.close()


@pytest.mark.parametrize("method", ["sleep", "restart"])
async def test_alternating_requests_from_many_clients_all_succeed(method: SwapMethod) -> None:
    group, members, journal, _ = await make_group(method, min_residency_s=0.05, capacity=8)
    try:

        async def client(index: int) -> list[str]:
            answers = []
            for turn in range(4):
                name = (QWQ, R1)[(index + turn) % 2]
                answers.append(await run(members[name]))
            return answers

        results = await asyncio.gather(*(client(index) for index in range(6)))
        assert all(answer == "Hello, world" for answers in results for answer in answers)
        assert journal.count("run") == journal.count("done") == 24
        # Each swap serves a batch: far fewer swaps than the 24 alternating requests.
        assert 1 <= group.swaps < 12
    finally:
        await group.close()


async def test_running_requests_finish_before_their_model_is_put_down() -> None:
    group, members, journal, _ = await make_group("sleep", delay=0.02)
    try:
        long_r1 = asyncio.create_task(run(members[R1], tokens=4))
        await asyncio.sleep(0.01)
        qwq = asyncio.create_task(run(members[QWQ]))
        assert await long_r1 == "Hello, world."
        assert await qwq == "Hello, world"
        done_r1 = journal.events.index(("done", R1))
        assert journal.events.index(("sleep", R1), 2) > done_r1
    finally:
        await group.close()


async def test_the_awake_model_keeps_its_turn_for_min_residency_while_busy() -> None:
    group, members, _, _ = await make_group("sleep", min_residency_s=0.3, delay=0.01)
    try:
        stop = asyncio.Event()

        async def keep_r1_busy() -> int:
            served = 0
            while not stop.is_set():
                await run(members[R1])
                served += 1
            return served

        busy = [asyncio.create_task(keep_r1_busy()) for _ in range(2)]
        await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        assert await run(members[QWQ]) == "Hello, world"
        waited = loop.time() - asked
        stop.set()
        served = sum(await asyncio.gather(*busy))
        assert waited >= 0.25, "the swap came before R1's minimum residency"
        assert served >= 4
        assert group.swaps >= 1
    finally:
        await group.close()


async def test_reject_if_busy_refuses_at_once_when_the_model_is_asleep() -> None:
    group, members, _, _ = await make_group("sleep")
    try:
        with pytest.raises(EngineBusyError):
            await run(members[QWQ], reject_if_busy=True)
        assert group.swaps == 0
        assert await run(members[R1], reject_if_busy=True) == "Hello, world"
    finally:
        await group.close()


async def test_waiting_past_the_limit_is_refused() -> None:
    group, members, _, _ = await make_group("sleep", min_residency_s=10, delay=0.05)
    try:
        hold = asyncio.create_task(run(members[R1], tokens=4))  # keeps R1 awake for a while
        await asyncio.sleep(0.01)
        # The limit is what the member holds at once when awake: capacity 4.
        waiting = [asyncio.create_task(run(members[QWQ])) for _ in range(4)]
        await asyncio.sleep(0.01)
        status = await members[QWQ].status()
        assert status.waiting_requests == 4
        # The load admission reads says the same, for the asleep member and the awake one.
        for member in (members[QWQ], members[R1]):
            load, status = member.load(), await member.status()
            assert (load.running_requests, load.waiting_requests, load.capacity) == (
                status.running_requests,
                status.waiting_requests,
                status.capacity,
            )
        assert members[QWQ].load().capacity == 4
        assert members[R1].load().running_requests == 1
        with pytest.raises(EngineBusyError):
            await run(members[QWQ])
        await hold
        assert await asyncio.gather(*waiting) == ["Hello, world"] * 4
    finally:
        await group.close()


async def test_adapters_load_on_the_engine_that_runs_the_request() -> None:
    group, members, _, engines = await make_group("restart")
    try:
        adapter = Adapter(name="mine", id=7, path=Path("/nowhere"))
        await members[QWQ].load_adapter(adapter)
        params = GenerationParams(max_tokens=1, temperature=0.0, adapter=adapter)
        async for _ in members[QWQ].generate([1], params, "req"):
            pass
        restarted_qwq = engines[-1]
        assert restarted_qwq.name == QWQ
        assert restarted_qwq.loaded_adapters == [adapter]
    finally:
        await group.close()


async def test_a_failed_swap_makes_the_group_unhealthy_and_requests_fail_cleanly() -> None:
    journal = Journal()
    engines: list[RecordingEngine] = []
    starts = {QWQ: 0}

    async def flaky_qwq() -> Engine:
        starts[QWQ] += 1
        if starts[QWQ] > 1:
            raise RuntimeError("out of memory")
        engine = RecordingEngine(name=QWQ, journal=journal)
        engines.append(engine)
        return engine

    members = [SwapMember(QWQ, flaky_qwq), SwapMember(R1, starter(R1, journal, 0.0, engines))]
    config = SwapGroupConfig(name="gpu0", models=[QWQ, R1], min_residency_s=0)
    group = await SwapGroup.start(config, "restart", members)
    try:
        with pytest.raises(EngineDeadError):
            await run(members[0])
        assert not (await members[0].status()).healthy
    finally:
        await group.close()
