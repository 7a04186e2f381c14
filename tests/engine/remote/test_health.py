"""The upstream's health: /health asked at most once a second, shared by concurrent callers."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from engine.remote.health import HealthProbe
from tests.support.fake_upstream import FakeUpstream
from tests.support.live_server import free_port

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def probing(
    url: str, scenario: Callable[[HealthProbe, Clock], Awaitable[T]], path: str = "/health"
) -> T:
    async def main() -> T:
        clock = Clock()
        async with httpx.AsyncClient(base_url=url) as client:
            probe = HealthProbe(client, path, clock=clock)
            try:
                return await scenario(probe, clock)
            finally:
                probe.close()

    return asyncio.run(main())


def test_the_answer_is_reused_for_a_second(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[int]:
        probes = []
        for step in (0.0, 0.5, 0.99, 1.0, 1.5, 2.5):
            clock.now = 100.0 + step
            await probe.check()
            probes.append(len(upstream.calls("/health")))
        return probes

    assert probing(upstream.url, scenario) == [0, 0, 0, 1, 1, 2]


def test_concurrent_callers_share_one_probe(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[tuple[bool, str]]:
        clock.now += 5
        return await asyncio.gather(*(probe.check() for _ in range(20)))

    answers = probing(upstream.url, scenario)

    assert answers == [(True, "")] * 20
    assert len(upstream.calls("/health")) == 1


def test_an_upstream_that_answers_503_is_unhealthy_until_it_recovers(
    upstream: FakeUpstream,
) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[bool]:
        upstream.health_status = 503
        clock.now += 1
        sick, detail = await probe.check()
        assert "503" in detail
        upstream.health_status = 200
        clock.now += 1
        well, _ = await probe.check()
        return [sick, well]

    assert probing(upstream.url, scenario) == [False, True]


def test_an_unreachable_upstream_is_unhealthy_and_status_does_not_raise() -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 1
        return await probe.check()

    healthy, detail = probing(f"http://127.0.0.1:{free_port()}", scenario)

    assert not healthy
    assert "unreachable" in detail


def test_a_router_is_asked_on_its_configured_path(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 5
        return await probe.check()

    upstream.health_status = 503
    healthy, detail = probing(upstream.url, scenario, path="/readiness")

    assert (healthy, detail) == (False, "upstream /readiness answered 503")
    assert [call.path for call in upstream.received] == ["/readiness"]
