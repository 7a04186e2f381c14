import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import engine.remote.engine
from engine.remote.checkpoint import Checkpoint, load_checkpoint
from engine.remote.config import RemoteConfig
from engine.remote.engine import RemoteEngine
from tests.support.fake_upstream import MODEL, FakeUpstream

QWQ = "@cf/qwen/qwq-32b"
TOKENIZER = "tiny-qwq-32b"

T = TypeVar("T")
Scenario = Callable[[RemoteEngine], Awaitable[T]]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def checkpoint(session_cache: Path) -> Checkpoint:
    """The tiny QwQ stand-in's tokenizer, built and loaded once for the session."""
    return load_checkpoint(TOKENIZER, session_cache)


@pytest.fixture
def cache_dir(session_cache: Path, checkpoint: Checkpoint, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache directory engines start with; they get the session's tokenizer instead of
    loading it again (0.5 s each)."""

    def load(tokenizer: str, cache_dir: Path) -> Checkpoint:
        assert tokenizer == TOKENIZER
        return checkpoint

    monkeypatch.setattr(engine.remote.engine, "load_checkpoint", load)
    return session_cache


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def remote(upstream: FakeUpstream, **overrides: Any) -> RemoteConfig:
    settings: dict[str, Any] = {
        "url": upstream.url,
        "served_model_name": MODEL,
        "tokenizer": TOKENIZER,
        "start_timeout_s": 5,
        **overrides,
    }
    return RemoteConfig.model_validate(settings)


def run(config: RemoteConfig, cache_dir: Path, scenario: Scenario[T]) -> T:
    """Start an engine on `config`, run `scenario` with it, close it; all in one event loop."""

    async def main() -> T:
        started = await RemoteEngine.start(config, QWQ, cache_dir)
        try:
            return await scenario(started)
        finally:
            await started.close()

    return asyncio.run(main())
