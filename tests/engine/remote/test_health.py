"""The upstream's health: /health asked at most once a second, in the background while the last
answer is under 10 s old (no request waits for it), shared by concurrent callers."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.remote.config import RemoteConfig
from engine.remote.health import HealthProbe
from engine.remote.upstream import UpstreamClient
from tests.support.fake_upstream import FakeUpstream
from tests.support.live_server import free_port

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def probing(
    url: str,
    scenario: Callable[[HealthProbe, Clock], Awaitable[T]],
    path: str = "/health",
    timeout_s: float = 2.0,
) -> T:
    async def main() -> T:
        clock = Clock()
        client = UpstreamClient(RemoteConfig(url=url, served_model_name="m", tokenizer="t"), {})
        probe = HealthProbe(client, path, timeout_s=timeout_s, clock=clock)
        try:
            return await scenario(probe, clock)
        finally:
            probe.close()
            await client.close()

    return asyncio.run(main())


async def fresh(probe: HealthProbe) -> tuple[bool, str]:
    """The answer once the probe that a stale one starts is over."""
    await probe.check()
    await probe.settled()
    return await probe.check()


def test_a_stale_answer_is_given_at_once_while_the_probe_refreshes_it(
    upstream: FakeUpstream,
) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[tuple[bool, str]]:
        upstream.health_status = 503
        clock.now += 5
        answers = [await probe.check()]  # the last answer; the probe has not even been sent
        calls_before = len(upstream.calls("/health"))
        await probe.settled()
        answers.append(await probe.check())
        assert calls_before == 0
        return answers

    assert probing(upstream.url, scenario) == [
        (True, ""),
        (False, "upstream /health answered 503"),
    ]


def test_the_answer_is_reused_for_a_second(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[int]:
        probes = []
        for step in (0.0, 0.5, 0.99, 1.0, 1.5, 2.5):
            clock.now = 100.0 + step
            await probe.check()
            await probe.settled()
            probes.append(len(upstream.calls("/health")))
        return probes

    assert probing(upstream.url, scenario) == [0, 0, 0, 1, 1, 2]


def test_concurrent_callers_share_one_probe(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> list[tuple[bool, str]]:
        clock.now += 20  # too old to give: every caller waits for the probe
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
        sick, detail = await fresh(probe)
        assert "503" in detail
        upstream.health_status = 200
        clock.now += 1
        well, _ = await fresh(probe)
        return [sick, well]

    assert probing(upstream.url, scenario) == [False, True]


def test_an_unreachable_upstream_is_unhealthy_and_status_does_not_raise() -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 1
        return await fresh(probe)

    healthy, detail = probing(f"http://127.0.0.1:{free_port()}", scenario)

    assert not healthy
    assert "unreachable" in detail


def test_a_router_is_asked_on_its_configured_path(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 5
        return await fresh(probe)

    upstream.health_status = 503
    healthy, detail = probing(upstream.url, scenario, path="/readiness")

    assert (healthy, detail) == (False, "upstream /readiness answered 503")
    assert [call.path for call in upstream.received] == ["/readiness"]


def test_one_late_answer_is_asked_again_before_it_is_believed(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 1
        return await fresh(probe)

    upstream.health_delays.extend([0.5])
    assert probing(upstream.url, scenario, timeout_s=0.2) == (True, "")
    assert len(upstream.calls("/health")) == 2


def test_two_late_answers_in_a_row_are_an_unhealthy_upstream(upstream: FakeUpstream) -> None:
    async def scenario(probe: HealthProbe, clock: Clock) -> tuple[bool, str]:
        clock.now += 1
        return await fresh(probe)

    upstream.health_delays.extend([0.5, 0.5])
    healthy, detail = probing(upstream.url, scenario, timeout_s=0.2)

    assert not healthy
    assert "unreachable" in detail
    assert len(upstream.calls("/health")) == 2
