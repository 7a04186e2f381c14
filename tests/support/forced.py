"""A real vLLM engine whose every output is forced by a regex grammar, served over real HTTP.

Random-weight models never write a tool call on their own. Forcing the text with a grammar
(engine-level `StructuredOutput.regex`, not reachable from the wire) makes the real engine,
tokenizer and detokenizer produce it, so the parsers are proven on real vLLM output.
"""

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import httpx
import uvicorn

from engine.builtin.checkpoints import prepare_checkpoint
from engine.config import EngineConfig
from engine.types import (
    Adapter,
    CheckpointInfo,
    CheckpointTemplate,
    Delta,
    EngineLoad,
    EngineStatus,
    GenerationParams,
    StructuredOutput,
)
from engine.vllm.engine import VllmEngine
from server.app import create_app
from server.settings import ModelSettings, Settings
from tests.support.live_server import TOKEN, free_port

QWQ = "@cf/qwen/qwq-32b"
REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def literal(text: str) -> str:
    """A regex matching exactly `text` (escaping only what the grammar engine treats as meta)."""
    return "".join("\\" + char if char in REGEX_META else char for char in text)


@dataclass
class ForcedEngine:
    """Delegates to a real engine, replacing each request's grammar with `regex`."""

    inner: VllmEngine
    regex: str = ""

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def fewest_tokens(self, text: str) -> int:
        return self.inner.fewest_tokens(text)

    def checkpoint_template(self) -> CheckpointTemplate | None:
        return self.inner.checkpoint_template()

    def checkpoint_info(self) -> CheckpointInfo:
        return self.inner.checkpoint_info()

    def max_model_len(self) -> int:
        return self.inner.max_model_len()

    async def load_adapter(self, adapter: Adapter) -> None:
        await self.inner.load_adapter(adapter)

    def generate(
        self, prompt_token_ids: list[int], params: GenerationParams, request_id: str
    ) -> AsyncGenerator[Delta, None]:
        forced = replace(params, structured=StructuredOutput(regex=self.regex))
        return self.inner.generate(prompt_token_ids, forced, request_id)

    def load(self) -> EngineLoad:
        return self.inner.load()

    async def status(self) -> EngineStatus:
        return await self.inner.status()

    async def close(self) -> None:
        await self.inner.close()


@contextmanager
def forced_server(cache_dir_settings: Settings) -> Iterator[tuple[str, ForcedEngine]]:
    """Serve QwQ from a forced real engine on a loopback port, in this process."""
    # xgrammar: guidance reads added tokens such as </think> as special and refuses them.
    config = EngineConfig(
        builtin="tiny-qwq-32b",
        max_model_len=4096,
        enforce_eager=True,
        structured_output_backend="xgrammar",
    )
    assert config.builtin is not None
    checkpoint = prepare_checkpoint(config.builtin, cache_dir_settings.resolved_cache_dir())
    engine = ForcedEngine(asyncio.run(VllmEngine.start(config, checkpoint, QWQ)))
    settings = Settings(
        models=[ModelSettings(name=QWQ, engine=config)],
        api_tokens=[TOKEN],
        cache_dir=cache_dir_settings.cache_dir,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engines={QWQ: engine}), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base_url)
        yield base_url, engine
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        asyncio.run(engine.inner.close())


def _wait_up(base_url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("in-process server did not come up")
