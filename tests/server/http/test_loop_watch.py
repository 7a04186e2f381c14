"""The loop watch: a warning, with the loop's stack, when the event loop is blocked."""

import asyncio
import logging
import time

import pytest

from server.http.loop_watch import loop_watched


def block_the_loop(seconds: float) -> None:
    time.sleep(seconds)


def test_a_blocked_loop_is_reported_with_where_it_was(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        with loop_watched(stall_s=0.3, beat_s=0.05):
            await asyncio.sleep(0.2)
            block_the_loop(0.8)
            await asyncio.sleep(0.3)

    caplog.set_level(logging.WARNING, logger="server.http.loop_watch")
    asyncio.run(run())
    blocked, ran_again = [record.getMessage() for record in caplog.records]
    assert blocked.startswith("the event loop has not run for")
    assert "(the event loop):" in blocked
    assert "in block_the_loop" in blocked
    assert "this process used" in blocked
    assert "steal time" in blocked
    assert ran_again.startswith("the event loop runs again: it was blocked for")
    assert 0.7 <= float(ran_again.split()[-2]) < 2


def test_a_loop_that_runs_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        with loop_watched(stall_s=0.3, beat_s=0.05):
            for _ in range(10):
                block_the_loop(0.02)
                await asyncio.sleep(0.05)

    caplog.set_level(logging.WARNING, logger="server.http.loop_watch")
    asyncio.run(run())
    assert caplog.records == []
