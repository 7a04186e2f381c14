"""One real server on configs/cpu-tiny.yaml for the whole integration session."""

from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import load_settings
from tests.support.live_server import TOKEN, RunningServer, running_server
from tests.support.paths import REPO
from tests.support.upstream import RemoteStack

TINY_CONFIG = REPO / "configs" / "cpu-tiny.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report ends with the last lines of the logs of the servers it used."""
    report: pytest.TestReport = yield
    if report.failed:
        for name, tail in _log_tails(getattr(item, "funcargs", {}).values()):
            report.sections.append((f"{name} log, last lines", tail))
    return report


def _log_tails(fixtures: Iterable[object]) -> Iterator[tuple[str, str]]:
    for fixture in fixtures:
        if isinstance(fixture, RunningServer):
            yield "server", fixture.log_tail(150)
        elif isinstance(fixture, RemoteStack):
            yield "server", fixture.server.log_tail(150)
            for upstream in [*fixture.qwq, fixture.r1, fixture.front]:
                yield upstream.name, upstream.log_tail()


@pytest.fixture(scope="session")
def adapters_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session server's LoRA adapters: write them here, before or after it starts."""
    return tmp_path_factory.mktemp("adapters")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, adapters_dir: Path) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(
        TINY_CONFIG, log, WORKERS_AI_LOCAL_ADAPTERS_DIR=str(adapters_dir)
    ) as running:
        yield running


@pytest.fixture(scope="session")
def api(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def tokenizers() -> dict[str, Any]:
    """The real tokenizers the server's engines use, loaded independently of the server."""
    from transformers import AutoTokenizer

    from engine.builtin.checkpoints import prepare_checkpoint

    settings = load_settings(TINY_CONFIG)
    loaded: dict[str, Any] = {}
    for model in settings.models:
        assert model.local_engine.builtin is not None
        path = prepare_checkpoint(model.local_engine.builtin, settings.resolved_cache_dir())
        loaded[model.name] = AutoTokenizer.from_pretrained(path)
    return loaded
