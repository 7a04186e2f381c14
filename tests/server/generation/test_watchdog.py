"""A dead engine stops the process (non-zero), so that a supervisor restarts it."""

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from server import app as app_module
from server.app import create_app
from server.generation.registry import bind_models, watch_engines
from tests.support.app import QWQ, R1, make_settings
from tests.support.fake_engine import FakeEngine


def test_the_watchdog_names_the_first_dead_engine_once() -> None:
    engines = {QWQ: FakeEngine(), R1: FakeEngine()}
    failures: list[str] = []

    async def scenario() -> None:
        models = bind_models(make_settings(), engines)
        watcher = asyncio.create_task(watch_engines(models, failures.append, interval_s=0.01))
        await asyncio.sleep(0.05)
        assert failures == []
        engines[R1].healthy = False
        await asyncio.wait_for(watcher, timeout=60)

    asyncio.run(scenario())

    assert failures == [R1]


def test_an_app_with_a_dead_engine_calls_on_engine_failure_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "EXIT_AFTER_ENGINE_FAILURE_S", 0.0)
    stops: list[str] = []
    engines = {QWQ: FakeEngine(), R1: FakeEngine(healthy=False)}
    app = create_app(make_settings(), engines=engines, on_engine_failure=lambda: stops.append("x"))

    with TestClient(app) as client:
        deadline = time.monotonic() + 5
        while not stops and time.monotonic() < deadline:
            client.get("/health")  # lets the event loop run the watchdog
            time.sleep(0.05)
        health = client.get("/health")
        time.sleep(0.1)

    assert stops == ["x"]
    assert health.status_code == 503
